/**
 * @module Who may call what: every route of the app (read from Hono's route list, so a route added
 * without a row here fails this suite) × every kind of caller → 401 (no or a bad token), 403 (not
 * allowed by role or scopes) or allowed (any other status below 500). FHIR interactions, the
 * operation and Bundles are rows of their own under the one `/fhir/*` route.
 */
import assert from "node:assert/strict";
import { createApp } from "../../app.ts";
import { type AuthStack, form, PASSWORD, startAuthStack } from "./_auth_harness.ts";

type Who = "none" | "bad" | "admin" | "clinician" | "viewer" | "system" | "narrow" | "patient";
/** `patient`: a viewer bound to one Patient (SMART `patient` claim, `patient/*.rs`). */
const WHO: Who[] = ["none", "bad", "admin", "clinician", "viewer", "system", "narrow", "patient"];
type Expect = "ok" | 401 | 403;

/** Expected per caller; `public` rows are open to all, `any` rows to every valid token. */
type Rule =
  | "public"
  | "any"
  | "admin"
  | Partial<Record<Exclude<Who, "none" | "bad">, Expect>>;

interface Row {
  /** The route as Hono lists it (`METHOD path`). */
  route: string;
  name: string;
  method: string;
  path: string;
  init?: RequestInit;
  rule: Rule;
}

const UID = "1.2.3.4";
const KEY = "a".repeat(64);
const json = (body: unknown): RequestInit => ({
  headers: { "Content-Type": "application/fhir+json" },
  body: JSON.stringify(body),
});
// Shorthands for the scopes of each caller: r = read/search, w = create/update, d = delete.
const READ_ALL = {
  admin: "ok",
  clinician: "ok",
  viewer: "ok",
  system: "ok",
  narrow: 403,
  patient: "ok",
} as const;
/** Reads a patient-bound token may not make: not limited to one patient's compartment. */
const READ_UNBOUND = { ...READ_ALL, patient: 403 } as const;
const WRITE = { admin: "ok", clinician: "ok", viewer: 403, system: "ok", narrow: 403 } as const;
const DELETE = { admin: "ok", clinician: 403, viewer: 403, system: "ok", narrow: 403 } as const;
const PATIENT_READ = {
  admin: "ok",
  clinician: "ok",
  viewer: "ok",
  system: "ok",
  narrow: "ok",
  patient: "ok",
} as const;

const inst = `/dicomweb/studies/${UID}/series/${UID}/instances/${UID}`;
const D = "/dicomweb/studies/:study{[0-9.]{1,64}}";
const S = `${D}/series/:series{[0-9.]{1,64}}`;
const I = `${S}/instances/:instance{[0-9.]{1,64}}`;
const RESULT = "/uploads/results/:key{[0-9a-f]{64}}/:name{[A-Za-z0-9][A-Za-z0-9._-]{0,63}}";

const ROWS: Row[] = [
  { route: "GET /health", name: "health", method: "GET", path: "/health", rule: "public" },
  { route: "GET /health/live", name: "live", method: "GET", path: "/health/live", rule: "public" },
  {
    route: "GET /health/ready",
    name: "ready",
    method: "GET",
    path: "/health/ready",
    rule: "public",
  },
  {
    route: "GET /health/detailed",
    name: "detailed health",
    method: "GET",
    path: "/health/detailed",
    rule: "admin",
  },
  {
    route: "POST /auth/token",
    name: "token endpoint",
    method: "POST",
    path: "/auth/token",
    init: form({ grant_type: "unknown" }),
    rule: "public",
  },
  {
    route: "POST /auth/revoke",
    name: "revocation",
    method: "POST",
    path: "/auth/revoke",
    init: form({ token: "not-a-token" }),
    rule: "public",
  },
  { route: "GET /auth/me", name: "me", method: "GET", path: "/auth/me", rule: "any" },
  // SMART App Launch: the authorization endpoint's pages and sign-out check their own callers
  // (browser session, CSRF token); introspection takes client authentication or a system token.
  {
    route: "GET /auth/authorize",
    name: "authorization endpoint",
    method: "GET",
    path: "/auth/authorize?client_id=nobody",
    rule: "public",
  },
  {
    route: "POST /auth/authorize",
    name: "authorization endpoint (form)",
    method: "POST",
    path: "/auth/authorize",
    init: form({ client_id: "nobody" }),
    rule: "public",
  },
  {
    route: "POST /auth/logout",
    name: "browser sign-out",
    method: "POST",
    path: "/auth/logout",
    rule: "public",
  },
  {
    route: "POST /auth/launch",
    name: "EHR launch",
    method: "POST",
    path: "/auth/launch",
    init: { headers: { "Content-Type": "application/json" }, body: "{}" },
    rule: { admin: "ok", clinician: "ok", viewer: 403, system: "ok", narrow: "ok", patient: 403 },
  },
  {
    route: "GET /auth/apps",
    name: "apps an EHR user may open",
    method: "GET",
    path: "/auth/apps",
    rule: { admin: "ok", clinician: "ok", viewer: 403, system: "ok", narrow: "ok", patient: 403 },
  },
  {
    route: "POST /auth/introspect",
    name: "token introspection",
    method: "POST",
    path: "/auth/introspect",
    init: form({ token: "not-a-token" }),
    rule: { admin: 403, clinician: 403, viewer: 403, system: "ok", narrow: "ok", patient: 403 },
  },
  {
    route: "GET /auth/.well-known/openid-configuration",
    name: "OpenID configuration at the issuer",
    method: "GET",
    path: "/auth/.well-known/openid-configuration",
    rule: "public",
  },
  {
    route: "GET /admin/stats",
    name: "request statistics",
    method: "GET",
    path: "/admin/stats",
    rule: "admin",
  },
  {
    route: "GET /admin/queue",
    name: "analysis queue",
    method: "GET",
    path: "/admin/queue",
    rule: "admin",
  },
  {
    route: "GET /admin/forwarding",
    name: "DICOM forwarding log",
    method: "GET",
    path: "/admin/forwarding",
    rule: "admin",
  },
  {
    route: "POST /admin/forwarding/retry",
    name: "DICOM forwarding retry",
    method: "POST",
    path: "/admin/forwarding/retry",
    rule: "admin",
  },
  {
    route: "POST /admin/objects/sweep",
    name: "object sweep",
    method: "POST",
    path: "/admin/objects/sweep",
    rule: "admin",
  },
  {
    route: "GET /metrics",
    name: "Prometheus metrics",
    method: "GET",
    path: "/metrics",
    rule: "admin",
  },
  {
    route: "GET /auth/users",
    name: "list users",
    method: "GET",
    path: "/auth/users",
    rule: "admin",
  },
  {
    route: "POST /auth/users",
    name: "create user (bad body)",
    method: "POST",
    path: "/auth/users",
    init: { headers: { "Content-Type": "application/json" }, body: "{}" },
    rule: "admin",
  },
  ...["GET", "PATCH", "DELETE"].map((method): Row => ({
    route: `${method} /auth/users/:id`,
    name: `${method} user`,
    method,
    path: "/auth/users/no-such-user",
    init: method === "PATCH"
      ? { headers: { "Content-Type": "application/json" }, body: "{}" }
      : undefined,
    rule: "admin",
  })),
  {
    route: "GET /auth/clients",
    name: "list clients",
    method: "GET",
    path: "/auth/clients",
    rule: "admin",
  },
  ...["GET", "PUT", "DELETE"].map((method): Row => ({
    route: `${method} /auth/clients/:id`,
    name: `${method} client`,
    method,
    path: "/auth/clients/no-such-client",
    init: method === "PUT"
      ? { headers: { "Content-Type": "application/json" }, body: "{}" }
      : undefined,
    rule: "admin",
  })),
  {
    route: "GET /.well-known/jwks.json",
    name: "JWKS",
    method: "GET",
    path: "/.well-known/jwks.json",
    rule: "public",
  },
  {
    route: "GET /.well-known/smart-configuration",
    name: "SMART configuration",
    method: "GET",
    path: "/.well-known/smart-configuration",
    rule: "public",
  },
  {
    route: "GET /fhir/.well-known/smart-configuration",
    name: "SMART configuration under the FHIR base",
    method: "GET",
    path: "/fhir/.well-known/smart-configuration",
    rule: "public",
  },
  // FHIR: one Hono route, each interaction a row.
  ...([
    ["metadata", "GET", "/fhir/metadata", undefined, "public"],
    ["search Patient", "GET", "/fhir/Patient?name=x", undefined, PATIENT_READ],
    ["search Observation", "GET", "/fhir/Observation", undefined, READ_ALL],
    ["POST _search", "POST", "/fhir/Observation/_search", {
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: "code=x",
    }, READ_ALL],
    ["read Patient", "GET", "/fhir/Patient/no-such", undefined, PATIENT_READ],
    ["read Observation", "GET", "/fhir/Observation/no-such", undefined, READ_ALL],
    ["vread", "GET", "/fhir/Observation/no-such/_history/1", undefined, READ_ALL],
    ["instance history", "GET", "/fhir/Observation/no-such/_history", undefined, READ_ALL],
    ["type history", "GET", "/fhir/Patient/_history", undefined, { ...PATIENT_READ, patient: 403 }],
    ["system history", "GET", "/fhir/_history", undefined, READ_UNBOUND],
    ["search Device (not in a compartment)", "GET", "/fhir/Device", undefined, READ_UNBOUND],
    ["create", "POST", "/fhir/Patient", json({ resourceType: "Patient" }), WRITE],
    ["update", "PUT", "/fhir/Patient/p1", json({ resourceType: "Patient", id: "p1" }), WRITE],
    ["patch", "PATCH", "/fhir/Patient/no-such", {
      headers: { "Content-Type": "application/json-patch+json" },
      body: "[]",
    }, WRITE],
    ["delete", "DELETE", "/fhir/Patient/no-such", undefined, DELETE],
    ["conditional delete", "DELETE", "/fhir/Observation?code=no-such", undefined, DELETE],
    [
      "transaction",
      "POST",
      "/fhir",
      json({
        resourceType: "Bundle",
        type: "transaction",
        entry: [{
          request: { method: "POST", url: "Patient" },
          resource: { resourceType: "Patient" },
        }],
      }),
      WRITE,
    ],
    [
      "batch read",
      "POST",
      "/fhir",
      json({
        resourceType: "Bundle",
        type: "batch",
        entry: [{ request: { method: "GET", url: "Observation?code=x" } }],
      }),
      PATIENT_READ,
    ],
    ["AuditEvent search", "GET", "/fhir/AuditEvent", undefined, "admin"],
    ["AuditEvent read", "GET", "/fhir/AuditEvent/no-such", undefined, "admin"],
    [
      "$analyze",
      "POST",
      "/fhir/ImagingStudy/no-such/$analyze",
      json({
        resourceType: "Parameters",
      }),
      WRITE,
    ],
  ] as [string, string, string, RequestInit | undefined, Rule][]).map((
    [name, method, path, init, rule],
  ): Row => ({ route: "ALL /fhir/*", name: `FHIR ${name}`, method, path, init, rule })),
  // DICOMweb: QIDO-RS search, WADO-RS read, STOW-RS create (ImagingStudy scopes).
  {
    route: "POST /dicomweb/studies",
    name: "STOW-RS",
    method: "POST",
    path: "/dicomweb/studies",
    init: { headers: { "Content-Type": "application/dicom" }, body: "not dicom" },
    rule: WRITE,
  },
  {
    route: `POST ${D}`,
    name: "STOW-RS to a study",
    method: "POST",
    path: `/dicomweb/studies/${UID}`,
    init: { headers: { "Content-Type": "application/dicom" }, body: "not dicom" },
    rule: WRITE,
  },
  // Downloads as ZIP (read) and the de-identified copy of a study (create, and read).
  ...([
    [`GET ${D}/archive`, `/dicomweb/studies/${UID}/archive`],
    [`GET ${S}/archive`, `/dicomweb/studies/${UID}/series/${UID}/archive`],
  ] as [string, string][]).map(([route, path]): Row => ({
    route,
    name: `DICOMweb ${route.split(" ")[1].split("/").slice(2).join("/")}`,
    method: "GET",
    path,
    rule: READ_ALL,
  })),
  {
    route: `POST ${D}/:operation{\\$deidentify}`,
    name: "DICOMweb $deidentify",
    method: "POST",
    path: `/dicomweb/studies/${UID}/$deidentify`,
    rule: WRITE,
  },
  ...([
    ["GET /dicomweb/studies", "/dicomweb/studies"],
    ["GET /dicomweb/series", "/dicomweb/series"],
    ["GET /dicomweb/instances", "/dicomweb/instances"],
    [`GET ${D}/series`, `/dicomweb/studies/${UID}/series`],
    [`GET ${D}/instances`, `/dicomweb/studies/${UID}/instances`],
    [`GET ${S}/instances`, `/dicomweb/studies/${UID}/series/${UID}/instances`],
    [`GET ${D}`, `/dicomweb/studies/${UID}`],
    [`GET ${S}`, `/dicomweb/studies/${UID}/series/${UID}`],
    [`GET ${I}`, inst],
    [`GET ${D}/metadata`, `/dicomweb/studies/${UID}/metadata`],
    [`GET ${S}/metadata`, `/dicomweb/studies/${UID}/series/${UID}/metadata`],
    [`GET ${I}/metadata`, `${inst}/metadata`],
    [`GET ${I}/frames/:frames`, `${inst}/frames/1`],
    [`GET ${I}/bulkdata/*`, `${inst}/bulkdata/7FE00010`],
    [`GET ${I}/rendered`, `${inst}/rendered`],
    [`GET ${I}/frames/:frames/rendered`, `${inst}/frames/1/rendered`],
    [`GET ${D}/rendered`, `/dicomweb/studies/${UID}/rendered`],
    [`GET ${S}/rendered`, `/dicomweb/studies/${UID}/series/${UID}/rendered`],
    [`GET ${D}/thumbnail`, `/dicomweb/studies/${UID}/thumbnail`],
    [`GET ${S}/thumbnail`, `/dicomweb/studies/${UID}/series/${UID}/thumbnail`],
    [`GET ${I}/thumbnail`, `${inst}/thumbnail`],
    [`GET ${I}/frames/:frames/thumbnail`, `${inst}/frames/1/thumbnail`],
  ] as [string, string][]).map(([route, path]): Row => ({
    route,
    name: `DICOMweb ${route.split(" ")[1].split("/").slice(2).join("/") || "studies"}`,
    method: "GET",
    path,
    rule: READ_ALL,
  })),
  // DICOMweb deletion: administrators only.
  ...([
    [`DELETE ${D}`, `/dicomweb/studies/${UID}`],
    [`DELETE ${S}`, `/dicomweb/studies/${UID}/series/${UID}`],
    [`DELETE ${I}`, inst],
  ] as [string, string][]).map(([route, path]): Row => ({
    route,
    name: `DICOMweb delete ${route.split(" ")[1].split("/").slice(2).join("/")}`,
    method: "DELETE",
    path,
    rule: "admin",
  })),
  {
    route: "ALL /dicomweb/*",
    name: "DICOMweb other method",
    method: "PUT",
    path: "/dicomweb/studies",
    rule: READ_ALL,
  },
  {
    route: "POST /uploads/nifti",
    name: "NIfTI upload",
    method: "POST",
    path: "/uploads/nifti?patient=Patient/none",
    init: { headers: { "Content-Type": "application/octet-stream" }, body: "x" },
    rule: WRITE,
  },
  {
    route: "GET /uploads/nifti/:id{[0-9a-f-]{36}}",
    name: "NIfTI file",
    method: "GET",
    path: `/uploads/nifti/${crypto.randomUUID()}`,
    rule: READ_UNBOUND,
  },
  {
    route: `PUT ${RESULT}`,
    name: "result file upload",
    method: "PUT",
    path: `/uploads/results/${KEY}/summary.json`,
    init: { headers: { "Content-Type": "application/json" }, body: "{}" },
    rule: WRITE,
  },
  {
    route: `GET ${RESULT}`,
    name: "result file",
    method: "GET",
    path: `/uploads/results/${KEY}/none.json`,
    rule: READ_UNBOUND,
  },
  {
    route: "GET /reports/:id{[A-Za-z0-9\\-.]{1,64}}/findings.json",
    name: "findings JSON",
    method: "GET",
    path: "/reports/no-such/findings.json",
    rule: READ_ALL,
  },
  {
    route: "GET /reports/:id{[A-Za-z0-9\\-.]{1,64}}/findings.xlsx",
    name: "findings XLSX",
    method: "GET",
    path: "/reports/no-such/findings.xlsx",
    rule: READ_ALL,
  },
  // FHIR Bulk Data $export: a kick-off reaches the types the caller may search (a bound patient's
  // compartment, scope queries); the status and files are the kick-off caller's only (404 else).
  ...([
    ["/fhir/$export", "/fhir/$export"],
    ["/fhir/Patient/$export", "/fhir/Patient/$export"],
    ["/fhir/Group/:id/$export", "/fhir/Group/none/$export"],
  ] as const).flatMap(([route, path]) =>
    (["GET", "POST"] as const).map((method): Row => ({
      route: `${method} ${route}`,
      name: `bulk export kick-off ${method} ${path}`,
      method,
      path: `${path}?_type=Observation`,
      init: { headers: { Prefer: "respond-async" } },
      rule: READ_ALL,
    }))
  ),
  {
    route: "GET /fhir/$export-status/:id{[0-9a-f-]{36}}",
    name: "bulk export status",
    method: "GET",
    path: `/fhir/$export-status/${crypto.randomUUID()}`,
    rule: "any",
  },
  {
    route: "DELETE /fhir/$export-status/:id{[0-9a-f-]{36}}",
    name: "bulk export cancel",
    method: "DELETE",
    path: `/fhir/$export-status/${crypto.randomUUID()}`,
    rule: "any",
  },
  {
    route:
      "GET /fhir/$export-file/:id{[0-9a-f-]{36}}/:name{[A-Za-z]{1,64}(-deleted)?-[0-9]{1,9}\\.ndjson}",
    name: "bulk export file",
    method: "GET",
    path: `/fhir/$export-file/${crypto.randomUUID()}/Patient-1.ndjson`,
    rule: "any",
  },
  { route: "GET /events", name: "SSE events", method: "GET", path: "/events", rule: READ_UNBOUND },
  // The web UI: its shell (on each client page) and its hashed assets are public.
  ...([
    ["GET /", "/"],
    ["GET /:page{login|oauth-callback|upload|worklist|console|patients}", "/login"],
    ["GET /patients/:id{[A-Za-z0-9\\-.]{1,64}}", "/patients/p1"],
    ["GET /studies/:id{[A-Za-z0-9\\-.]{1,64}}", "/studies/s1"],
    ["GET /studies/:id{[A-Za-z0-9\\-.]{1,64}}/report", "/studies/s1/report"],
    ["GET /assets/:name{[A-Za-z0-9._-]{1,80}}", "/assets/no-such.js"],
  ] as [string, string][]).map(([route, path]): Row => ({
    route,
    name: `web UI ${path}`,
    method: "GET",
    path,
    rule: "public",
  })),
];

function expected(rule: Rule, who: Who): Expect {
  if (rule === "public") return "ok";
  if (who === "none" || who === "bad") return 401;
  if (rule === "any") return "ok";
  if (rule === "admin") return who === "admin" ? "ok" : 403;
  return rule[who] ?? 403;
}

let stack: AuthStack | undefined;
let boundToken: string | undefined;

/** The stack, with a viewer bound to Patient/bound and its token. */
async function start(): Promise<AuthStack> {
  const s = await startAuthStack();
  const admin = { token: s.tokens.admin, headers: { "Content-Type": "application/json" } };
  const patient = await s.call("/fhir/Patient/bound", {
    ...admin,
    method: "PUT",
    body: JSON.stringify({ resourceType: "Patient", id: "bound" }),
  });
  assert.equal(patient.status, 201, await patient.text());
  const user = await s.call("/auth/users", {
    ...admin,
    method: "POST",
    body: JSON.stringify({
      username: "bound",
      password: PASSWORD,
      role: "viewer",
      patient: "Patient/bound",
    }),
  });
  assert.equal(user.status, 201, await user.text());
  const login = await (await s.login("bound", PASSWORD)).json();
  assert.equal(login.patient, "bound");
  boundToken = login.access_token;
  return s;
}
const stackOnce = async () => stack ??= await start();

Deno.test("every route of the app has a row in the access table", async () => {
  const s = await stackOnce();
  const app = createApp(s.services);
  // Handlers take (c); middleware takes (c, next) and is not a route of its own.
  const routes = new Set(
    app.routes.filter((r) => r.handler.length < 2).map((r) => `${r.method} ${r.path}`),
  );
  const covered = new Set(ROWS.map((r) => r.route));
  const missing = [...routes].filter((r) => !covered.has(r));
  assert.deepEqual(missing, [], "routes without an access rule in this table");
  const stale = [...covered].filter((r) => !routes.has(r));
  assert.deepEqual(stale, [], "rows for routes the app no longer has");
});

for (const row of ROWS) {
  Deno.test(`access: ${row.method} ${row.name}`, async () => {
    const s = await stackOnce();
    const failures: string[] = [];
    for (const who of WHO) {
      const token = who === "none"
        ? undefined
        : who === "bad"
        ? "not.a.jwt"
        : who === "patient"
        ? boundToken
        : s.tokens[who];
      const init = row.init ?? {};
      const res = await s.call(row.path, {
        ...init,
        method: row.method,
        headers: new Headers(init.headers),
        token,
      });
      // An event stream never ends: its status is the answer.
      const streaming = res.headers.get("content-type")?.startsWith("text/event-stream");
      const body = streaming ? (await res.body?.cancel(), "") : await res.text();
      const want = expected(row.rule, who);
      const got = res.status;
      if (want === "ok" ? got === 401 || got === 403 || got >= 500 : got !== want) {
        failures.push(`${who}: expected ${want}, got ${got} ${body.slice(0, 160)}`);
        continue;
      }
      if (got === 401 || got === 403) {
        // Both with a challenge and an OperationOutcome.
        const challenge = res.headers.get("www-authenticate") ?? "";
        if (!challenge.startsWith("Bearer")) failures.push(`${who}: no WWW-Authenticate`);
        if (got === 403 && !/insufficient_scope/.test(challenge)) {
          failures.push(`${who}: 403 without error="insufficient_scope"`);
        }
        if (JSON.parse(body).resourceType !== "OperationOutcome") {
          failures.push(`${who}: ${got} body is not an OperationOutcome`);
        }
      }
    }
    assert.deepEqual(failures, []);
  });
}

Deno.test("the access table's service stops", async () => {
  await stack?.close();
});
