/**
 * @module The authorization endpoint's logic (SMART App Launch 2, RFC 6749 §4.1, RFC 7636, OAuth
 * 2.1), without HTTP: an authorization request is checked in two steps — its client and
 * redirect URI (a failure is shown on a page, never redirected: RFC 6749 §4.1.2.1), then the rest
 * (response_type, PKCE S256, aud, scope, launch; a failure is redirected with `error` and
 * `state`) — and kept in `auth_request`, bound to the browser (a cookie) and a CSRF token, until
 * the person signs in and decides. Approval makes a grant (scopes, launch context, the browser
 * session) and a single-use code (60 s) bound to the client, redirect URI, PKCE challenge and
 * nonce. Also the browser's sessions (sign-in with the password rules and the login rate limit)
 * and EHR launch contexts.
 */
import type { Db } from "../db/db.ts";
import { patientExists } from "../db/resource_repo.ts";
import type { RegisteredClient } from "./client_assertion.ts";
import { findAppClient, sha256Hex, UI_CLIENT_ID } from "./clients.ts";
import { base64url } from "jose";
import * as repo from "./repo.ts";
import * as smartRepo from "./smart_repo.ts";
import type { LaunchContext } from "./smart_repo.ts";
import { grantableScopes, hasScope, intersectScopes } from "./smart_scopes.ts";

/** An error about the client or its redirect URI: shown to the person, never redirected. */
export class PageError extends Error {
  constructor(readonly status: 400 | 403 | 404 | 429, message: string) {
    super(message);
  }
}

/** An error redirected to the client (RFC 6749 §4.1.2.1) with its `state`. */
export class RedirectError extends Error {
  constructor(
    readonly redirectUri: string,
    readonly state: string | undefined,
    readonly error: string,
    readonly description: string,
    readonly issuer: string,
  ) {
    super(`${error}: ${description}`);
  }
  /** The redirect URL carrying the error (and `iss`, RFC 9207). */
  get location(): string {
    return withParams(this.redirectUri, {
      error: this.error,
      error_description: this.description,
      ...(this.state !== undefined ? { state: this.state } : {}),
      iss: this.issuer,
    });
  }
}

/** An authorization request waiting for the person. */
export interface Pending {
  id: string;
  csrf: string;
  clientId: string;
  clientName: string;
  /** The web UI's own client: no consent page. */
  firstParty: boolean;
  redirectUri: string;
  state?: string;
  /** What the app asked, narrowed to what the client is registered for. */
  scope: string;
  codeChallenge: string;
  nonce?: string;
  /** The EHR launch's context (a `launch` parameter). */
  launch?: LaunchContext;
}

/** A signed-in browser. */
export interface BrowserSession {
  hash: string;
  user: repo.UserRow;
  authTime: Date;
  expiresAt: Date;
}

export interface AuthorizeDeps {
  db: Db;
  origin: string;
  /** The FHIR base URL: the only `aud` accepted. */
  audience: string;
  /** The issuer, sent back as `iss` with every authorization response (RFC 9207). */
  issuer: string;
  now: () => number;
  sessionSeconds: number;
}

const REQUEST_TTL_MS = 10 * 60_000;
const CODE_TTL_MS = 60_000;
const LAUNCH_TTL_MS = 5 * 60_000;
const PKCE = /^[A-Za-z0-9\-._~]{43,128}$/;
const SINGLE = [
  "response_type",
  "client_id",
  "redirect_uri",
  "scope",
  "state",
  "code_challenge",
  "code_challenge_method",
  "aud",
  "launch",
  "nonce",
];

/** `url` with `params` added to its query. */
export function withParams(url: string, params: Record<string, string>): string {
  const u = new URL(url);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

function random(bytes = 32): string {
  return base64url.encode(crypto.getRandomValues(new Uint8Array(bytes)));
}

export function createAuthorizer(d: AuthorizeDeps) {
  const { db } = d;

  /** Step one: the client and its redirect URI (errors go on a page). */
  async function clientOf(params: URLSearchParams): Promise<[RegisteredClient, string]> {
    const clientId = params.get("client_id");
    if (!clientId) throw new PageError(400, "The request has no client_id.");
    const client = await findAppClient(db, d.origin, clientId);
    const uris = client?.redirectUris ?? [];
    if (!client || !uris.length) {
      throw new PageError(400, `No app is registered as ${clientId.slice(0, 128)}.`);
    }
    const asked = params.get("redirect_uri");
    if (asked === null && uris.length !== 1) {
      throw new PageError(400, "The request has no redirect_uri.");
    }
    const redirectUri = asked ?? uris[0];
    if (!uris.includes(redirectUri)) {
      throw new PageError(400, `${redirectUri.slice(0, 300)} is not a redirect URI of this app.`);
    }
    return [client, redirectUri];
  }

  /** What the person may grant of the request (the consent page's boxes). */
  function offered(p: Pending, user: repo.UserRow): string {
    return intersectScopes(p.scope, grantableScopes(user.role, user.patient));
  }

  return {
    offered,
    /** Checks a new authorization request and keeps it for `browser` (a cookie's value). */
    async begin(params: URLSearchParams, browser: string): Promise<Pending> {
      for (const name of SINGLE) {
        if (params.getAll(name).length > 1) {
          throw new PageError(400, `The parameter ${name} is repeated.`);
        }
      }
      const [client, redirectUri] = await clientOf(params);
      const state = params.get("state") ?? undefined;
      const fail = (error: string, why: string) =>
        new RedirectError(redirectUri, state, error, why, d.issuer);
      const responseType = params.get("response_type");
      if (!responseType) throw fail("invalid_request", "response_type is required (code)");
      if (responseType !== "code") {
        throw fail("unsupported_response_type", "response_type must be code");
      }
      const method = params.get("code_challenge_method");
      const challenge = params.get("code_challenge");
      if (method === "plain") {
        throw fail("invalid_request", "code_challenge_method plain is not supported: use S256");
      }
      if (!challenge || method !== "S256") {
        throw fail("invalid_request", "PKCE is required: code_challenge with method S256");
      }
      if (!PKCE.test(challenge)) throw fail("invalid_request", "code_challenge is malformed");
      const aud = params.get("aud");
      if (client.clientId !== UI_CLIENT_ID || aud !== null) {
        if (!aud) throw fail("invalid_request", `aud is required: ${d.audience}`);
        if (aud.replace(/\/+$/, "") !== d.audience) {
          throw fail(
            "invalid_request",
            `aud ${aud.slice(0, 200)} is not this server (${d.audience})`,
          );
        }
      }
      const requested = (params.get("scope") ?? "").trim();
      if (!requested) throw fail("invalid_scope", "scope is required");
      const scope = intersectScopes(requested, client.scope);
      if (!scope) throw fail("invalid_scope", `None of "${requested}" is allowed for this app`);
      const launchId = params.get("launch");
      let launch: LaunchContext | undefined;
      if (launchId !== null) {
        const row = await smartRepo.findLaunch(db, await sha256Hex(launchId));
        if (!row || row.expiresAt.getTime() <= d.now()) {
          throw fail("invalid_request", "The launch is unknown or expired");
        }
        if (row.clientId && row.clientId !== client.clientId) {
          throw fail("invalid_request", "The launch was made for another app");
        }
        launch = row.context;
      } else if (hasScope(scope, "launch")) {
        throw fail("invalid_request", "The launch scope needs a launch parameter (EHR launch)");
      }
      const nonce = params.get("nonce") ?? undefined;
      const pending: Pending = {
        id: random(18),
        csrf: random(),
        clientId: client.clientId,
        clientName: client.name ?? client.clientId,
        firstParty: client.clientId === UI_CLIENT_ID,
        redirectUri,
        ...(state !== undefined ? { state } : {}),
        scope,
        codeChallenge: challenge,
        ...(nonce !== undefined ? { nonce: nonce.slice(0, 512) } : {}),
        ...(launch ? { launch } : {}),
      };
      const { id, csrf, ...request } = pending;
      await smartRepo.insertRequest(db, {
        id,
        csrf,
        browserHash: await sha256Hex(browser),
        request,
        expiresAt: new Date(d.now() + REQUEST_TTL_MS),
      });
      return pending;
    },

    /** A request kept for this browser; a PageError when gone, expired or another browser's. */
    async resume(id: string, browser: string | undefined): Promise<Pending> {
      const row = /^[A-Za-z0-9_-]{1,64}$/.test(id)
        ? await smartRepo.findRequest(db, id)
        : undefined;
      if (!row || row.expiresAt.getTime() <= d.now()) {
        throw new PageError(400, "This sign-in request expired or was already answered.");
      }
      if (!browser || row.browserHash !== await sha256Hex(browser)) {
        throw new PageError(403, "This sign-in request was started in another browser.");
      }
      return { id, csrf: row.csrf, ...(row.request as Omit<Pending, "id" | "csrf">) };
    },

    /** The signed-in browser of a session cookie, if it is still valid. */
    async session(cookie: string | undefined): Promise<BrowserSession | undefined> {
      if (!cookie || cookie.length > 128) return undefined;
      const hash = await sha256Hex(cookie);
      const s = await smartRepo.findSession(db, hash);
      if (!s || s.revokedAt || s.expiresAt.getTime() <= d.now()) return undefined;
      const user = await repo.findUser(db, s.userId);
      if (!user || user.disabled) return undefined;
      return { hash, user, authTime: s.authTime, expiresAt: s.expiresAt };
    },

    /** A new session for a person who signed in; answers the cookie's value. */
    async startSession(user: repo.UserRow): Promise<{ cookie: string; expiresAt: Date }> {
      const cookie = random();
      const expiresAt = new Date(d.now() + d.sessionSeconds * 1000);
      await smartRepo.insertSession(db, {
        idHash: await sha256Hex(cookie),
        userId: user.id,
        expiresAt,
      });
      return { cookie, expiresAt };
    },

    async endSession(cookie: string | undefined): Promise<void> {
      if (cookie && cookie.length <= 128) {
        await smartRepo.revokeSession(db, await sha256Hex(cookie));
      }
    },

    /**
     * Whether the person must choose a patient: `launch/patient` offered, no patient from an EHR
     * launch, an account not bound to one.
     */
    needsPatient(p: Pending, user: repo.UserRow): boolean {
      const can = offered(p, user);
      return hasScope(can, "launch/patient") && !user.patient &&
        !(hasScope(can, "launch") && p.launch?.patient);
    },

    /** The person's answer: the redirect URL with a code, or with `access_denied`. */
    async decide(
      p: Pending,
      s: BrowserSession,
      answer: { approve: boolean; scopes?: string[]; patient?: string },
    ): Promise<string> {
      // Answered once: a second submit (another tab, a replay) finds the request gone.
      const consume = async () => {
        if (!(await smartRepo.deleteRequest(db, p.id))) {
          throw new PageError(400, "This sign-in request was already answered.");
        }
      };
      const deny = async (why: string) => {
        await consume();
        return new RedirectError(p.redirectUri, p.state, "access_denied", why, d.issuer).location;
      };
      if (!answer.approve) return await deny("The person declined");
      const can = offered(p, s.user).split(" ").filter(Boolean);
      // The web UI gets what the account may do: its role's user/ scopes, or for an account bound
      // to a patient the patient/ ones (no picker: the binding is the patient).
      const chosen = p.firstParty
        ? can.filter((t) => s.user.patient || !(t.startsWith("patient/") || t === "launch/patient"))
        : can.filter((t) => (answer.scopes ?? []).includes(t));
      if (!chosen.filter((t) => t.includes("/") && !t.startsWith("launch")).length) {
        return await deny("No access to records was approved");
      }
      const scope = chosen.join(" ");
      const ehr = hasScope(scope, "launch") ? p.launch ?? {} : {};
      const context: LaunchContext = {};
      let patient = s.user.patient ?? ehr.patient;
      if (!patient && hasScope(scope, "launch/patient")) {
        const m = /^(?:Patient\/)?([A-Za-z0-9\-.]{1,64})$/.exec(answer.patient ?? "");
        if (!m || !(await patientExists(db, m[1]))) {
          // The request stays: the person may choose and approve again.
          throw new PageError(400, "Choose a patient for the app.");
        }
        patient = m[1];
        context.needPatientBanner = true;
      }
      if (patient && (hasScope(scope, "launch") || hasScope(scope, "launch/patient"))) {
        context.patient = patient;
      } else if (s.user.patient) {
        context.patient = s.user.patient;
      }
      if (hasScope(scope, "launch")) {
        if (ehr.encounter) context.encounter = ehr.encounter;
        if (ehr.fhirContext?.length) context.fhirContext = ehr.fhirContext;
        if (ehr.needPatientBanner !== undefined) context.needPatientBanner = ehr.needPatientBanner;
        if (ehr.smartStyleUrl) context.smartStyleUrl = ehr.smartStyleUrl;
        if (ehr.intent) context.intent = ehr.intent;
      }
      await consume();
      const grantId = crypto.randomUUID();
      await smartRepo.insertGrant(db, {
        id: grantId,
        userId: s.user.id,
        clientId: p.clientId,
        scope,
        context,
        session: s.hash,
        authTime: s.authTime,
      });
      const code = random();
      await smartRepo.insertCode(db, {
        codeHash: await sha256Hex(code),
        grantId,
        clientId: p.clientId,
        redirectUri: p.redirectUri,
        codeChallenge: p.codeChallenge,
        nonce: p.nonce ?? null,
        expiresAt: new Date(d.now() + CODE_TTL_MS),
      });
      return withParams(p.redirectUri, {
        code,
        ...(p.state !== undefined ? { state: p.state } : {}),
        iss: d.issuer,
      });
    },

    /** An EHR launch: keeps `context` for five minutes and answers its opaque id. */
    async createLaunch(
      createdBy: string,
      body: Record<string, unknown>,
    ): Promise<{ launch: string; expires_in: number }> {
      const context = await launchContextOf(db, body);
      const clientId = body.client_id;
      if (clientId !== undefined) {
        if (typeof clientId !== "string" || !(await findAppClient(db, d.origin, clientId))) {
          throw new LaunchInputError(`client_id: no app is registered as ${String(clientId)}`);
        }
      }
      const launch = random();
      await smartRepo.insertLaunch(db, await sha256Hex(launch), {
        clientId: (clientId as string | undefined) ?? null,
        context,
        createdBy,
        expiresAt: new Date(d.now() + LAUNCH_TTL_MS),
      });
      return { launch, expires_in: LAUNCH_TTL_MS / 1000 };
    },
  };
}

export type Authorizer = ReturnType<typeof createAuthorizer>;

/** A bad `POST /auth/launch` body (answered 400). */
export class LaunchInputError extends Error {}

const ID = /^[A-Za-z0-9\-.]{1,64}$/;
const REFERENCE = /^[A-Z][A-Za-z]{1,63}\/[A-Za-z0-9\-.]{1,64}$/;

/** The context of a launch request: ids checked, the patient checked to exist. */
async function launchContextOf(db: Db, b: Record<string, unknown>): Promise<LaunchContext> {
  const bad = (why: string) => new LaunchInputError(why);
  const idOf = (name: string, type: string): string | undefined => {
    const v = b[name];
    if (v === undefined || v === null) return undefined;
    const id = typeof v === "string" ? v.replace(new RegExp(`^${type}/`), "") : "";
    if (!ID.test(id)) throw bad(`${name}: ${type}/{id} or the id`);
    return id;
  };
  const context: LaunchContext = {};
  const patient = idOf("patient", "Patient");
  if (patient) {
    if (!(await patientExists(db, patient))) {
      throw bad(`patient: Patient/${patient} does not exist`);
    }
    context.patient = patient;
  }
  const encounter = idOf("encounter", "Encounter");
  if (encounter) context.encounter = encounter;
  const fhirContext: { reference: string }[] = [];
  const study = idOf("imagingStudy", "ImagingStudy");
  if (study) fhirContext.push({ reference: `ImagingStudy/${study}` });
  if (b.fhirContext !== undefined) {
    if (!Array.isArray(b.fhirContext) || b.fhirContext.length > 20) {
      throw bad("fhirContext: an array of up to 20 references");
    }
    for (const item of b.fhirContext) {
      const ref = typeof item === "string" ? item : (item as { reference?: unknown })?.reference;
      if (typeof ref !== "string" || !REFERENCE.test(ref)) {
        throw bad('fhirContext: items are "Type/id" or {"reference": "Type/id"}');
      }
      if (!fhirContext.some((c) => c.reference === ref)) fhirContext.push({ reference: ref });
    }
  }
  if (fhirContext.length) context.fhirContext = fhirContext;
  if (b.need_patient_banner !== undefined) {
    if (typeof b.need_patient_banner !== "boolean") throw bad("need_patient_banner: a boolean");
    context.needPatientBanner = b.need_patient_banner;
  }
  if (b.intent !== undefined) {
    if (typeof b.intent !== "string" || b.intent.length > 200) throw bad("intent: a string");
    context.intent = b.intent;
  }
  if (b.smart_style_url !== undefined) {
    if (typeof b.smart_style_url !== "string" || !/^https?:\/\//.test(b.smart_style_url)) {
      throw bad("smart_style_url: an http(s) URL");
    }
    context.smartStyleUrl = b.smart_style_url;
  }
  return context;
}
