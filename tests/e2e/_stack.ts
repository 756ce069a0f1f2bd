/**
 * @module The real app for the browser tests: AUTH on, PGlite in memory, a temporary object
 * folder, the in-process queue with the fixture model (`threshold-demo`), served on a free port;
 * an admin from config and a clinician made through the admin API. The in-process worker starts
 * only when the test asks, so a test can see a Task wait in the queue first.
 */
import assert from "node:assert/strict";
import { createApp } from "../../app.ts";
import { loadConfig } from "../../platform/config.ts";
import { createServices, type Services } from "../../services.ts";

export const ADMIN = { username: "admin", password: "correct horse battery staple" };
export const CLINICIAN = {
  username: "dr.reader",
  password: "a long enough password",
  displayName: "Dr Reader",
};

export interface UiStack {
  origin: string;
  services: Services;
  /** Starts the in-process analysis worker (jobs queued before it wait until then). */
  startWorker(): Promise<void>;
  /** An API call as `who` (form-encoded login, then the bearer token). */
  token(who: { username: string; password: string }): Promise<string>;
  close(): Promise<void>;
}

export async function startUiStack(env: Record<string, string> = {}): Promise<UiStack> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const origin = `http://127.0.0.1:${port}`;
  const objects = await Deno.makeTempDir({ prefix: "objects-e2e-" });
  const services = await createServices(loadConfig({
    PORT: String(port),
    PUBLIC_URL: origin,
    PGLITE_DIR: "memory",
    OBJECT_DIR: objects,
    LOG_LEVEL: "error",
    AUTH: "on",
    ADMIN_USERNAME: ADMIN.username,
    ADMIN_PASSWORD: ADMIN.password,
    LOGIN_RATE_PER_MINUTE: "1000",
    // API calls of the tests log in with the password grant; the browser signs in with the code flow.
    AUTH_PASSWORD_GRANT: "on",
    MODELS_DIR: new URL("../sidecar/fixtures/models", import.meta.url).pathname,
    INFERENCE_PROVIDERS: "cpu",
    INFERENCE_WORKER: "auto",
    DICOM_STABLE_SECONDS: "60",
    ...env,
  }));
  const app = createApp(services);
  const server = Deno.serve({ port, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
  const token = async (who: { username: string; password: string }) => {
    const res = await fetch(`${origin}/auth/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "password", ...who }).toString(),
    });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    return body.access_token as string;
  };
  const admin = await token(ADMIN);
  const res = await fetch(`${origin}/auth/users`, {
    method: "POST",
    headers: { Authorization: `Bearer ${admin}`, "Content-Type": "application/json" },
    body: JSON.stringify({ ...CLINICIAN, role: "clinician" }),
  });
  assert.equal(res.status, 201, await res.text());
  return {
    origin,
    services,
    startWorker: () => services.startWorker((r) => app.fetch(r)),
    token,
    async close() {
      await server.shutdown();
      await services.close();
      await Deno.remove(objects, { recursive: true }).catch(() => {});
    },
  };
}
