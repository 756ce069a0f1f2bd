/**
 * @module Test harness: runs each test against every database backend. PGlite (the embedded
 * default, in memory) always; a real Postgres when DATABASE_URL is set, and otherwise the Postgres
 * variant is reported as ignored, by name. One app and one HTTP server per backend per test file.
 */
import { createApp } from "../app.ts";
import { loadConfig } from "../platform/config.ts";
import { createServices, type ServiceOverrides, type Services } from "../services.ts";

export type Backend = "pglite" | "postgres";

export interface TestContext {
  backend: Backend;
  services: Services;
  /** The server's origin, e.g. http://127.0.0.1:41234 (DICOMweb is at `${origin}/dicomweb`). */
  origin: string;
  /** The FHIR base URL of a real HTTP server, e.g. http://127.0.0.1:41234/fhir */
  base: string;
  /** fetch() relative to the FHIR base: `ctx.fetch("Patient/1")`. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** Stops the server and closes the services (a context of its own: `startContext`). */
  close(): Promise<void>;
}

const DATABASE_URL = Deno.env.get("DATABASE_URL") ?? "";
/** With S3_ENDPOINT set, the Postgres backend also uses the real S3 server (PGlite: a folder). */
const S3_ENV = ["S3_ENDPOINT", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_REGION"];
const contexts = new Map<Backend, Promise<TestContext>>();

async function start(
  backend: Backend,
  env: Record<string, string> = {},
  overrides: ServiceOverrides = {},
): Promise<TestContext> {
  const schema = backend === "postgres"
    ? `t_${Date.now().toString(36)}_${crypto.randomUUID().slice(0, 8)}`
    : undefined;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const s3 = backend === "postgres" && Deno.env.get("S3_ENDPOINT")
    ? Object.fromEntries(S3_ENV.map((k) => [k, Deno.env.get(k)]))
    : {};
  const config = loadConfig({
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    DATABASE_URL: backend === "postgres" ? DATABASE_URL : "",
    PGLITE_DIR: "memory",
    DATABASE_POOL_SIZE: "8",
    OBJECT_DIR: await Deno.makeTempDir({ prefix: "objects-" }),
    S3_BUCKET: "imaging-test",
    DICOM_STABLE_SECONDS: "1",
    // The in-process worker runs on the CPU here; GPU providers are tried by the sidecar tests.
    INFERENCE_PROVIDERS: "cpu",
    LOG_LEVEL: "warn",
    // These suites test FHIR, DICOMweb and the pipeline; tests/auth tests authentication itself,
    // over every route, with AUTH=on (the default outside tests).
    AUTH: "off",
    // Suites that turn AUTH on get their tokens with the password grant (off by default).
    AUTH_PASSWORD_GRANT: "on",
    // Subscription tests notify servers on 127.0.0.1 (tests/fhir/outbound_test.ts checks refusal).
    OUTBOUND_PRIVATE_ADDRESSES: "allow",
    ...s3,
    ...env,
  });
  const services = await createServices(config, { ...overrides, schema });
  if (schema) await dropStaleSchemas(services);
  const app = createApp(services);
  const server = Deno.serve({ port, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
  await services.startWorker((request) => app.fetch(request));
  const base = `http://127.0.0.1:${port}/fhir`;
  return {
    backend,
    services,
    origin: `http://127.0.0.1:${port}`,
    base,
    fetch: (path, init) => fetch(`${base}/${path.replace(/^\//, "")}`, init),
    async close() {
      await server.shutdown();
      await services.close();
    },
  };
}

/** Drops test schemas left by runs that ended over an hour ago (their names start with the time). */
async function dropStaleSchemas(services: Services): Promise<void> {
  const rows = await services.db.query<{ name: string }>(
    `SELECT nspname AS name FROM pg_namespace WHERE nspname LIKE 't\\_%'`,
  );
  for (const { name } of rows) {
    const started = parseInt(name.split("_")[1] ?? "", 36);
    if (!Number.isFinite(started) || Date.now() - started < 3_600_000) continue;
    await services.db.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`).catch(() => {});
  }
}

/**
 * A context of its own (not shared with the file's other tests) with extra settings, e.g. DICOM
 * destinations; the caller closes its services.
 */
export function startContext(
  backend: Backend,
  env: Record<string, string>,
  overrides: ServiceOverrides = {},
): Promise<TestContext> {
  return start(backend, env, overrides);
}

/** The shared context of one backend in this test file (started on first use). */
export function context(backend: Backend): Promise<TestContext> {
  let ctx = contexts.get(backend);
  if (!ctx) {
    ctx = start(backend);
    contexts.set(backend, ctx);
  }
  return ctx;
}

/** Registers `name [pglite]` and `name [postgres]` (ignored, by name, without DATABASE_URL). */
export function backendTest(name: string, fn: (ctx: TestContext) => Promise<void>): void {
  perBackend(name, async (backend) => fn(await context(backend)));
}

/** `name [pglite]` and `name [postgres]`, each given its backend (the latter ignored, by name,
 * without DATABASE_URL): for suites with a world of their own. */
export function perBackend(name: string, fn: (backend: Backend) => Promise<void>): void {
  for (const backend of ["pglite", "postgres"] as const) {
    const missing = backend === "postgres" && !DATABASE_URL;
    Deno.test({
      name: missing ? `${name} [postgres: skipped, DATABASE_URL not set]` : `${name} [${backend}]`,
      ignore: missing,
      sanitizeOps: false,
      sanitizeResources: false,
      fn: () => fn(backend),
    });
  }
}

/** `fetch` relative to the FHIR base of an app called in-process (no server), for fhirJson. */
export function inProcess(
  app: { request: (path: string, init?: RequestInit) => Response | Promise<Response> },
): Pick<TestContext, "fetch"> {
  return {
    fetch: async (path, init) => await app.request(`/fhir/${path.replace(/^\//, "")}`, init),
  };
}

/** Sends JSON with the FHIR media type and returns status, headers and parsed body. */
export async function fhirJson(
  ctx: Pick<TestContext, "fetch">,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
  // deno-lint-ignore no-explicit-any
): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await ctx.fetch(path, {
    method,
    headers: {
      accept: "application/fhir+json",
      ...(body !== undefined ? { "content-type": "application/fhir+json" } : {}),
      ...headers,
    },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** A random string for test data that must not collide with other tests sharing the database. */
export function uniq(prefix = "t"): string {
  return `${prefix}${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
}
