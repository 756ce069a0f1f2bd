/**
 * @module The AI pipeline with AUTH=on: the embedded default's in-process worker (which mints
 * its own short-lived token) and a separate sidecar process authenticating as a SMART Backend
 * Services client (SIDECAR_CLIENT_ID + SIDECAR_PRIVATE_KEY) each file a report; a sidecar whose
 * client lacks a scope it needs fails the job with the API's 403 as the reason.
 */
import assert from "node:assert/strict";
import * as jose from "jose";
import { WORKER_SCOPE } from "../../queue/jobs.ts";
import { stowInstances } from "../../dicom/synth/stow.ts";
import {
  type Child,
  claimRedisDb,
  createDatabase,
  fhir,
  missingServices,
  modelsDir,
  startApi,
  startSidecar,
  until,
} from "../sidecar/_process.ts";
import { smallStudy } from "../sidecar/_study.ts";
import { ADMIN_PASSWORD, form, startAuthStack } from "./_auth_harness.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** STOW-RS with `token`, then `$analyze`; answers the Task when it reaches a final status. */
async function storeAndAnalyze(origin: string, token: string, seed: number): Promise<Json> {
  const s = smallStudy(seed);
  const stow = await stowInstances(`${origin}/dicomweb`, s.instances, {
    headers: { Authorization: `Bearer ${token}` },
  });
  assert.equal(stow.status, 200, JSON.stringify(stow));
  const uid = s.plan.study.studyInstanceUid;
  const query = `ImagingStudy?identifier=${encodeURIComponent(`urn:dicom:uid|urn:oid:${uid}`)}`;
  const imagingStudy = await until("the ImagingStudy", async () => {
    const found = (await fhir(origin, "GET", query, undefined, token)).body.entry?.[0]?.resource;
    return found?.numberOfInstances === s.instances.length ? found : undefined;
  });
  const asked = await fhir(origin, "POST", `ImagingStudy/${imagingStudy.id}/$analyze`, {
    resourceType: "Parameters",
    parameter: [{ name: "model", valueString: "threshold-demo" }],
  }, token);
  assert.equal(asked.status, 202, JSON.stringify(asked.body));
  return await until(`Task/${asked.body.id} to end`, async () => {
    const task = (await fhir(origin, "GET", `Task/${asked.body.id}`, undefined, token)).body;
    return ["completed", "failed"].includes(task.status) ? task : undefined;
  }, 60_000);
}

Deno.test("AUTH=on, embedded default: the in-process worker files its report with its own token", async () => {
  const st = await startAuthStack({
    INFERENCE_WORKER: "on",
    MODELS_DIR: await modelsDir(["threshold-demo"]),
    DICOM_STABLE_SECONDS: "1",
    INFERENCE_PROVIDERS: "cpu",
  });
  try {
    const task = await storeAndAnalyze(st.origin, st.tokens.clinician, 8101);
    assert.equal(task.status, "completed", task.statusReason?.text);
    const report = task.output?.[0]?.valueReference?.reference;
    const res = await fhir(st.origin, "GET", report, undefined, st.tokens.viewer);
    assert.equal(res.status, 200);
    assert.equal(res.body.status, "final");
  } finally {
    await st.close();
  }
});

const missing = missingServices(["DATABASE_URL", "REDIS_URL"]);
Deno.test({
  name: missing.length
    ? `AUTH=on: a sidecar process as a Backend Services client [skipped, ${missing} not set]`
    : "AUTH=on: a sidecar process as a Backend Services client files its report; without a scope it needs, the job fails with the 403",
  ignore: missing.length > 0,
  fn: async () => {
    const cleanups: (() => Promise<unknown>)[] = [];
    const children: Child[] = [];
    try {
      const db = await createDatabase(Deno.env.get("DATABASE_URL")!);
      cleanups.push(db.drop);
      const redis = await claimRedisDb(Deno.env.get("REDIS_URL")!);
      cleanups.push(redis.release);
      const models = await modelsDir(["threshold-demo"]);
      const api = await startApi({
        DATABASE_URL: db.url,
        REDIS_URL: redis.url,
        OBJECT_DIR: await Deno.makeTempDir({ prefix: "objects-auth-e2e-" }),
        MODELS_DIR: models,
        INFERENCE_WORKER: "off",
        DICOM_STABLE_SECONDS: "1",
        LOG_LEVEL: "warn",
        AUTH: "on",
        AUTH_PASSWORD_GRANT: "on",
        ADMIN_PASSWORD,
      });
      children.push(api);
      const login = await fetch(
        `${api.origin}/auth/token`,
        form({ grant_type: "password", username: "admin", password: ADMIN_PASSWORD }),
      );
      const admin = (await login.json()).access_token as string;
      assert.ok(admin);

      const register = async (id: string, scope: string) => {
        const { privateKey, publicKey } = await jose.generateKeyPair("ES384", {
          extractable: true,
        });
        const kid = `${id}-1`;
        const res = await fetch(`${api.origin}/auth/clients/${id}`, {
          method: "PUT",
          headers: { Authorization: `Bearer ${admin}`, "Content-Type": "application/json" },
          body: JSON.stringify({
            jwks: { keys: [{ ...await jose.exportJWK(publicKey), kid, alg: "ES384" }] },
            scope,
          }),
        });
        assert.equal(res.status, 201, await res.text());
        return JSON.stringify({ ...await jose.exportJWK(privateKey), kid, alg: "ES384" });
      };
      const env = (id: string, key: string) => ({
        // Another name for the API than its PUBLIC_URL (as behind a load balancer): the
        // assertion's aud must still be the token endpoint the server announces.
        SIDECAR_API_URL: api.origin.replace("127.0.0.1", "localhost"),
        SIDECAR_CLIENT_ID: id,
        SIDECAR_PRIVATE_KEY: key,
        REDIS_URL: redis.url,
        MODELS_DIR: models,
        LOG_LEVEL: "info",
      });

      const sidecar = await startSidecar(
        "sidecar",
        env("sidecar", await register("sidecar", WORKER_SCOPE)),
      );
      children.push(sidecar);
      const done = await storeAndAnalyze(api.origin, admin, 8201);
      assert.equal(done.status, "completed", `${done.statusReason?.text}\n${sidecar.tail()}`);
      sidecar.kill("SIGTERM");
      await sidecar.status;

      // A client that may not write reports: the job fails, and the Task says why.
      const weak = await startSidecar(
        "weak",
        env("weak", await register("weak", "system/ImagingStudy.rs system/Task.rus")),
      );
      children.push(weak);
      const failed = await storeAndAnalyze(api.origin, admin, 8202);
      assert.equal(failed.status, "failed");
      assert.match(failed.statusReason?.text ?? "", /403|may not|scope/);
    } finally {
      for (const c of children) {
        try {
          c.kill("SIGKILL");
        } catch { /* exited */ }
        await c.status.catch(() => {});
      }
      for (const clean of cleanups.reverse()) await clean().catch(() => {});
    }
  },
});
