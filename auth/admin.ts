/**
 * @module Accounts and registered clients for admins (`/auth/users`, `/auth/clients`): validation
 * of what an admin sends, the rules that keep an admin in charge (the last enabled admin is never
 * demoted, disabled or deleted), and the views that never show a password hash.
 */
import type { Db } from "../db/db.ts";
import type { Config } from "../platform/config.ts";
import type { Logger } from "../platform/log.ts";
import { patientExists } from "../db/resource_repo.ts";
import { hashPassword } from "./passwords.ts";
import * as repo from "./repo.ts";
import { parseScopes } from "./scopes.ts";
import type { ClientAuthMethod } from "./client_assertion.ts";
import { AUTH_METHODS, newSecret, redirectUriProblem, sha256Hex, UI_CLIENT_ID } from "./clients.ts";
import { LAUNCH_SCOPES } from "./smart_scopes.ts";

/** Usernames: lower-case letters, digits and . _ @ -, 2 to 64 characters. */
export const USERNAME = /^[a-z0-9][a-z0-9._@-]{1,63}$/;

export interface UserView {
  id: string;
  username: string;
  displayName: string | null;
  role: repo.Role;
  fhirUser: string | null;
  /** `Patient/{id}` when the account is bound to one patient's compartment. */
  patient: string | null;
  disabled: boolean;
  lockedUntil: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface UserInput {
  username?: string;
  password?: string;
  displayName?: string | null;
  role?: repo.Role;
  fhirUser?: string | null;
  /** `Patient/{id}` (or the bare id) of an existing Patient; null unbinds. */
  patient?: string | null;
  disabled?: boolean;
}

export interface UserAdmin {
  list(): Promise<UserView[]>;
  get(id: string): Promise<UserView | undefined>;
  create(input: UserInput): Promise<UserView>;
  update(id: string, input: UserInput): Promise<UserView | undefined>;
  remove(id: string): Promise<boolean>;
}

export interface ClientInput {
  clientId?: string;
  name?: string;
  jwks?: { keys: JsonWebKey[] };
  jwksUri?: string;
  scope?: string;
  disabled?: boolean;
  /** Where an app's authorization codes may be sent (exact strings). */
  redirectUris?: string[];
  redirect_uris?: string[];
  /** none | client_secret_basic | client_secret_post | private_key_jwt (the default). */
  tokenEndpointAuthMethod?: string;
  token_endpoint_auth_method?: string;
  /** A symmetric client: make a new secret (answered once). */
  rotateSecret?: boolean;
  /** Where an EHR launch opens the app (the web UI's "Open in app"). */
  launchUrl?: string | null;
}

export interface ClientAdmin {
  list(): Promise<ReturnType<typeof clientView>[]>;
  get(id: string): Promise<ReturnType<typeof clientView> | undefined>;
  /** Creates or replaces a client; a new secret of a symmetric client is answered once. */
  put(input: ClientInput): Promise<ReturnType<typeof clientView> & { clientSecret?: string }>;
  remove(id: string): Promise<boolean>;
}

/** A bad account or client body: answered 400 with the message. */
export class InputError extends Error {}

/** Account administration; new passwords are hashed with `iterations` PBKDF2 rounds. */
export function createUserAdmin(db: Db, iterations: number): UserAdmin {
  return {
    async list() {
      return (await repo.listUsers(db)).map(userView);
    },
    async get(id) {
      const u = await repo.findUser(db, id);
      return u && userView(u);
    },
    async create(input) {
      const username = (input.username ?? "").trim().toLowerCase();
      if (!USERNAME.test(username)) {
        throw new InputError(
          "username: 2–64 characters, lower-case letters, digits and . _ @ -, starting with a " +
            "letter or digit",
        );
      }
      checkPassword(input.password);
      const role = checkRole(input.role ?? "viewer");
      const patient = await checkPatient(db, input.patient, role);
      const id = crypto.randomUUID();
      const ok = await repo.insertUser(db, {
        id,
        username,
        displayName: input.displayName ?? null,
        role,
        passwordHash: await hashPassword(input.password!, iterations),
        fhirUser: checkFhirUser(input.fhirUser),
        patient,
      });
      if (!ok) throw new InputError(`username ${username} is taken`);
      return userView((await repo.findUser(db, id))!);
    },
    async update(id, input) {
      if (input.username !== undefined) throw new InputError("username cannot be changed");
      if (input.password !== undefined) checkPassword(input.password);
      const role = input.role === undefined ? undefined : checkRole(input.role);
      const before = await repo.findUser(db, id);
      if (!before) return undefined;
      if (
        before.role === "admin" && (role && role !== "admin" || input.disabled) &&
        await repo.countAdmins(db) <= 1
      ) {
        throw new InputError("The last enabled admin cannot be demoted or disabled");
      }
      const patient = input.patient === undefined && role === undefined
        ? undefined
        : await checkPatient(
          db,
          input.patient === undefined ? before.patient : input.patient,
          role ?? before.role,
        );
      await repo.updateUser(db, id, {
        displayName: input.displayName,
        role,
        fhirUser: input.fhirUser === undefined ? undefined : checkFhirUser(input.fhirUser),
        patient,
        disabled: input.disabled,
        passwordHash: input.password === undefined
          ? undefined
          : await hashPassword(input.password, iterations),
      });
      // A new password, role or patient, or a disabled account, ends the sessions in flight.
      const rebound = patient !== undefined && patient !== before.patient;
      if (input.password !== undefined || role || input.disabled || rebound) {
        await repo.revokeUserTokens(db, id);
      }
      return userView((await repo.findUser(db, id))!);
    },
    async remove(id) {
      const before = await repo.findUser(db, id);
      if (!before) return false;
      if (before.role === "admin" && await repo.countAdmins(db) <= 1) {
        throw new InputError("The last enabled admin cannot be deleted");
      }
      return await repo.deleteUser(db, id);
    },
  };
}

/** Registered Backend Services clients. */
export function createClientAdmin(db: Db): ClientAdmin {
  return {
    async list() {
      return (await repo.listClients(db)).map(clientView);
    },
    async get(id) {
      const c = await repo.findClient(db, id);
      return c && clientView(c);
    },
    async put(input) {
      const clientId = (input.clientId ?? "").trim();
      if (!/^[A-Za-z0-9._:-]{3,128}$/.test(clientId)) {
        throw new InputError("clientId: 3–128 characters of letters, digits and . _ : -");
      }
      if (clientId === UI_CLIENT_ID) {
        throw new InputError(`${UI_CLIENT_ID} is the web UI's built-in client`);
      }
      const method = (input.tokenEndpointAuthMethod ?? input.token_endpoint_auth_method ??
        "private_key_jwt") as ClientAuthMethod;
      if (!AUTH_METHODS.includes(method)) {
        throw new InputError(`tokenEndpointAuthMethod: one of ${AUTH_METHODS.join(", ")}`);
      }
      const redirectUris = input.redirectUris ?? input.redirect_uris ?? [];
      if (!Array.isArray(redirectUris) || redirectUris.length > 20) {
        throw new InputError("redirectUris: an array of up to 20 URLs");
      }
      for (const uri of redirectUris) {
        const problem = redirectUriProblem(uri);
        if (problem) throw new InputError(`redirectUris: ${problem}`);
      }
      const launchUrl = input.launchUrl ?? undefined;
      if (launchUrl !== undefined) {
        const problem = redirectUriProblem(launchUrl);
        if (problem) throw new InputError(`launchUrl: ${problem}`);
        if (!redirectUris.length) throw new InputError("launchUrl: an app needs redirectUris");
      }
      if (method !== "private_key_jwt") {
        if (!redirectUris.length) {
          throw new InputError(`A ${method} client is an app: redirectUris is required`);
        }
        const before = await repo.findClient(db, clientId);
        const scope = checkAppScope(input.scope, false);
        let secret: string | undefined;
        let secretHash = before?.authMethod === method ? before.secretHash : undefined;
        if (method !== "none" && (!secretHash || input.rotateSecret)) {
          secret = newSecret();
          secretHash = await sha256Hex(secret);
        }
        await repo.upsertClient(db, {
          clientId,
          name: input.name,
          scope,
          disabled: input.disabled,
          redirectUris,
          authMethod: method,
          secretHash: method === "none" ? undefined : secretHash,
          launchUrl,
        });
        const view = clientView((await repo.findClient(db, clientId))!);
        return secret ? { ...view, clientSecret: secret } : view;
      }
      if (!input.jwks && !input.jwksUri) throw new InputError("jwks or jwksUri is required");
      if (input.jwks && !Array.isArray(input.jwks.keys)) {
        throw new InputError('jwks must be a JWK Set: {"keys": [...]}');
      }
      if (input.jwks?.keys.some((k) => "d" in k || "p" in k || "k" in k)) {
        throw new InputError("jwks must hold public keys only");
      }
      if (input.jwksUri && !/^https?:\/\//.test(input.jwksUri)) {
        throw new InputError("jwksUri must be an http(s) URL");
      }
      const common = {
        clientId,
        name: input.name,
        jwks: input.jwks,
        jwksUri: input.jwksUri,
        disabled: input.disabled,
      };
      if (redirectUris.length) {
        const scope = checkAppScope(input.scope, true);
        await repo.upsertClient(db, {
          ...common,
          scope,
          redirectUris,
          authMethod: method,
          launchUrl,
        });
        return clientView((await repo.findClient(db, clientId))!);
      }
      const scope = (input.scope ?? "").trim();
      const parsed = parseScopes(scope);
      if (!parsed.grants.length || parsed.invalid.length) {
        throw new InputError(
          `scope: system/… scopes separated by spaces${
            parsed.invalid.length ? `; invalid: ${parsed.invalid.join(" ")}` : ""
          }`,
        );
      }
      if (parsed.grants.some((g) => g.context !== "system")) {
        throw new InputError("A backend client is granted system/… scopes only");
      }
      await repo.upsertClient(db, { ...common, scope });
      return clientView((await repo.findClient(db, clientId))!);
    },
    async remove(id) {
      return await repo.deleteClient(db, id);
    },
  };
}

function userView(u: repo.UserRow): UserView {
  return {
    id: u.id,
    username: u.username,
    displayName: u.displayName,
    role: u.role,
    fhirUser: u.fhirUser,
    patient: u.patient ? `Patient/${u.patient}` : null,
    disabled: u.disabled,
    lockedUntil: u.lockedUntil && u.lockedUntil.getTime() > Date.now()
      ? u.lockedUntil.toISOString()
      : null,
    createdAt: u.createdAt.toISOString(),
    updatedAt: u.updatedAt.toISOString(),
  };
}

function clientView(c: Awaited<ReturnType<typeof repo.findClient>> & object) {
  return {
    clientId: c.clientId,
    name: c.name ?? null,
    jwks: c.jwks ?? null,
    jwksUri: c.jwksUri ?? null,
    scope: c.scope,
    disabled: Boolean(c.disabled),
    redirectUris: c.redirectUris ?? [],
    tokenEndpointAuthMethod: c.authMethod ?? "private_key_jwt",
    launchUrl: c.launchUrl ?? null,
    createdAt: c.createdAt.toISOString(),
  };
}

/**
 * An app's allowed scopes: resource scopes (`system/` only for a private_key_jwt client) and the
 * SMART launch and identity scopes; at least one.
 */
function checkAppScope(value: string | undefined, system: boolean): string {
  const scope = (value ?? "").trim();
  const parsed = parseScopes(scope);
  const unknown = parsed.other.filter((s) => !(LAUNCH_SCOPES as readonly string[]).includes(s));
  if (!scope || parsed.invalid.length || unknown.length) {
    throw new InputError(
      `scope: patient/…, user/… scopes and ${LAUNCH_SCOPES.join(", ")}, separated by spaces` +
        (parsed.invalid.length || unknown.length
          ? `; not allowed: ${[...parsed.invalid, ...unknown].join(" ")}`
          : ""),
    );
  }
  if (!system && parsed.grants.some((g) => g.context === "system")) {
    throw new InputError("system/… scopes are for private_key_jwt clients only");
  }
  return scope;
}

function checkPassword(password: string | undefined): void {
  if (typeof password !== "string" || password.length < 12 || password.length > 1024) {
    throw new InputError("password: 12 to 1024 characters");
  }
}

function checkRole(role: string): repo.Role {
  if (!repo.ROLES.includes(role as repo.Role)) {
    throw new InputError(`role: one of ${repo.ROLES.join(", ")}`);
  }
  return role as repo.Role;
}

/**
 * The Patient id an account is bound to: `Patient/{id}` or `{id}` of a Patient that exists (and is
 * not deleted); null for none. Admins are never bound: they administer the whole service.
 */
async function checkPatient(
  db: Db,
  value: string | null | undefined,
  role: repo.Role,
): Promise<string | null> {
  if (value === undefined || value === null || value === "") return null;
  const m = typeof value === "string" ? /^(?:Patient\/)?([A-Za-z0-9\-.]{1,64})$/.exec(value) : null;
  if (!m) throw new InputError("patient: Patient/{id} or the id of a Patient");
  if (role === "admin") {
    throw new InputError("patient: an admin account cannot be bound to a patient");
  }
  if (!(await patientExists(db, m[1]))) {
    throw new InputError(`patient: Patient/${m[1]} does not exist`);
  }
  return m[1];
}

function checkFhirUser(v: string | null | undefined): string | null {
  if (v === undefined || v === null || v === "") return null;
  if (!/^(Practitioner|Patient|RelatedPerson|Person)\/[A-Za-z0-9\-.]{1,64}$/.test(v)) {
    throw new InputError("fhirUser: Practitioner/…, Patient/…, RelatedPerson/… or Person/…");
  }
  return v;
}

/** Creates the first admin from config when there is no admin yet (see AuthService). */
export async function ensureFirstAdmin(
  db: Db,
  config: Readonly<Config>,
  users: UserAdmin,
  log: Logger,
): Promise<void> {
  const a = config.auth;
  if (await repo.countAdmins(db) > 0) return;
  if (!a.adminPassword && a.enabled && !config.databaseUrl && config.pgliteDir !== "memory") {
    // The embedded default on first start: an admin with a random password, written to a
    // file only its owner can read (never to the log), like an appliance's first boot.
    const password = newSecret().slice(0, 24);
    const file = `${config.pgliteDir.replace(/\/+$/, "")}/../initial-admin-password`;
    await users.create({ username: a.adminUsername, password, role: "admin" });
    await Deno.writeTextFile(file, `${a.adminUsername}\n${password}\n`, { mode: 0o600 });
    log(
      "warn",
      "first start: admin account created; its password is in the file named here " +
        "(log in, change it with PATCH /auth/users/{id}, then delete the file)",
      {
        username: a.adminUsername,
        file: new URL(file, `file://${Deno.cwd()}/`).pathname,
      },
    );
    return;
  }
  if (!a.adminPassword) {
    if (a.enabled) {
      log(
        "warn",
        "no admin account: set ADMIN_PASSWORD (and ADMIN_USERNAME) and restart to create " +
          "the first one",
      );
    }
    return;
  }
  await users.create({ username: a.adminUsername, password: a.adminPassword, role: "admin" })
    .catch((e) => {
      if (!(e instanceof InputError)) throw e;
      log("error", `could not create the first admin: ${e.message}`);
    });
  log("info", "first admin account created", { username: a.adminUsername });
}
