/**
 * @module The floor of the ingest benchmark: a bare Deno HTTP server that reads each STOW-RS body
 * and answers 200 with one ReferencedSOPSequence item per part, nothing else. With `fsync` it also
 * writes the body to a new file and fdatasyncs it first, the one flush an archive cannot skip.
 * Same client, same bodies, same machine as the real runs: what any server in Deno could reach here.
 *
 *   deno run -A bench/_ingest_floor.ts <read|fsync> <port>   (started by `startFloor`)
 */
import { freePort } from "./_server.ts";

export type FloorMode = "read" | "fsync";

/** A started floor server: its STOW base URL and pid, and how to stop it. */
export interface Floor {
  dicomweb: string;
  pid: number;
  stop(): Promise<void>;
}

/** Starts the floor server as a child process and waits until it answers. */
export async function startFloor(mode: FloorMode): Promise<Floor> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, mode, String(port)],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`${base}/ready`).then((r) => r.body?.cancel(), () => false);
    if (ok !== false) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    dicomweb: base,
    pid: child.pid,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** Parts in a multipart body: occurrences of the boundary line, less the closing one. */
function countParts(body: Uint8Array, boundary: string): number {
  const text = new TextDecoder("latin1").decode(body);
  return Math.max(0, text.split(`--${boundary}`).length - 2);
}

async function serve(mode: FloorMode, port: number) {
  const dir = await Deno.makeTempDir({ prefix: "bench-ingest-floor-" });
  let n = 0;
  Deno.addSignalListener("SIGTERM", () => {
    Deno.removeSync(dir, { recursive: true });
    Deno.exit(0);
  });
  Deno.serve({ port, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    if (req.method !== "POST") return new Response("ready");
    const body = new Uint8Array(await req.arrayBuffer());
    const boundary = /boundary="?([^";]+)/.exec(req.headers.get("content-type") ?? "")?.[1] ?? "";
    if (mode === "fsync") {
      const file = await Deno.open(`${dir}/${n++}`, { write: true, createNew: true });
      for (let at = 0; at < body.length;) at += await file.write(body.subarray(at));
      await file.syncData();
      file.close();
    }
    const items = Array.from({ length: countParts(body, boundary) }, () => ({}));
    return Response.json({ "00081199": { vr: "SQ", Value: items } }, {
      headers: { "content-type": "application/dicom+json" },
    });
  });
}

if (import.meta.main) await serve(Deno.args[0] as FloorMode, Number(Deno.args[1]));
