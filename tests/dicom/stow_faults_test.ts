/**
 * STOW-RS and WADO-RS while the object store fails, in process on the embedded database:
 * - the folder store on a 1 MiB tmpfs (root only): the parts past the space fail with 0xA700 and
 *   the reason, the request after answers 507 with Retry-After, every stored part has its row and
 *   object and no failed one left either; once there is room the same parts are stored;
 * - the S3 store (the real server in S3_ENDPOINT) behind a TCP proxy that is cut (a server down or
 *   restarting) and stalled (a server that stops answering; S3_TIMEOUT_SECONDS=2): STOW answers 503
 *   with Retry-After and 0xA700 per part, WADO and readiness 503, and both work again once the
 *   server is back.
 */
import assert from "node:assert/strict";
import { DeleteBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { createApp } from "../../app.ts";
import { loadConfig } from "../../platform/config.ts";
import { ObjectStoreUnavailable, storeUnavailable } from "../../db/object_store.ts";
import { dependencyFault } from "../../db/unavailable.ts";
import { encodeMultipartRelated } from "../../dicom/synth/stow.ts";
import { createServices, type Services } from "../../services.ts";
import { startTcpProxy } from "../_tcp_proxy.ts";
import { sphereStudy } from "../sidecar/_study.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

Deno.test("storeUnavailable(): a full disk is 507, an unreachable or failing server 503, the rest null", () => {
  const full = Object.assign(new Error("No space left on device (os error 28)"), {
    code: "ENOSPC",
  });
  assert.equal(storeUnavailable(full)?.status, 507);
  assert.match(storeUnavailable(full)!.reason, /full \(ENOSPC\)/);
  assert.equal(storeUnavailable({ name: "QuotaExceeded", $metadata: {} })?.status, 507);
  assert.equal(storeUnavailable({ code: "ECONNREFUSED" })?.status, 503);
  assert.equal(storeUnavailable(new Error("x", { cause: { code: "ECONNRESET" } }))?.status, 503);
  assert.equal(storeUnavailable({ name: "TimeoutError" })?.status, 503);
  assert.equal(
    storeUnavailable({ name: "SlowDown", $metadata: { httpStatusCode: 503 } })?.status,
    503,
  );
  assert.equal(storeUnavailable({ name: "NoSuchKey", $metadata: { httpStatusCode: 404 } }), null);
  assert.equal(
    storeUnavailable({ name: "AccessDenied", $metadata: { httpStatusCode: 403 } }),
    null,
  );
  assert.equal(storeUnavailable(new TypeError("invalid object key")), null);
  // The API's handler tells the two dependencies apart: raw socket errors are the database's.
  assert.equal(dependencyFault(new ObjectStoreUnavailable("x", 507))?.dependency, "object store");
  assert.equal(dependencyFault({ code: "ECONNREFUSED" })?.dependency, "database");
  assert.equal(dependencyFault(new TypeError("bug")), null);
});

/** An app on the embedded database with `env` on top; closes with `done()`. */
async function openApp(env: Record<string, string>) {
  const config = loadConfig({
    DATABASE_URL: "",
    PGLITE_DIR: "memory",
    LOG_LEVEL: "error",
    AUTH: "off",
    AUDIT: "off",
    DICOM_STABLE_SECONDS: "60",
    INFERENCE_WORKER: "off",
    ...env,
  });
  const services = await createServices(config);
  const app = createApp(services);
  return { services, app };
}

async function stow(app: ReturnType<typeof createApp>, instances: Uint8Array[]) {
  const { contentType, body } = encodeMultipartRelated(instances);
  const r = await app.request("/dicomweb/studies", {
    method: "POST",
    headers: { "Content-Type": contentType, Accept: "application/dicom+json" },
    body: new Uint8Array(await body.arrayBuffer()),
  });
  const json: Json = await r.json();
  return {
    status: r.status,
    retryAfter: r.headers.get("Retry-After"),
    stored: (json["00081199"]?.Value ?? []) as Json[],
    failed: (json["00081198"]?.Value ?? []) as Json[],
    json,
  };
}

/** Instances stored for the study, by QIDO-RS. */
async function instanceCount(app: ReturnType<typeof createApp>, studyUid: string) {
  const r = await app.request(`/dicomweb/studies/${studyUid}/instances`, {
    headers: { Accept: "application/dicom+json" },
  });
  if (r.status === 204) return 0;
  assert.equal(r.status, 200);
  return ((await r.json()) as unknown[]).length;
}

/** Files under `dir` (objects and leftovers of interrupted writes). */
async function files(dir: string): Promise<{ objects: number; temp: number }> {
  let objects = 0;
  let temp = 0;
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(`${d}/${e.name}`);
      else if (e.name.startsWith(".tmp-")) temp++;
      else objects++;
    }
  };
  await walk(dir).catch(() => {});
  return { objects, temp };
}

async function sh(...cmd: string[]) {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

Deno.test({
  name:
    "folder store full: 0xA700 per part past the space, then 507 + Retry-After; no half-written part; stored once there is room",
  ignore: Deno.build.os !== "linux" || Deno.uid() !== 0,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "objects-full-" });
    await sh("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir);
    let services: Services | undefined;
    try {
      const opened = await openApp({ OBJECT_DIR: dir });
      services = opened.services;
      const { app } = opened;
      // 40 slices of 128 × 128 (about 33 kB each): some 30 fit in 1 MiB.
      const study = sphereStudy({ seed: 41, rows: 128, cols: 128, slices: 40, spheres: [] });
      const uid = study.plan.study.studyInstanceUid;
      const first = await stow(app, study.instances);
      assert.equal(first.status, 202, JSON.stringify(first.json).slice(0, 400));
      assert.ok(first.stored.length >= 10 && first.failed.length >= 1, `${first.stored.length}`);
      for (const f of first.failed) assert.equal(f["00081197"].Value[0], 0xa700);
      // Every stored part has its row and its object; no failed part left either.
      assert.equal(await instanceCount(app, uid), first.stored.length);
      assert.deepEqual(await files(dir), { objects: first.stored.length, temp: 0 });

      const other = sphereStudy({ seed: 42, rows: 128, cols: 128, slices: 4, spheres: [] });
      const full = await stow(app, other.instances);
      assert.equal(full.status, 507);
      assert.equal(full.retryAfter, "5");
      assert.equal(full.failed.length, 4);
      for (const f of full.failed) assert.equal(f["00081197"].Value[0], 0xa700);
      assert.equal(await instanceCount(app, other.plan.study.studyInstanceUid), 0);
      assert.deepEqual(await files(dir), { objects: first.stored.length, temp: 0 });

      // Reads go on while the disk is full.
      const series = study.plan.study.seriesInstanceUid;
      const sop = first.stored[0]["00081155"].Value[0];
      const wado = await app.request(`/dicomweb/studies/${uid}/series/${series}/instances/${sop}`, {
        headers: { Accept: "multipart/related; type=application/dicom" },
      });
      assert.equal(wado.status, 200);
      await wado.body?.cancel();

      // Room again: the same request stores what was missing (the rest are duplicates).
      await sh("mount", "-o", "remount,size=16m", dir);
      const again = await stow(app, study.instances);
      assert.equal(again.status, 200, JSON.stringify(again.json).slice(0, 400));
      assert.equal(await instanceCount(app, uid), study.instances.length);
      assert.deepEqual(await files(dir), { objects: study.instances.length, temp: 0 });
    } finally {
      await services?.close?.().catch(() => {});
      await sh("umount", "-l", dir).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

const S3_ENDPOINT = Deno.env.get("S3_ENDPOINT") ?? "";

Deno.test({
  name:
    "S3 down or stalled: STOW 503 + Retry-After with 0xA700 per part, WADO and readiness 503; back by itself",
  ignore: !S3_ENDPOINT,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const target = new URL(S3_ENDPOINT);
    const proxy = startTcpProxy({ hostname: target.hostname, port: Number(target.port || 80) });
    const bucket = `stow-faults-${Date.now().toString(36)}-${crypto.randomUUID().slice(0, 6)}`;
    let services: Services | undefined;
    try {
      const opened = await openApp({
        OBJECT_DIR: "",
        S3_ENDPOINT: `http://127.0.0.1:${proxy.port}`,
        S3_BUCKET: bucket,
        S3_TIMEOUT_SECONDS: "2",
        S3_REGION: Deno.env.get("S3_REGION") ?? "us-east-1",
        S3_ACCESS_KEY_ID: Deno.env.get("S3_ACCESS_KEY_ID") ?? "",
        S3_SECRET_ACCESS_KEY: Deno.env.get("S3_SECRET_ACCESS_KEY") ?? "",
      });
      services = opened.services;
      const { app } = opened;
      const study = sphereStudy({ seed: 51, slices: 8, spheres: [] });
      const uid = study.plan.study.studyInstanceUid;
      const series = study.plan.study.seriesInstanceUid;
      assert.equal((await stow(app, study.instances.slice(0, 4))).status, 200);
      const sop = (await stow(app, study.instances.slice(0, 1))).stored[0]["00081155"].Value[0];
      const wado = () =>
        app.request(`/dicomweb/studies/${uid}/series/${series}/instances/${sop}`, {
          headers: { Accept: "multipart/related; type=application/dicom" },
        });

      for (const fault of ["cut", "stall"] as const) {
        proxy[fault]();
        const started = Date.now();
        const down = await stow(app, study.instances.slice(4));
        const seconds = (Date.now() - started) / 1000;
        assert.equal(down.status, 503, `${fault}: ${JSON.stringify(down.json).slice(0, 300)}`);
        assert.equal(down.retryAfter, "5");
        assert.equal(down.failed.length, 4);
        for (const f of down.failed) assert.equal(f["00081197"].Value[0], 0xa700);
        assert.ok(seconds < 20, `${fault}: STOW took ${seconds} s`);
        const read = await wado();
        assert.equal(read.status, 503, fault);
        assert.equal(read.headers.get("Retry-After"), "5");
        const outcome: Json = await read.json();
        assert.equal(outcome.issue[0].code, "no-store");
        assert.match(outcome.issue[0].diagnostics, /object store is unavailable/);
        assert.equal((await app.request("/health/ready")).status, 503, fault);
        assert.equal(await instanceCount(app, uid), 4, `${fault}: no row for a failed part`);
        proxy.restore();
        const back = await wado();
        assert.equal(back.status, 200, fault);
        await back.body?.cancel();
      }
      assert.equal((await stow(app, study.instances.slice(4))).status, 200);
      assert.equal(await instanceCount(app, uid), 8);
      // The stalled puts may have landed once the server answered again: the cleanup removes them.
      const cleanup = services.dicom.deps.cleanup;
      assert.ok(cleanup.pending().length >= 4, "the timed-out puts are not in the cleanup");
      await cleanup.flush();
      const keys = await Array.fromAsync(services.store.list("dicom/"));
      assert.equal(keys.length, 8, "an object without its row was left behind");
      for (const k of keys) await services.store.delete(k.key);
    } finally {
      await services?.close?.().catch(() => {});
      await proxy.close();
      const s3 = new S3Client({
        endpoint: S3_ENDPOINT,
        region: Deno.env.get("S3_REGION") ?? "us-east-1",
        forcePathStyle: true,
        credentials: {
          accessKeyId: Deno.env.get("S3_ACCESS_KEY_ID") ?? "",
          secretAccessKey: Deno.env.get("S3_SECRET_ACCESS_KEY") ?? "",
        },
      });
      await s3.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {});
      s3.destroy();
    }
  },
});
