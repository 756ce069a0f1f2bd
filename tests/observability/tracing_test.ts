/**
 * OpenTelemetry and the access log on the real entry point (`main.ts` in its own process, with
 * Deno's built-in exporter sending OTLP/JSON to a receiver here): a request's span carries its
 * route, request id and caller; the analysis job it queued runs in a span of the same trace; and
 * one JSON log line per request names the request id, route, status and latency.
 */
import assert from "node:assert/strict";
import { stowInstances } from "../../dicom/synth/stow.ts";
import { modelsDir } from "../sidecar/_process.ts";
import { smallStudy } from "../sidecar/_study.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

interface SpanSeen {
  name: string;
  traceId: string;
  attributes: Record<string, unknown>;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** OTLP/HTTP JSON spans, flattened. */
function spansOf(body: Json): SpanSeen[] {
  const out: SpanSeen[] = [];
  for (const rs of body.resourceSpans ?? []) {
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        const attributes: Record<string, unknown> = {};
        for (const a of s.attributes ?? []) {
          const v = a.value ?? {};
          attributes[a.key] = v.stringValue ?? v.intValue ?? v.boolValue ?? v.doubleValue;
        }
        out.push({ name: s.name, traceId: s.traceId, attributes });
      }
    }
  }
  return out;
}

Deno.test("OTLP traces: the request's span, the job's span in its trace; the access log", async () => {
  const spans: SpanSeen[] = [];
  const receiver = Deno.serve(
    { port: freePort(), hostname: "127.0.0.1", onListen: () => {} },
    async (req) => {
      if (new URL(req.url).pathname === "/v1/traces") spans.push(...spansOf(await req.json()));
      else await req.body?.cancel();
      return Response.json({});
    },
  );
  const port = freePort();
  const origin = `http://127.0.0.1:${port}`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../main.ts", import.meta.url).pathname],
    env: {
      PORT: String(port),
      HOST: "127.0.0.1",
      PUBLIC_URL: origin,
      PGLITE_DIR: "memory",
      OBJECT_DIR: await Deno.makeTempDir({ prefix: "objects-otel-" }),
      AUTH: "off",
      LOG_LEVEL: "info",
      ACCESS_LOG: "on",
      DICOM_STABLE_SECONDS: "0",
      INFERENCE_PROVIDERS: "cpu",
      MODELS_DIR: await modelsDir(["threshold-demo"]),
      DATABASE_URL: "",
      REDIS_URL: "",
      S3_ENDPOINT: "",
      OTEL_DENO: "true",
      OTEL_SERVICE_NAME: "imaging-ai-test",
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.addr.port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_BSP_SCHEDULE_DELAY: "100",
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr: string[] = [];
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderr.push(chunk);
  })();
  const until = async <T>(what: string, check: () => T | Promise<T>, ms = 60_000) => {
    const end = Date.now() + ms;
    for (;;) {
      const v = await check();
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${stderr.join("")}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  try {
    await until("the API", async () => {
      try {
        const res = await fetch(`${origin}/health/live`);
        await res.body?.cancel();
        return res.ok;
      } catch {
        return false;
      }
    });
    const s = smallStudy(91);
    const stow = await stowInstances(`${origin}/dicomweb`, s.instances);
    assert.equal(stow.status, 200, JSON.stringify(stow));
    const uid = s.plan.study.studyInstanceUid;
    const study = await until("the ImagingStudy", async () => {
      const res = await fetch(
        `${origin}/fhir/ImagingStudy?identifier=${
          encodeURIComponent(`urn:dicom:uid|urn:oid:${uid}`)
        }`,
      );
      return (await res.json()).entry?.[0]?.resource;
    });
    const requestId = `otel-${crypto.randomUUID()}`;
    const asked = await fetch(`${origin}/fhir/ImagingStudy/${study.id}/$analyze`, {
      method: "POST",
      headers: { "Content-Type": "application/fhir+json", "X-Request-Id": requestId },
      body: JSON.stringify({
        resourceType: "Parameters",
        parameter: [{ name: "model", valueString: "threshold-demo" }],
      }),
    });
    assert.equal(asked.status, 202, await asked.text());

    const request = await until(
      "the $analyze request's span",
      () => spans.find((sp) => sp.attributes["request.id"] === requestId),
    );
    assert.equal(request.attributes["http.route"], "POST /fhir/ImagingStudy/{id}/$analyze");
    assert.equal(request.attributes["enduser.id"], "internal:internal");
    const job = await until(
      "the job's span in the same trace",
      () => spans.find((sp) => sp.name === "analysis job" && sp.traceId === request.traceId),
    );
    assert.equal(job.attributes["job.model"], "threshold-demo");

    const line = await until(
      "the access log line",
      () =>
        stderr.join("").split("\n").find((l) =>
          l.includes(requestId) && l.includes('"msg":"request"')
        ),
    );
    const logged = JSON.parse(line);
    assert.equal(logged.level, "info");
    assert.equal(logged.status, 202);
    assert.equal(logged.route, "POST /fhir/ImagingStudy/{id}/$analyze");
    assert.equal(typeof logged.ms, "number");
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await reading.catch(() => {});
    await child.stdout.cancel().catch(() => {});
    await receiver.shutdown();
  }
});
