/**
 * @module `/auth`: the OAuth 2.0 token endpoint (authorization_code, refresh_token,
 * client_credentials with private_key_jwt, and password behind AUTH_PASSWORD_GRANT), revocation
 * (RFC 7009), the caller's own identity, and the admin API for accounts and registered clients;
 * plus the discovery documents (JWKS, SMART configuration at `/.well-known`, also served under the
 * FHIR base; OpenID Connect's at the issuer). The authorization endpoint is `authorize.ts`'s.
 */
import { readBoundedText } from "../platform/body.ts";
import { HttpError } from "../platform/http_error.ts";
import { dependencyFault, RETRY_AFTER_SECONDS } from "../db/unavailable.ts";
import { clientAddress, type ProxyRange } from "../platform/client_address.ts";
import { Hono } from "hono";
import type { Context } from "hono";
import type { AppEnv } from "./env.ts";
import { requireAdmin } from "../auth/access.ts";
import { OAuthError } from "../auth/errors.ts";
import { LAUNCH_SCOPES } from "../auth/smart_scopes.ts";
import { InputError, TooManyAttempts } from "../auth/service.ts";
import { badRequest, notFound } from "../platform/outcome.ts";
import type { Services } from "./env.ts";

const NO_STORE = { "Cache-Control": "no-store", Pragma: "no-cache" };

/** The token and revocation endpoints and the admin API, mounted at /auth. */
export function authRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const auth = services.auth;

  app.post("/token", async (c) => {
    let form: URLSearchParams | undefined;
    // A login (or a failed one) is audited whatever its outcome.
    const audit = (status: number, description?: string) =>
      services.audit.record({
        kind: "login",
        subtype: form?.get("grant_type") === "refresh_token" ? "refresh" : "login",
        action: "E",
        status,
        agent: form?.get("grant_type") === "client_credentials"
          ? { kind: "client", id: clientOf(form) }
          : form?.get("grant_type") === "authorization_code"
          ? { kind: "client", id: form.get("client_id")?.slice(0, 128) || clientOf(form) }
          : { kind: "user", id: form?.get("username")?.slice(0, 64) || "unknown" },
        address: addressOf(c, services.config.auth.trustedProxies),
        requestId: c.get("requestId"),
        description,
      });
    try {
      form = await formOf(c);
      const body = await auth.token(
        form,
        addressOf(c, services.config.auth.trustedProxies),
        c.req.header("authorization"),
      );
      audit(200);
      return c.json(body, 200, NO_STORE);
    } catch (e) {
      if (e instanceof TooManyAttempts || e instanceof OAuthError) {
        audit(e instanceof TooManyAttempts ? 429 : e.status, e.message);
      }
      if (e instanceof TooManyAttempts) {
        return c.json(
          { error: "invalid_request", error_description: e.message },
          429,
          { ...NO_STORE, "Retry-After": String(e.retryAfterSeconds) },
        );
      }
      if (e instanceof OAuthError) {
        return c.json(
          { error: e.error, error_description: e.description },
          e.status,
          NO_STORE,
        );
      }
      // A dependency down: the OAuth error shape OAuth clients parse (RFC 6749 defines
      // temporarily_unavailable for the authorization endpoint; the token endpoint has none).
      const down = dependencyFault(e);
      if (down) {
        audit(down.status, down.reason);
        return c.json(
          {
            error: "temporarily_unavailable",
            error_description:
              `The ${down.dependency} is unavailable (${down.reason}); try again ` +
              `in a few seconds`,
          },
          down.status,
          { ...NO_STORE, "Retry-After": String(RETRY_AFTER_SECONDS) },
        );
      }
      throw e;
    }
  });

  app.post("/revoke", async (c) => {
    const form = await formOf(c).catch(() => new URLSearchParams());
    const token = form.get("token");
    if (!token) {
      return c.json({
        error: "invalid_request",
        error_description: "token is required, as application/x-www-form-urlencoded",
      }, 400);
    }
    await auth.revoke(token);
    return c.body(null, 200, NO_STORE);
  });

  app.get("/me", async (c) => {
    const caller = c.get("caller");
    // A person's display name and FHIR identity are the account's as they are now.
    const account = caller.kind === "user" ? await auth.users.get(caller.sub) : undefined;
    return c.json(
      {
        kind: caller.kind,
        sub: caller.sub,
        name: caller.name ?? null,
        displayName: account?.displayName ?? null,
        fhirUser: account?.fhirUser ?? null,
        role: caller.role ?? null,
        clientId: caller.clientId ?? null,
        patient: caller.patient ?? null,
        scope: caller.scope,
      },
      200,
      NO_STORE,
    );
  });

  app.get("/users", async (c) => {
    requireAdmin(c.get("caller"));
    return c.json(await auth.users.list(), 200, NO_STORE);
  });
  app.post("/users", async (c) => {
    requireAdmin(c.get("caller"));
    const user = await inputErrors(async () => auth.users.create(await jsonOf(c)));
    return c.json(user, 201, { ...NO_STORE, Location: `/auth/users/${user.id}` });
  });
  app.get("/users/:id", async (c) => {
    requireAdmin(c.get("caller"));
    const user = await auth.users.get(c.req.param("id"));
    if (!user) throw notFound(`No user ${c.req.param("id")}`);
    return c.json(user, 200, NO_STORE);
  });
  app.patch("/users/:id", async (c) => {
    requireAdmin(c.get("caller"));
    const user = await inputErrors(async () =>
      auth.users.update(c.req.param("id"), await jsonOf(c))
    );
    if (!user) throw notFound(`No user ${c.req.param("id")}`);
    return c.json(user, 200, NO_STORE);
  });
  app.delete("/users/:id", async (c) => {
    requireAdmin(c.get("caller"));
    const gone = await inputErrors(() => auth.users.remove(c.req.param("id")));
    if (!gone) throw notFound(`No user ${c.req.param("id")}`);
    return c.body(null, 204);
  });

  app.get("/clients", async (c) => {
    requireAdmin(c.get("caller"));
    return c.json(await auth.clients.list(), 200, NO_STORE);
  });
  app.get("/clients/:id", async (c) => {
    requireAdmin(c.get("caller"));
    const client = await auth.clients.get(c.req.param("id"));
    if (!client) throw notFound(`No client ${c.req.param("id")}`);
    return c.json(client, 200, NO_STORE);
  });
  app.put("/clients/:id", async (c) => {
    requireAdmin(c.get("caller"));
    const existed = await auth.clients.get(c.req.param("id"));
    const client = await inputErrors(async () =>
      auth.clients.put({ ...await jsonOf(c), clientId: c.req.param("id") })
    );
    return c.json(client, existed ? 200 : 201, NO_STORE);
  });
  app.delete("/clients/:id", async (c) => {
    requireAdmin(c.get("caller"));
    if (!(await auth.clients.remove(c.req.param("id")))) {
      throw notFound(`No client ${c.req.param("id")}`);
    }
    return c.body(null, 204);
  });
  return app;
}

/** `/.well-known/jwks.json` and `/.well-known/smart-configuration`. */
export function wellKnownRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get(
    "/jwks.json",
    async (c) =>
      c.json(await services.auth.jwks(), 200, { "Cache-Control": "public, max-age=300" }),
  );
  app.get("/smart-configuration", (c) => c.json(smartConfiguration(services)));
  return app;
}

/** The scopes this server grants, for discovery. */
const SCOPES_SUPPORTED = [
  ...LAUNCH_SCOPES,
  "patient/*.cruds",
  "patient/*.rs",
  "patient/*.read",
  "patient/*.write",
  "user/*.cruds",
  "user/*.rs",
  "user/*.read",
  "user/*.write",
  "system/*.cruds",
  "system/*.rs",
  "system/*.read",
  "system/*.write",
];

function endpoints(services: Services) {
  const origin = new URL(services.config.publicUrl).origin;
  return {
    issuer: services.auth.issuer,
    jwks_uri: `${origin}/.well-known/jwks.json`,
    authorization_endpoint: `${origin}/auth/authorize`,
    token_endpoint: services.auth.tokenUrl,
    introspection_endpoint: `${origin}/auth/introspect`,
    revocation_endpoint: `${origin}/auth/revoke`,
    grant_types_supported: [
      "authorization_code",
      "refresh_token",
      "client_credentials",
      ...(services.config.auth.passwordGrant ? ["password"] : []),
    ],
    token_endpoint_auth_methods_supported: [
      "none",
      "client_secret_basic",
      "client_secret_post",
      "private_key_jwt",
    ],
    token_endpoint_auth_signing_alg_values_supported: ["RS384", "ES384"],
    scopes_supported: SCOPES_SUPPORTED,
    response_types_supported: ["code"],
    code_challenge_methods_supported: ["S256"],
    authorization_response_iss_parameter_supported: true,
  };
}

/** SMART App Launch 2.x discovery: what this server's authorization supports (and only that). */
export function smartConfiguration(services: Services) {
  return {
    ...endpoints(services),
    capabilities: [
      "launch-ehr",
      "launch-standalone",
      "authorize-post",
      "client-public",
      "client-confidential-symmetric",
      "client-confidential-asymmetric",
      "context-ehr-patient",
      "context-ehr-encounter",
      "context-standalone-patient",
      "context-banner",
      "sso-openid-connect",
      "permission-offline",
      "permission-online",
      "permission-patient",
      "permission-user",
      "permission-v1",
      "permission-v2",
    ],
  };
}

/** OpenID Connect Discovery 1.0, served at the issuer + `/.well-known/openid-configuration`. */
export function openidConfiguration(services: Services) {
  return {
    ...endpoints(services),
    subject_types_supported: ["public"],
    id_token_signing_alg_values_supported: ["RS256"],
    response_modes_supported: ["query"],
    claims_supported: [
      "iss",
      "sub",
      "aud",
      "exp",
      "iat",
      "auth_time",
      "nonce",
      "at_hash",
      "fhirUser",
      "name",
      "preferred_username",
    ],
    claims_parameter_supported: false,
    request_parameter_supported: false,
  };
}

/** Where the issuer's OpenID configuration is served on this server (its path), if here. */
export function openidConfigurationPath(services: Services): string | undefined {
  const issuer = new URL(services.auth.issuer);
  if (issuer.origin !== new URL(services.config.publicUrl).origin) return undefined;
  return `${issuer.pathname.replace(/\/+$/, "")}/.well-known/openid-configuration`;
}

/** The client an assertion names (unverified: for the audit trail of a failed attempt only). */
function clientOf(form: URLSearchParams): string {
  try {
    const payload = (form.get("client_assertion") ?? "").split(".")[1];
    const iss = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))).iss;
    return typeof iss === "string" ? iss.slice(0, 128) : "unknown";
  } catch {
    return "unknown";
  }
}

async function formOf(c: Context): Promise<URLSearchParams> {
  const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type !== "application/x-www-form-urlencoded") {
    throw new OAuthError(
      400,
      "invalid_request",
      "The body must be application/x-www-form-urlencoded",
    );
  }
  try {
    return new URLSearchParams(await readBoundedText(c.req.raw, 65_536));
  } catch (e) {
    if (e instanceof HttpError) {
      throw new OAuthError(400, "invalid_request", "The body is too large");
    }
    throw e;
  }
}

async function jsonOf(c: Context): Promise<Record<string, never>> {
  const text = await readBoundedText(c.req.raw, 1_048_576).catch((e) => {
    throw e instanceof HttpError ? badRequest("The body is too large") : e;
  });
  try {
    const value = JSON.parse(text);
    if (value && typeof value === "object" && !Array.isArray(value)) return value;
  } catch {
    // answered below
  }
  throw badRequest("The body must be a JSON object");
}

async function inputErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof InputError) throw badRequest(e.message);
    throw e;
  }
}

/** The client's address: the socket's (X-Forwarded-For is trusted only behind a known proxy). */
export function addressOf(c: Context, trustedProxies: readonly ProxyRange[]): string {
  const info = (c.env as { remoteAddr?: { hostname?: string } } | undefined)?.remoteAddr;
  return clientAddress(info?.hostname, c.req.header("x-forwarded-for"), trustedProxies);
}
