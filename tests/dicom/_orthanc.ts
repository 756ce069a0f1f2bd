// deno-lint-ignore-file no-explicit-any
/**
 * @module Orthanc 1.10 with its DICOMweb plugin (Debian packages) as a real PACS for the tests:
 * started by `scripts/orthanc/start.sh` in a temporary state folder on free ports, optionally
 * knowing a DICOMweb peer and asking for basic auth; its REST API called with that auth.
 */
import assert from "node:assert/strict";

const SCRIPTS = new URL("../../scripts/orthanc/", import.meta.url).pathname;
const PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so";

/** Why the test cannot run here, or undefined when it can. */
export function orthancUnavailable(): string | undefined {
  const exists = (path: string) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  };
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/sbin"];
  if (dirs.some((d) => d && exists(`${d}/Orthanc`)) && exists(PLUGIN)) return undefined;
  let root = false;
  try {
    root = Deno.uid() === 0;
  } catch { /* no sys permission: assume not root */ }
  if (root && exists("/usr/bin/apt-get")) return undefined; // start.sh installs it
  return "Orthanc + DICOMweb plugin not installed and no apt-get as root to install them";
}

export interface Orthanc {
  url: string;
  /** `user:password` when Orthanc asks for basic auth. */
  users?: string;
  /** Its DIMSE port (AE title ORTHANC). */
  dicomPort: number;
  state: string;
  /** The end of Orthanc's log, for failure messages. */
  logTail(): string;
  stop(): Promise<void>;
}

/** Two distinct free TCP ports on 127.0.0.1. */
function freePorts(): [number, number] {
  const a = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const b = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const ports: [number, number] = [(a.addr as Deno.NetAddr).port, (b.addr as Deno.NetAddr).port];
  a.close();
  b.close();
  return ports;
}

async function script(name: string, env: Record<string, string>): Promise<Deno.CommandOutput> {
  return await new Deno.Command("bash", {
    args: [`${SCRIPTS}${name}`],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
}

/** Starts an Orthanc of its own that knows `peerUrl` as the DICOMweb server "imaging". */
export async function startOrthanc(
  peerUrl?: string,
  users?: string,
  /** DICOM peers by name: [AE title, host, port] (Orthanc's DicomModalities). */
  modalities?: Record<string, [string, string, number]>,
): Promise<Orthanc> {
  const state = await Deno.makeTempDir({ prefix: "orthanc-" });
  const [http, dicom] = freePorts();
  const env = {
    ORTHANC_STATE_DIR: state,
    ORTHANC_HTTP_PORT: String(http),
    ORTHANC_DICOM_PORT: String(dicom),
    ...(peerUrl ? { ORTHANC_PEER_URL: peerUrl } : {}),
    ...(users ? { ORTHANC_USERS: users } : {}),
    ...(modalities ? { ORTHANC_MODALITIES: JSON.stringify(modalities) } : {}),
  };
  const logTail = () => {
    try {
      return Deno.readTextFileSync(`${state}/log`).split("\n").slice(-30).join("\n");
    } catch {
      return "(no log)";
    }
  };
  const stop = async () => {
    await script("stop.sh", env);
    await Deno.remove(state, { recursive: true }).catch(() => {});
  };
  const out = await script("start.sh", env);
  if (!out.success) {
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    const log = logTail();
    await stop();
    throw new Error(`scripts/orthanc/start.sh failed (exit ${out.code}):\n${text}\n${log}`);
  }
  return { url: `http://127.0.0.1:${http}`, users, dicomPort: dicom, state, logTail, stop };
}

/** An Orthanc REST call; JSON in, JSON (or text) out. */
export async function rest(
  orthanc: Orthanc,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: any; text: string }> {
  const res = await fetch(`${orthanc.url}${path}`, {
    method,
    headers: orthanc.users ? { Authorization: `Basic ${btoa(orthanc.users)}` } : undefined,
    body: body === undefined
      ? undefined
      : body instanceof Uint8Array
      ? body as Uint8Array<ArrayBuffer>
      : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, body: parsed, text };
}

/** An Orthanc call that must answer 200; the message carries its answer and Orthanc's log. */
export async function ok(
  orthanc: Orthanc,
  method: string,
  path: string,
  body?: unknown,
): Promise<any> {
  const res = await rest(orthanc, method, path, body);
  assert.equal(
    res.status,
    200,
    `Orthanc ${method} ${path} ${body instanceof Uint8Array ? "" : JSON.stringify(body ?? "")}` +
      ` answered ${res.status}: ${
        res.text.slice(0, 2000)
      }\n--- Orthanc log ---\n${orthanc.logTail()}`,
  );
  return res.body;
}
