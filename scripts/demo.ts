/**
 * @module `deno task demo`: a first look at the product with something in it. Against a running
 * service (default http://localhost:8080, `--url`), it signs in as the embedded default's first
 * admin (the code flow with PKCE, `dicom/synth/sign_in.ts`; or `--username`/`--password`), stores
 * a few realistic synthetic chest CTs by STOW-RS (generator v2, fixed seeds: the same UIDs every
 * time, so a second run stores nothing twice), asks `$analyze` of each with the demonstration
 * model, waits for the Tasks, prints what the model found and then where to look and how to sign
 * in. Expected failures (nothing listening, no credentials, a model missing) are one line each.
 *
 *   deno task demo [--url URL] [--studies N] [--username U --password P] [--password-file F]
 */
import {
  findCredentials,
  howToSignIn,
  passwordFilePath,
  signIn,
  SignInError,
} from "../dicom/synth/sign_in.ts";
import { stowInstances } from "../dicom/synth/stow.ts";
import { planStudyV2, streamStudyV2, type SynthV2Options } from "../dicom/synth/v2/ct.ts";

export const START = "npx --yes deno@2.9.6 task start";
export const MODEL = "lung-nodule-demo";

/**
 * The demo's studies: 256 × 256, 5 mm slices (small and quick to analyse on a CPU); seeds the
 * shipped model reads right (both nodules; the mass alone; nothing on the normal scan).
 */
export const DEMO_STUDIES: { what: string; options: SynthV2Options }[] = [
  {
    what: "solid nodules",
    options: { seed: 4104, nodules: 2, noduleDiameterMm: [12, 22], noduleTypes: ["solid"] },
  },
  { what: "a lung mass", options: { seed: 4118, nodules: 0, mass: 45 } },
  { what: "no nodules", options: { seed: 4103, nodules: 0 } },
];
const SCANNER: Partial<SynthV2Options> = { matrix: 256, thicknessMm: 5 };

const HELP =
  `deno task demo — load a few synthetic chest CTs into a running service and analyse them

  --url URL            the service (default http://localhost:8080)
  --studies N          how many of the ${DEMO_STUDIES.length} demo studies (default all)
  --username U, --password P   who signs in (or IMAGING_AI_USERNAME, IMAGING_AI_PASSWORD);
                       default: the first admin of the password file
  --password-file F    default: data/initial-admin-password (beside PGLITE_DIR when set)
  --timeout S          seconds to wait for the analyses (default 600)
`;

export class DemoError extends Error {}

export interface Args {
  url: string;
  studies: number;
  username?: string;
  password?: string;
  passwordFile?: string;
  timeout: number;
  help: boolean;
}

export function parseArgs(argv: string[]): Args {
  const a: Args = {
    url: "http://localhost:8080",
    studies: DEMO_STUDIES.length,
    timeout: 600,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (argv[i] === "--help" || argv[i] === "-h") {
      a.help = true;
      continue;
    }
    if (!m) throw new DemoError(`unexpected argument ${argv[i]} (see --help)`);
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new DemoError(`--${m[1]} needs a value`);
    if (m[1] === "url") a.url = value.replace(/\/+$/, "");
    else if (m[1] === "username") a.username = value;
    else if (m[1] === "password") a.password = value;
    else if (m[1] === "password-file") a.passwordFile = value;
    else if (m[1] === "studies" || m[1] === "timeout") {
      const n = Number(value);
      const max = m[1] === "studies" ? DEMO_STUDIES.length : 86_400;
      if (!Number.isInteger(n) || n < 1 || n > max) {
        throw new DemoError(`--${m[1]} must be an integer in 1..${max}`);
      }
      a[m[1]] = n;
    } else throw new DemoError(`unknown flag --${m[1]} (see --help)`);
  }
  if (!/^https?:\/\/[^/]+/.test(a.url)) throw new DemoError(`--url must be http(s)://host[:port]`);
  return a;
}

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

/** A small FHIR client with the token; throws DemoError with the server's words. */
function client(base: string, token: string | undefined) {
  const headers = (extra: Record<string, string> = {}) => ({
    Accept: "application/fhir+json",
    ...(token ? { Authorization: `Bearer ${token}` } : {}),
    ...extra,
  });
  return async (path: string, init: { method?: string; body?: unknown } = {}): Promise<Json> => {
    const res = await fetch(`${base}/fhir/${path}`, {
      method: init.method ?? "GET",
      headers: headers(init.body ? { "Content-Type": "application/fhir+json" } : {}),
      ...(init.body ? { body: JSON.stringify(init.body) } : {}),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      const why = body.issue?.[0]?.diagnostics ?? body.error_description ?? `HTTP ${res.status}`;
      throw new DemoError(`${init.method ?? "GET"} /fhir/${path.split("?")[0]}: ${why}`);
    }
    return body;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** `SYNTH^RUTH^C` → `Ruth Synth`. */
const personName = (dicom: string) =>
  dicom.split("^").slice(0, 2).reverse().map((p) => p[0] + p.slice(1).toLowerCase()).join(" ");

/** Runs the demo; throws DemoError or SignInError (one line each) for what is expected to fail. */
export async function runDemo(args: Args, demos = DEMO_STUDIES): Promise<void> {
  const base = args.url;
  const started = performance.now();
  console.log(`imaging-ai demo: ${base}`);
  try {
    const res = await fetch(`${base}/health`);
    await res.body?.cancel();
  } catch {
    throw new DemoError(`nothing answers at ${base}: start the service first with\n  ${START}`);
  }
  // Sign in (unless the service runs with AUTH=off and needs no token).
  const env = Deno.env.toObject();
  const passwordFile = args.passwordFile ?? passwordFilePath(env);
  let token: string | undefined;
  const who = await findCredentials({
    username: args.username,
    password: args.password,
    passwordFile,
    env,
  });
  if (who) {
    token = await signIn(base, who).then((t) => t.accessToken, (e) => {
      if (!(e instanceof SignInError) || !who.source.startsWith("the password file")) throw e;
      throw new DemoError(
        `${e.message} (the password in ${passwordFile} may have been changed since: ` +
          `give --username and --password)`,
      );
    });
    console.log(`signed in as ${who.username} (${who.source})`);
  } else {
    const probe = await fetch(`${base}/fhir/ImagingStudy?_count=1`);
    await probe.body?.cancel();
    if (probe.status === 401) {
      throw new DemoError(
        `no password file at ${passwordFile}: ${
          howToSignIn(passwordFile).replace(/, or give --token T$/, "")
        }`,
      );
    }
  }
  const fhir = client(base, token);

  // Store the studies that are not there yet.
  const chosen = demos.slice(0, args.studies);
  const studies: { what: string; name: string; uid: string; id: string }[] = [];
  for (const [i, demo] of chosen.entries()) {
    const plan = planStudyV2({ ...SCANNER, ...demo.options });
    const uid = plan.study.studyInstanceUid, expected = plan.sopInstanceUids.length;
    const name = personName(plan.patient.name);
    const line = `study ${i + 1}/${chosen.length}: ${name}, ${demo.what}`;
    const existing = await findStudy(fhir, uid);
    if ((existing?.numberOfInstances ?? 0) >= expected) {
      console.log(`${line}: already stored`);
      studies.push({ what: demo.what, name, uid, id: existing!.id });
      continue;
    }
    const t = performance.now();
    let batch: Uint8Array[] = [];
    const send = async () => {
      const r = await stowInstances(`${base}/dicomweb`, batch, {
        headers: token ? { Authorization: `Bearer ${token}` } : {},
      });
      if (!r.ok || (r.failed ?? 0) > 0) {
        throw new DemoError(`storing ${name}: HTTP ${r.status} ${r.text ?? `${r.failed} failed`}`);
      }
      batch = [];
    };
    for (const instance of streamStudyV2(plan).instances) {
      batch.push(instance.bytes);
      if (batch.length === 20) await send();
    }
    if (batch.length) await send();
    const id = await waitForStudy(fhir, uid, expected);
    console.log(`${line}: ${expected} images stored (${secs(t)})`);
    studies.push({ what: demo.what, name, uid, id });
  }

  // Analyse them (the same request for the same images answers the Task it already made).
  console.log(`analysing with ${MODEL} (a few seconds a study)…`);
  const tasks = new Map<string, Json>();
  for (const s of studies) {
    const task = await fhir(`ImagingStudy/${s.id}/$analyze`, {
      method: "POST",
      body: { resourceType: "Parameters", parameter: [{ name: "model", valueString: MODEL }] },
    });
    tasks.set(s.id, task);
  }
  const deadline = Date.now() + args.timeout * 1000;
  const shown = new Map<string, string>();
  while (true) {
    for (const s of studies) {
      const task = await fhir(`Task/${tasks.get(s.id)!.id}`);
      tasks.set(s.id, task);
      // Each change (not the end of an analysis done before this run).
      const changed = shown.get(s.id) !== task.status;
      if (changed && (shown.has(s.id) || !ENDED.has(task.status))) {
        console.log(`  ${s.name}: ${task.status}`);
      }
      shown.set(s.id, task.status);
    }
    if (studies.every((s) => ENDED.has(tasks.get(s.id)!.status))) break;
    if (Date.now() > deadline) {
      throw new DemoError(`the analyses did not end in ${args.timeout} s (see the service's log)`);
    }
    await sleep(1000);
  }

  // What came of it.
  console.log("\nresults:");
  let failed = 0;
  for (const s of studies) {
    const task = tasks.get(s.id)!;
    if (task.status !== "completed") {
      failed++;
      console.log(
        `  ${s.name} (${s.what}): analysis ${task.status}: ${task.statusReason?.text ?? ""}`,
      );
      continue;
    }
    const ref = task.output?.find((o: Json) => o.type?.text === "DiagnosticReport")
      ?.valueReference?.reference;
    const report = ref ? await fhir(ref) : undefined;
    const findings = Math.max(0, (report?.result?.length ?? 1) - 1);
    // The conclusion's summary (its list of findings and the model's notice follow).
    const summary = String(report?.conclusion ?? "").split(/ Findings: | Model: /)[0];
    console.log(
      `  ${s.name} (${s.what}): ${findings} finding${findings === 1 ? "" : "s"}, report ` +
        `${report?.status ?? "missing"}: ${summary}`,
    );
  }
  console.log(`\ndone in ${secs(started)}. Open ${base}/ and sign in`);
  if (who?.source.startsWith("the password file")) {
    console.log(
      `  as ${who.username}, with the password on line 2 of ${passwordFile} ` +
        `(sed -n 2p ${passwordFile})`,
    );
  } else if (who) console.log(`  as ${who.username}`);
  console.log(
    "The worklist lists the studies with the AI status and findings; click one to view it.",
  );
  if (failed) throw new DemoError(`${failed} analysis(es) did not complete`);
}

const ENDED = new Set(["completed", "failed", "cancelled", "rejected", "entered-in-error"]);
const secs = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`;

async function findStudy(fhir: ReturnType<typeof client>, uid: string): Promise<Json | undefined> {
  const bundle = await fhir(
    `ImagingStudy?identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${uid}`)}`,
  );
  return bundle.entry?.[0]?.resource;
}

/** The ImagingStudy id once it lists every instance sent (it is rebuilt as instances arrive). */
async function waitForStudy(
  fhir: ReturnType<typeof client>,
  uid: string,
  instances: number,
): Promise<string> {
  for (let i = 0; i < 120; i++) {
    const study = await findStudy(fhir, uid);
    if (study && study.numberOfInstances >= instances) return study.id;
    await sleep(500);
  }
  throw new DemoError(`the ImagingStudy of ${uid} did not list its ${instances} images in 60 s`);
}

if (import.meta.main) {
  try {
    const args = parseArgs(Deno.args);
    if (args.help) console.log(HELP);
    else await runDemo(args);
  } catch (e) {
    if (e instanceof TypeError && /connect|sending request/i.test(e.message)) {
      console.error(`demo: lost the connection to the service (${e.message.split("\n")[0]})`);
      Deno.exit(1);
    }
    if (!(e instanceof DemoError || e instanceof SignInError)) throw e;
    console.error(`demo: ${e.message}`);
    Deno.exit(1);
  }
}
