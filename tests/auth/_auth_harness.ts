/**
 * @module A service with AUTH=on for the auth suites: an admin from config, a clinician and a
 * viewer made through the admin API, and two Backend Services clients (ES384 keys made here):
 * one with every system scope, one with `system/Patient.rs` only; a token for each.
 */
import assert from "node:assert/strict";
import * as jose from "jose";
import { createApp } from "../../app.ts";
import { loadConfig } from "../../platform/config.ts";
import { createServices, type Services } from "../../services.ts";

export const ADMIN_PASSWORD = "correct horse battery staple";
export const PASSWORD = "a long enough password";
export const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

export interface AuthStack {
  services: Services;
  origin: string;
  tokens: Record<"admin" | "clinician" | "viewer" | "system" | "narrow", string>;
  clientKeys: Record<"system" | "narrow", CryptoKey>;
  /** fetch with `Authorization: Bearer <token>` when a token is given. */
  call(path: string, init?: RequestInit & { token?: string }): Promise<Response>;
  login(username: string, password: string, scope?: string): Promise<Response>;
  /** A signed client assertion for `clientId` (RFC 7523), with claims overridden as given. */
  assertion(
    clientId: string,
    key: CryptoKey,
    overrides?: Record<string, unknown>,
    header?: Record<string, unknown>,
  ): Promise<string>;
  clientToken(clientId: string, key: CryptoKey, scope: string): Promise<Response>;
  close(): Promise<void>;
}

export function form(values: Record<string, string>): RequestInit {
  return {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(values).toString(),
  };
}

export async function startAuthStack(env: Record<string, string> = {}): Promise<AuthStack> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const origin = `http://127.0.0.1:${port}`;
  const services = await createServices(loadConfig({
    PORT: String(port),
    PUBLIC_URL: origin,
    PGLITE_DIR: "memory",
    OBJECT_DIR: await Deno.makeTempDir({ prefix: "objects-auth-" }),
    LOG_LEVEL: "error",
    INFERENCE_WORKER: "off",
    AUTH: "on",
    ADMIN_USERNAME: "admin",
    ADMIN_PASSWORD,
    LOGIN_RATE_PER_MINUTE: "1000",
    // The suites get their tokens with the password grant (off by default outside tests).
    AUTH_PASSWORD_GRANT: "on",
    ...env,
  }));
  const app = createApp(services);
  const server = Deno.serve({ port, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
  if (env.INFERENCE_WORKER === "on") await services.startWorker((r) => app.fetch(r));

  const call = (path: string, init: RequestInit & { token?: string } = {}) => {
    const headers = new Headers(init.headers);
    if (init.token) headers.set("Authorization", `Bearer ${init.token}`);
    return fetch(`${origin}${path}`, { ...init, headers });
  };
  const login = (username: string, password: string, scope?: string) =>
    call(
      "/auth/token",
      form({ grant_type: "password", username, password, ...(scope ? { scope } : {}) }),
    );
  const tokenOf = async (res: Response) => {
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    return body.access_token as string;
  };
  const assertion = async (
    clientId: string,
    key: CryptoKey,
    overrides: Record<string, unknown> = {},
    header: Record<string, unknown> = {},
  ) => {
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: clientId,
      sub: clientId,
      aud: services.auth.tokenUrl,
      exp: now + 240,
      jti: crypto.randomUUID(),
      ...overrides,
    };
    return await new jose.SignJWT(claims)
      .setProtectedHeader({ alg: "ES384", kid: `${clientId}-key`, typ: "JWT", ...header })
      .sign(key);
  };
  const clientToken = async (clientId: string, key: CryptoKey, scope: string) =>
    await call(
      "/auth/token",
      form({
        grant_type: "client_credentials",
        scope,
        client_assertion_type: ASSERTION_TYPE,
        client_assertion: await assertion(clientId, key),
      }),
    );

  const admin = await tokenOf(await login("admin", ADMIN_PASSWORD));
  for (const role of ["clinician", "viewer"]) {
    const res = await call("/auth/users", {
      method: "POST",
      token: admin,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: role, password: PASSWORD, role }),
    });
    assert.equal(res.status, 201, await res.text());
  }
  const clientKeys = {} as AuthStack["clientKeys"];
  for (const [id, scope] of [["system", "system/*.cruds"], ["narrow", "system/Patient.rs"]]) {
    const { privateKey, publicKey } = await jose.generateKeyPair("ES384", { extractable: true });
    clientKeys[id as "system"] = privateKey;
    const jwk = { ...await jose.exportJWK(publicKey), kid: `${id}-key`, alg: "ES384" };
    const res = await call(`/auth/clients/${id}`, {
      method: "PUT",
      token: admin,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: `${id} client`, jwks: { keys: [jwk] }, scope }),
    });
    assert.equal(res.status, 201, await res.text());
  }
  const tokens = {
    admin,
    clinician: await tokenOf(await login("clinician", PASSWORD)),
    viewer: await tokenOf(await login("viewer", PASSWORD)),
    system: await tokenOf(await clientToken("system", clientKeys.system, "system/*.cruds")),
    narrow: await tokenOf(await clientToken("narrow", clientKeys.narrow, "system/Patient.rs")),
  };
  return {
    services,
    origin,
    tokens,
    clientKeys,
    call,
    login,
    assertion,
    clientToken,
    async close() {
      await server.shutdown();
      await services.close();
    },
  };
}
