/**
 * @module A new user's first minutes, for real: the service started as `deno task start` starts it
 * (the task's own flags; the embedded PGlite, AUTH on, no ADMIN_PASSWORD, so the first admin's
 * password file is written) on a fresh data folder, then `deno task demo` against it as its own
 * process (its first study only, the one with nodules, to keep it quick): exit 0, the sign-in,
 * the results and where to sign in printed; the report is there (final, with the findings'
 * Observations); a second run stores and analyses nothing twice. `deno task synth --post` without `--token` signs in through the same
 * password file, and without one says in one line how to sign in.
 */
import assert from "node:assert/strict";
import { signIn, SignInError } from "../../dicom/synth/sign_in.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const DENO = Deno.execPath();

/** What the child processes must not inherit from a developer's or CI's shell. */
const CLEAN = {
  DATABASE_URL: "",
  DATABASE_READ_URL: "",
  REDIS_URL: "",
  S3_ENDPOINT: "",
  PUBLIC_URL: "",
  AUTH: "",
  ADMIN_USERNAME: "",
  ADMIN_PASSWORD: "",
  AUTH_PASSWORD_GRANT: "",
  ANALYSIS_RULES: "",
  INFERENCE_WORKER: "",
  MODELS_DIR: "",
  IMAGING_AI_USERNAME: "",
  IMAGING_AI_PASSWORD: "",
  NO_COLOR: "1",
};

async function startTask(tmp: string, port: number) {
  const data = `${tmp}/data`;
  // `deno task start`'s command line, run without the task runner (so SIGTERM reaches it).
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks;
  const [deno, ...args] = String(tasks.start).split(/\s+/);
  assert.equal(deno, "deno");
  const logFile = `${tmp}/service.log`;
  const log = await Deno.open(logFile, { create: true, write: true });
  const child = new Deno.Command(DENO, {
    args,
    cwd: ROOT,
    env: {
      ...CLEAN,
      PORT: String(port),
      HOST: "127.0.0.1",
      PGLITE_DIR: `${data}/pglite`,
      OBJECT_DIR: `${data}/objects`,
      LOG_LEVEL: "warn",
      INFERENCE_PROVIDERS: "cpu",
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const pumps = Promise.all(
    [child.stdout, child.stderr].map(async (s) => {
      for await (const chunk of s) await log.write(chunk);
    }),
  ).finally(() => log.close());
  const origin = `http://127.0.0.1:${port}`;
  for (let i = 0;; i++) {
    try {
      const res = await fetch(`${origin}/health`);
      const body = await res.json();
      if (res.ok && body.status === "ok") break;
    } catch {
      // not listening yet
    }
    if (i > 1200) {
      child.kill("SIGKILL");
      await pumps;
      throw new Error(`the service did not start:\n${await Deno.readTextFile(logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    origin,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await pumps;
    },
  };
}

async function task(args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(DENO, {
    args: ["task", "-q", ...args],
    cwd: ROOT,
    env: { ...CLEAN, ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, text };
}

Deno.test({
  name:
    "deno task demo on a fresh `deno task start`: signed in, studies stored and analysed, reports final; synth --post signs in too",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const tmp = await Deno.makeTempDir({ prefix: "demo-test-" });
    const data = `${tmp}/data`;
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const service = await startTask(tmp, port);
    const env = { PGLITE_DIR: `${data}/pglite` };
    try {
      const file = `${data}/initial-admin-password`;
      const [username, password] = (await Deno.readTextFile(file)).split("\n");
      assert.equal(username, "admin");
      assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);

      await t.step("the demo loads, analyses and says where to sign in", async () => {
        const t0 = performance.now();
        const run = await task(["demo", "--url", service.origin, "--studies", "1"], env);
        const seconds = (performance.now() - t0) / 1000;
        console.log(`    (demo: ${seconds.toFixed(1)} s)`);
        assert.equal(run.code, 0, run.text);
        assert.match(run.text, /signed in as admin \(the password file .*initial-admin-password\)/);
        assert.match(run.text, /study 1\/1: .*: \d+ images stored/);
        assert.match(run.text, /\(solid nodules\): [1-9]\d* findings?, report final/);
        assert.match(run.text, new RegExp(`Open ${service.origin}/ and sign in`));
        assert.match(run.text, /as admin, with the password on line 2 of .*initial-admin-password/);
        assert.doesNotMatch(run.text, /error:|at .*\.ts:\d+/);
      });

      await t.step("the reports are there: final, with the findings' Observations", async () => {
        const { accessToken } = await signIn(service.origin, { username, password });
        const res = await fetch(
          `${service.origin}/fhir/DiagnosticReport?_include=DiagnosticReport:result&_count=50`,
          { headers: { Authorization: `Bearer ${accessToken}` } },
        );
        const bundle = await res.json();
        assert.equal(res.status, 200, JSON.stringify(bundle));
        const resources = (bundle.entry ?? []).map((e: { resource: { resourceType: string } }) =>
          e.resource
        );
        const reports = resources.filter((r: { resourceType: string }) =>
          r.resourceType === "DiagnosticReport"
        );
        assert.equal(reports.length, 1);
        for (const r of reports) {
          assert.equal(r.status, "final");
          assert.ok(r.result.length >= 2, `findings in ${r.conclusion}`);
        }
        const observations = resources.filter((r: { resourceType: string }) =>
          r.resourceType === "Observation"
        );
        assert.equal(observations.length, reports[0].result.length);
      });

      await t.step("a second run stores and analyses nothing twice", async () => {
        const run = await task(["demo", "--url", service.origin, "--studies", "1"], env);
        assert.equal(run.code, 0, run.text);
        assert.equal(run.text.match(/already stored/g)?.length, 1, run.text);
        const { accessToken } = await signIn(service.origin, { username, password });
        const res = await fetch(`${service.origin}/fhir/Task?_summary=count`, {
          headers: { Authorization: `Bearer ${accessToken}` },
        });
        assert.equal((await res.json()).total, 1);
      });

      await t.step("a wrong password is one clear error", async () => {
        await assert.rejects(
          () => signIn(service.origin, { username, password: "not the password" }),
          (e) => e instanceof SignInError && /signing in as admin failed: /.test(e.message),
        );
      });

      const synth = [
        "synth",
        "--post",
        `${service.origin}/dicomweb`,
        "--no-write",
        "--generator",
        "v1",
        "--slices",
        "2",
        "--lesions",
        "0",
        "--size",
        "32",
        "--batch",
        "1",
        "--seed",
        "77",
      ];
      await t.step("synth --post without --token signs in with the password file", async () => {
        const run = await task(synth, env);
        assert.equal(run.code, 0, run.text);
        assert.match(run.text, /signed in as admin/);
        assert.match(run.text, /2 requests \(0 failed\)/);
      });

      await t.step("synth --post with no way to sign in says how, once", async () => {
        const run = await task(synth, { PGLITE_DIR: `${tmp}/elsewhere/pglite` });
        assert.equal(run.code, 1, run.text);
        const refused = run.text.split("\n").filter((l) => /POST .*HTTP 401/.test(l));
        assert.equal(refused.length, 1, run.text);
        assert.match(refused[0], /--username NAME --password PW .*initial-admin-password/);
        assert.match(run.text, /stopped: HTTP 401/);
      });
    } finally {
      await service.stop();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});
