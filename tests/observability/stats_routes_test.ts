/**
 * @module Request statistics by route class: routeClass() maps paths to bounded classes, memory
 * stays bounded over many raw paths (few classes, few Prometheus series), and record()'s cost.
 */
import assert from "node:assert/strict";
import { createRequestStats, type RequestSample, routeClass } from "../../observability/stats.ts";
import { clock, HOUR, normal, rng, T0 } from "./_stats.ts";

const HEX64 = "a3".repeat(32);
const ROUTE_TABLE: [string, string, string][] = [
  ["GET", "/fhir/Patient/123/_history/4", "GET /fhir/Patient/{id}/_history/{vid}"],
  ["GET", "/fhir/Patient/123/_history", "GET /fhir/Patient/{id}/_history"],
  ["GET", "/fhir/Patient/123", "GET /fhir/Patient/{id}"],
  ["PUT", "/fhir/Observation/abc-1.2", "PUT /fhir/Observation/{id}"],
  ["GET", "/fhir/Patient?name=smith&_count=10", "GET /fhir/Patient"],
  ["POST", "/fhir/Patient", "POST /fhir/Patient"],
  ["POST", "/fhir/Patient/_search", "POST /fhir/Patient/_search"],
  ["GET", "/fhir/Task/_history?_since=2025-01-01", "GET /fhir/Task/_history"],
  ["GET", "/fhir/_history", "GET /fhir/_history"],
  ["POST", "/fhir/ImagingStudy/1.2.840/$analyze", "POST /fhir/ImagingStudy/{id}/$analyze"],
  ["POST", "/fhir/ImagingStudy/1/$made-up-op", "POST /fhir/ImagingStudy/{id}/{op}"],
  ["POST", "/fhir/ImagingStudy/1/%24analyze", "POST /fhir/ImagingStudy/{id}/$analyze"],
  ["GET", "/fhir/Patient/$everything", "GET /fhir/Patient/$everything"],
  ["GET", "/fhir/$export", "GET /fhir/$export"],
  ["GET", "/fhir/Patient/p1/Observation?code=x", "GET /fhir/Patient/{id}/Observation"],
  ["GET", "/fhir/Patient/p1/Nonsense", "GET /fhir/Patient/{id}/{type}"],
  ["GET", "/fhir/Group/g1/$export", "GET /fhir/Group/{id}/$export"],
  ["DELETE", "/fhir/$export-status/abc", "DELETE /fhir/$export-status/{id}"],
  ["GET", "/fhir/$export-file/abc/Patient-1.ndjson", "GET /fhir/$export-file/{id}/{file}"],
  ["GET", "/fhir/Xyzzy/1", "GET /fhir/{type}/{id}"],
  ["GET", "/fhir/patient/1", "GET /fhir/{type}/{id}"],
  ["GET", "/fhir/<script>/1", "GET /fhir/{type}/{id}"],
  ["POST", "/fhir", "POST /fhir"],
  ["POST", "/fhir/", "POST /fhir"],
  ["GET", "/fhir/metadata", "GET /fhir/metadata"],
  ["HEAD", "/fhir/metadata?_format=json", "HEAD /fhir/metadata"],
  ["GET", "/fhir/.well-known/smart-configuration", "GET /fhir/.well-known/smart-configuration"],
  ["GET", "/fhir/Patient/1/_history/2/extra", "GET {other}"],
  ["GET", "/fhir/Observation/1/Patient", "GET {other}"],
  ["POST", "/fhir/ImagingStudy/1/$analyze/x", "POST {other}"],
  ["GET", "/fhir/$export", "GET /fhir/$export"],
  ["GET", "/fhir/Patient/p1/Observation?code=x", "GET /fhir/Patient/{id}/Observation"],
  ["GET", "/fhir/Patient/p1/Nonsense", "GET /fhir/Patient/{id}/{type}"],
  [
    "GET",
    "/dicomweb/studies/1.2.3/series/4.5/instances/6.7/frames/1,2",
    "GET /dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
  ],
  [
    "GET",
    "/dicomweb/studies/1.2.3/series/4.5/instances/6.7/frames/3/rendered",
    "GET /dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
  ],
  [
    "GET",
    "/dicomweb/studies/1.2.3/series/4.5/instances/6.7/bulkdata/7FE00010/1",
    "GET /dicomweb/studies/{study}/series/{series}/instances/{instance}/bulkdata/{path}",
  ],
  [
    "GET",
    "/dicomweb/studies/1.2.3/series/4.5/metadata",
    "GET /dicomweb/studies/{study}/series/{series}/metadata",
  ],
  ["GET", "/dicomweb/studies?PatientID=7", "GET /dicomweb/studies"],
  ["GET", "/dicomweb/studies/1.2.3/instances", "GET /dicomweb/studies/{study}/instances"],
  ["POST", "/dicomweb/studies/1.2.3", "POST /dicomweb/studies/{study}"],
  ["DELETE", "/dicomweb/studies/1.2.3", "DELETE /dicomweb/studies/{study}"],
  ["GET", "/dicomweb/studies/1.2.3/frames/1", "GET {other}"],
  ["GET", "/dicomweb/studies/1/studies/2", "GET {other}"],
  ["GET", "/dicomweb", "GET {other}"],
  ["PUT", `/uploads/results/${HEX64}/mask.nii.gz`, "PUT /uploads/results/{key}/{name}"],
  ["GET", `/uploads/results/${HEX64}/summary.json`, "GET /uploads/results/{key}/{name}"],
  ["POST", "/uploads/nifti?patient=Patient/1", "POST /uploads/nifti"],
  [
    "GET",
    "/uploads/nifti/0b3c9c4e-8a0c-4b59-9d0f-0d0a3d7e6f11",
    "GET /uploads/nifti/{id}",
  ],
  ["GET", "/reports/r-17/findings.xlsx", "GET /reports/{id}/findings.xlsx"],
  ["GET", "/reports/r-17/findings.json", "GET /reports/{id}/findings.json"],
  ["GET", "/reports/r-17/findings.csv", "GET {other}"],
  ["GET", "/auth/users/42", "GET /auth/users/{id}"],
  ["PATCH", "/auth/users/42", "PATCH /auth/users/{id}"],
  ["PUT", "/auth/clients/my-app", "PUT /auth/clients/{id}"],
  ["GET", "/auth/users", "GET /auth/users"],
  ["POST", "/auth/token", "POST /auth/token"],
  ["GET", "/.well-known/jwks.json", "GET /.well-known/jwks.json"],
  ["GET", "/events?types=Task", "GET /events"],
  ["GET", "/health", "GET /health"],
  ["GET", "/health/live", "GET /health/live"],
  ["GET", "/metrics", "GET /metrics"],
  ["GET", "/admin/stats", "GET /admin/stats"],
  ["get", "/admin/stats#top", "GET /admin/stats"],
  ["GET", "http://localhost:8080/fhir/Patient/9?x=1", "GET /fhir/Patient/{id}"],
  ["GET", "/", "GET {other}"],
  ["GET", "/wp-admin/setup-config.php", "GET {other}"],
  ["GET", "/admin/stats/../../etc/passwd", "GET {other}"],
  ["BREW", "/fhir/Patient/1", "OTHER /fhir/Patient/{id}"],
  ["GET", `/fhir/${"a/".repeat(40)}`, "GET {other}"],
];

Deno.test(`routeClass: ${ROUTE_TABLE.length} paths map to bounded classes`, () => {
  for (const [method, path, want] of ROUTE_TABLE) {
    assert.equal(routeClass(method, path), want, `${method} ${path}`);
  }
});

Deno.test("memory bound: 1 000 000 samples over 1000 raw paths stay in a few route classes", () => {
  const r = rng(7);
  const raw: [string, string][] = [];
  for (let i = 0; i < 1000; i++) {
    const id = Math.floor(r() * 1e9).toString(36);
    const uid = `1.2.840.${i}.${Math.floor(r() * 1e6)}`;
    const hex = Array.from({ length: 64 }, () => "0123456789abcdef"[Math.floor(r() * 16)]).join(
      "",
    );
    const paths: [string, string][] = [
      ["GET", `/fhir/Patient/${id}`],
      ["GET", `/fhir/Observation/${id}/_history/${i}`],
      ["GET", `/fhir/Madeup${id}/${id}`], // made-up types: {type}
      ["POST", `/fhir/ImagingStudy/${id}/$op${i}`], // made-up operations: {op}
      ["GET", `/dicomweb/studies/${uid}/series/${uid}.1/instances/${uid}.2/frames/${i % 9 + 1}`],
      ["PUT", `/uploads/results/${hex}/file${i}.json`],
      ["GET", `/reports/${id}/findings.xlsx?download=${i}`],
      ["GET", `/scan/${id}/${i}.php`], // junk: {other}
      [["GET", "POST", "PROPFIND", "X-" + id][i % 4], `/auth/users/${id}`],
      ["GET", `/events?focus=ImagingStudy/${id}`],
    ];
    raw.push(paths[i % paths.length]);
  }
  assert.equal(new Set(raw.map(([m, p]) => `${m} ${p}`)).size, 1000);
  const classes = raw.map(([m, p]) => ({ cls: routeClass(m, p), method: m }));
  const distinct = new Set(classes.map((c) => c.cls));
  assert.ok(distinct.size <= 14, [...distinct].join("\n"));

  const c = clock();
  const stats = createRequestStats({ now: c.now });
  // Two days of traffic, so that both rings wrap around many times.
  const span = 2 * 24 * HOUR;
  for (let i = 0; i < 1_000_000; i++) {
    const { cls, method } = classes[i % 1000];
    c.t = T0 + Math.floor((i / 1_000_000) * span);
    stats.record({ routeClass: cls, method, status: 200 + (i % 4) * 100, ms: 1 + (i % 500) });
  }
  const snap = stats.snapshot();
  assert.equal(Object.keys(snap.windows.day.routes).length, distinct.size);
  assert.ok(snap.windows.day.overall.count < 1_000_000 / 2 + 1000);
  assert.ok(snap.windows.hour.overall.count > 0);
  const text = stats.prometheus();
  const series = text.split("\n").filter((l) =>
    l.startsWith("http_request_duration_seconds_count")
  );
  // One series per route class and normalized method (PROPFIND and X-… are both OTHER).
  assert.ok(series.length <= distinct.size + 2, series.join("\n"));
  assert.ok(!text.includes("PROPFIND") && !text.includes("X-"));
  console.log(`  ${distinct.size} route classes, ${series.length} Prometheus series`);
});

Deno.test("record() is cheap: well under 1 µs per call on average", () => {
  const stats = createRequestStats();
  const r = rng(3);
  const classes = ROUTE_TABLE.map(([m, p]) => ({ cls: routeClass(m, p), method: m }));
  const now = Date.now();
  const samples: RequestSample[] = Array.from({ length: 100_000 }, (_, i) => {
    const { cls, method } = classes[i % classes.length];
    return {
      routeClass: cls,
      method,
      status: r() < 0.02 ? 500 : 200,
      ms: 20 * Math.exp(normal(r)),
      // Half with an explicit time over the last day, half stamped by the clock.
      at: i % 2 ? now - Math.floor(r() * 24 * HOUR) : undefined,
    };
  });
  for (const s of samples) stats.record(s); // warm up: slots allocated, code optimized
  const calls = 2_000_000;
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) stats.record(samples[i % samples.length]);
  const nsPerCall = ((performance.now() - t0) * 1e6) / calls;

  const paths = ROUTE_TABLE.map(([m, p]) => [m, p]);
  const t1 = performance.now();
  let sink = 0;
  for (let i = 0; i < 200_000; i++) {
    const [m, p] = paths[i % paths.length];
    sink += routeClass(m, p).length;
  }
  const nsRouteClass = ((performance.now() - t1) * 1e6) / 200_000;
  const t2 = performance.now();
  const snap = stats.snapshot();
  const msSnapshot = performance.now() - t2;
  const t3 = performance.now();
  stats.prometheus();
  const msProm = performance.now() - t3;
  assert.ok(sink > 0 && snap.windows.day.overall.count > 0);
  console.log(
    `  record(): ${nsPerCall.toFixed(0)} ns/call; routeClass(): ${nsRouteClass.toFixed(0)} ` +
      `ns/call; snapshot() of ${Object.keys(snap.windows.day.routes).length} routes: ` +
      `${msSnapshot.toFixed(1)} ms; prometheus(): ${msProm.toFixed(1)} ms`,
  );
  assert.ok(nsPerCall < 1000, `record() took ${nsPerCall} ns per call`);
});
