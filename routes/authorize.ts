/**
 * @module SMART App Launch over HTTP: `GET|POST /auth/authorize` (a new authorization request by
 * query or form, then the sign-in, consent and patient-picker forms of the pages in
 * `consent_page.ts`), `POST /auth/logout` (ends the browser's session), `POST /auth/launch` (an
 * EHR makes a launch context), `POST /auth/introspect` (RFC 7662). The browser carries two
 * HttpOnly, SameSite=Lax cookies (Secure over https), both limited to `/auth`: the session, and a
 * random browser id that authorization requests are bound to (with the CSRF token in their
 * forms). The logic is `auth/authorize.ts`'s and `auth/code_grant.ts`'s.
 */
import { type Context, Hono } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { accountScopes, type Caller, forbidden, unauthorized } from "../auth/access.ts";
import {
  type BrowserSession,
  LaunchInputError,
  PageError,
  type Pending,
  RedirectError,
} from "../auth/authorize.ts";
import { launchableApps } from "../auth/clients.ts";
import { OAuthError } from "../auth/errors.ts";
import type { UserRow } from "../auth/repo.ts";
import { parseScopes } from "../auth/scopes.ts";
import { TooManyAttempts } from "../auth/service.ts";
import { HttpError } from "../platform/http_error.ts";
import { readBoundedText } from "../platform/body.ts";
import { badRequest } from "../platform/outcome.ts";
import {
  consentPage,
  errorPage,
  loginPage,
  type Page,
  type PatientChoice,
} from "./consent_page.ts";
import type { AppEnv, Services } from "./env.ts";
import { addressOf } from "./auth.ts";

const SESSION = "imaging_ai_session";
const BROWSER = "imaging_ai_browser";
const NO_STORE = { "Cache-Control": "no-store", Pragma: "no-cache" };
/** Form fields that carry a client's credentials. */
const CLIENT_CREDENTIALS = ["client_id", "client_secret", "client_assertion"];

export function authorizeRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const auth = services.auth;
  const authorizer = auth.authorizer;
  const secure = services.config.publicUrl.startsWith("https:");
  const cookie = { httpOnly: true, secure, sameSite: "Lax" as const, path: "/auth" };
  const address = (c: Context) => addressOf(c, services.config.auth.trustedProxies);

  const send = (c: Context, p: Page, status = 200) =>
    c.html(p.html, status as 200, { ...NO_STORE, "Content-Security-Policy": p.csp });
  const browserOf = (c: Context): string => {
    const known = getCookie(c, BROWSER);
    if (known && /^[A-Za-z0-9_-]{20,64}$/.test(known)) return known;
    const id = crypto.randomUUID().replace(/-/g, "") + crypto.randomUUID().replace(/-/g, "");
    setCookie(c, BROWSER, id, cookie);
    return id;
  };
  const failed = (c: Context, e: unknown) => {
    if (e instanceof RedirectError) return c.redirect(e.location, 302);
    if (e instanceof PageError) return send(c, errorPage(e.message), e.status);
    throw e;
  };
  const audit = (c: Context, username: string, status: number, description?: string) =>
    services.audit.record({
      kind: "login",
      subtype: "login",
      action: "E",
      status,
      agent: { kind: "user", id: username.slice(0, 64) || "unknown" },
      address: address(c),
      requestId: c.get("requestId"),
      description,
    });

  /** The person's view of a request: sign in, or consent, or (the web UI) straight back. */
  async function show(c: Context, p: Pending, extra: { error?: string; search?: string } = {}) {
    const session = await authorizer.session(getCookie(c, SESSION));
    if (!session) {
      return send(
        c,
        loginPage({
          requestId: p.id,
          csrf: p.csrf,
          clientName: p.clientName,
          firstParty: p.firstParty,
        }),
      );
    }
    if (p.firstParty) {
      return c.redirect(await authorizer.decide(p, session, { approve: true }), 303);
    }
    return send(c, await consent(p, session, extra), extra.error ? 400 : 200);
  }

  async function consent(
    p: Pending,
    s: BrowserSession,
    extra: { error?: string; search?: string },
  ) {
    const picking = authorizer.needsPatient(p, s.user);
    const query = (extra.search ?? "").trim().slice(0, 100);
    return consentPage({
      requestId: p.id,
      csrf: p.csrf,
      clientName: p.clientName,
      clientId: p.clientId,
      redirectOrigin: new URL(p.redirectUri).origin,
      userName: s.user.displayName ?? s.user.username,
      scopes: authorizer.offered(p, s.user).split(" ").filter(Boolean),
      launchPatient: s.user.patient ?? p.launch?.patient,
      ...(extra.error ? { error: extra.error } : {}),
      ...(picking
        ? {
          patientPicker: {
            query,
            results: await patients(s.user, query),
            searched: query !== "",
          },
        }
        : {}),
    });
  }

  /** Patients the person may read whose name matches (through the FHIR API, as them). */
  async function patients(user: UserRow, name: string): Promise<PatientChoice[]> {
    const query: [string, string][] = [["_count", "20"], ["_sort", "name"]];
    if (name) query.push(["name", name]);
    const result = await services.fhir.interact(
      { method: "GET", path: ["Patient"], query },
      callerOf(user),
    ).catch(() => undefined);
    const entries = (result?.body as { entry?: { resource?: Record<string, unknown> }[] })?.entry;
    return (entries ?? []).map((e) => e.resource!).filter((r) => r?.resourceType === "Patient")
      .map((r) => ({
        id: String(r.id),
        name: nameOf(r) || `Patient/${r.id}`,
        ...(typeof r.birthDate === "string" ? { birthDate: r.birthDate } : {}),
      }));
  }

  /** Whether the person may read Patient/{id} (the FHIR API's own access rules). */
  async function mayRead(user: UserRow, id: string): Promise<boolean> {
    const r = await services.fhir.interact(
      { method: "GET", path: ["Patient", id], query: [] },
      callerOf(user),
    ).catch(() => undefined);
    return r?.status === 200;
  }

  const begin = async (c: Context, params: URLSearchParams) => {
    try {
      return await show(c, await authorizer.begin(params, browserOf(c)));
    } catch (e) {
      return failed(c, e);
    }
  };

  app.get("/authorize", async (c) => {
    const q = new URL(c.req.url).searchParams;
    const id = q.get("request_id");
    if (id === null) return await begin(c, q);
    try {
      const pending = await authorizer.resume(id, getCookie(c, BROWSER));
      return await show(c, pending, { search: q.get("patient_search") ?? undefined });
    } catch (e) {
      return failed(c, e);
    }
  });

  app.post("/authorize", async (c) => {
    const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (type !== "application/x-www-form-urlencoded") {
      return send(c, errorPage("The form must be application/x-www-form-urlencoded."), 415);
    }
    let form: URLSearchParams;
    try {
      form = new URLSearchParams(await readBoundedText(c.req.raw, 65_536));
    } catch (e) {
      if (e instanceof HttpError) return send(c, errorPage("The form is too large."), 413);
      throw e;
    }
    const id = form.get("request_id");
    // authorize-post: the app's authorization request itself, sent as a form.
    if (id === null) return await begin(c, form);
    try {
      const pending = await authorizer.resume(id, getCookie(c, BROWSER));
      const csrf = form.get("csrf");
      if (!csrf || csrf !== pending.csrf) {
        throw new PageError(403, "The form's CSRF token is missing or wrong; start again.");
      }
      const action = form.get("action");
      if (action === "login") {
        const username = form.get("username") ?? "";
        try {
          const user = await auth.verifyLogin(username, form.get("password") ?? "", address(c));
          const { cookie: value } = await authorizer.startSession(user);
          setCookie(c, SESSION, value, { ...cookie, maxAge: services.config.auth.sessionSeconds });
          audit(c, username, 200);
          return c.redirect(`/auth/authorize?request_id=${encodeURIComponent(id)}`, 303);
        } catch (e) {
          if (e instanceof TooManyAttempts) {
            audit(c, username, 429, e.message);
            c.header("Retry-After", String(e.retryAfterSeconds));
            return send(c, errorPage(e.message), 429);
          }
          if (!(e instanceof OAuthError)) throw e;
          audit(c, username, 401, e.message);
          const p = loginPage({
            requestId: id,
            csrf: pending.csrf,
            clientName: pending.clientName,
            firstParty: pending.firstParty,
            username,
            error: e.description,
          });
          return send(c, p, 401);
        }
      }
      if (action !== "approve" && action !== "deny") {
        throw new PageError(400, "The form has no action (approve or deny).");
      }
      const session = await authorizer.session(getCookie(c, SESSION));
      if (!session) return await show(c, pending);
      const approve = action === "approve";
      const patient = form.get("patient") ?? undefined;
      if (approve && authorizer.needsPatient(pending, session.user)) {
        const chosen = form.getAll("scope").includes("launch/patient");
        if (chosen && (!patient || !(await mayRead(session.user, patient)))) {
          return await show(c, pending, { error: "Choose a patient you may read." });
        }
      }
      const location = await authorizer.decide(pending, session, {
        approve,
        scopes: form.getAll("scope"),
        ...(patient ? { patient } : {}),
      });
      return c.redirect(location, 303);
    } catch (e) {
      return failed(c, e);
    }
  });

  app.post("/logout", async (c) => {
    await authorizer.endSession(getCookie(c, SESSION));
    deleteCookie(c, SESSION, cookie);
    return c.body(null, 204, NO_STORE);
  });

  app.get("/apps", async (c) => {
    requireEhr(c.get("caller"));
    return c.json(await launchableApps(services.db), 200, NO_STORE);
  });

  app.post("/launch", async (c) => {
    const caller = c.get("caller");
    requireEhr(caller);
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(await readBoundedText(c.req.raw, 65_536));
    } catch {
      throw badRequest("The body must be a JSON object");
    }
    if (!body || typeof body !== "object" || Array.isArray(body)) {
      throw badRequest("The body must be a JSON object");
    }
    try {
      const launch = await authorizer.createLaunch(`${caller.kind}:${caller.sub}`, body);
      return c.json(launch, 201, NO_STORE);
    } catch (e) {
      if (e instanceof LaunchInputError) throw badRequest(e.message);
      throw e;
    }
  });

  app.post("/introspect", async (c) => {
    const authorization = c.req.header("authorization");
    const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
    const form = type === "application/x-www-form-urlencoded"
      ? new URLSearchParams(await readBoundedText(c.req.raw, 65_536).catch(() => ""))
      : new URLSearchParams();
    if (/^Bearer\s/i.test(authorization ?? "")) {
      // A resource server's own token: it needs a system/ scope (401 / 403 as OperationOutcomes).
      const caller = await auth.authenticate(authorization);
      const system = caller.kind === "internal" ||
        caller.scopes.grants.some((g) => g.context === "system");
      if (!system) {
        throw forbidden("Introspection needs a token with a system/ scope", "system/*.rs");
      }
    } else if (!authorization && !CLIENT_CREDENTIALS.some((k) => form.has(k))) {
      throw unauthorized(
        "Introspection needs client authentication or a bearer token with a system/ scope",
      );
    } else {
      try {
        await auth.authenticateClient(form, authorization);
      } catch (e) {
        if (!(e instanceof OAuthError)) throw e;
        return c.json(
          { error: "invalid_client", error_description: e.description },
          401,
          { ...NO_STORE, "WWW-Authenticate": 'Basic realm="imaging-ai"' },
        );
      }
    }
    const token = form.get("token");
    if (!token) {
      return c.json({ error: "invalid_request", error_description: "token is required" }, 400);
    }
    const answer = await auth.codes.introspect(token);
    return c.json(JSON.parse(JSON.stringify(answer)), 200, NO_STORE);
  });
  return app;
}

/** Throws a 403 unless `caller` may act as an EHR (launches, the list of apps to open). */
function requireEhr(caller: Caller): void {
  const ehr = caller.kind === "internal" ||
    (caller.kind === "user" && !caller.patient &&
      (caller.role === "admin" || caller.role === "clinician")) ||
    (caller.kind === "client" && caller.scopes.grants.some((g) => g.context === "system"));
  if (!ehr) {
    throw forbidden(
      "Only an EHR may launch apps: a clinician or admin, or a client with system/ scopes",
      "system/Patient.rs",
    );
  }
}

/** A person as the FHIR API sees them (their role's scopes; bound to their patient if any). */
function callerOf(user: UserRow): Caller {
  const scope = accountScopes(user.role, user.patient);
  return {
    kind: "user",
    sub: user.id,
    name: user.username,
    role: user.role,
    ...(user.patient ? { patient: user.patient } : {}),
    scope,
    scopes: parseScopes(scope),
  };
}

function nameOf(r: Record<string, unknown>): string {
  const names = r.name as { text?: string; given?: string[]; family?: string }[] | undefined;
  const n = names?.[0];
  if (!n) return "";
  return n.text ?? [...(n.given ?? []), n.family ?? ""].join(" ").trim();
}
