/**
 * @module The service's token-signing keys: ES256 (ECDSA P-256) key pairs whose `kid` is the RFC
 * 7638 thumbprint of the public key, kept in a {@link SigningKeyRepo} (Postgres in the service, an
 * in-memory one for tests) and cached by a {@link KeyRing}. The ring signs with the newest
 * unretired key, creating one when there is none; it verifies with unretired keys and with retired
 * ones for a grace period (24 h by default), so tokens signed just before a rotation stay valid;
 * it publishes exactly those public keys as the JWKS. Several replicas share the repo: a ring
 * reloads when asked for a kid it does not know (such reloads at most once per
 * `reloadMinIntervalMs`, so a flood of made-up kids cannot flood the database) and refreshes its
 * cache every
 * `refreshIntervalMs`, so that it picks up keys made, and retirements done, by another replica.
 * Two replicas starting at once may each create a key; both keys verify, and every ring signs with
 * the newest. Private key material never leaves the ring except through `signingKey()`.
 */
import { calculateJwkThumbprint } from "jose";

/** One signing key as stored. `privateJwk` is secret: the repo must protect it. */
export interface StoredSigningKey {
  /** The RFC 7638 SHA-256 thumbprint of the public key. */
  kid: string;
  alg: "ES256";
  privateJwk: JsonWebKey;
  publicJwk: JsonWebKey;
  createdAt: Date;
  /** When it stopped signing; it still verifies for the ring's grace period after that. */
  retiredAt: Date | null;
}

/** Storage of the signing keys, shared by every replica. */
export interface SigningKeyRepo {
  /** Every stored key, retired ones included (a repo may drop keys retired long ago). */
  list(): Promise<StoredSigningKey[]>;
  /** Stores a new key; a kid already stored (the same public key) is left as it is. */
  insert(k: StoredSigningKey): Promise<void>;
  /** Marks a key retired at `at`, unless it is already retired (the first retirement stands). */
  retire(kid: string, at: Date): Promise<void>;
}

/** A {@link SigningKeyRepo} in memory, for tests and single-process use. */
export function memorySigningKeyRepo(): SigningKeyRepo {
  const rows = new Map<string, StoredSigningKey>();
  return {
    list: () => Promise.resolve([...rows.values()].map((k) => structuredClone(k))),
    insert(k) {
      if (!rows.has(k.kid)) rows.set(k.kid, structuredClone(k));
      return Promise.resolve();
    },
    retire(kid, at) {
      const row = rows.get(kid);
      if (row && row.retiredAt === null) row.retiredAt = new Date(at.getTime());
      return Promise.resolve();
    },
  };
}

/** The service's signing and verification keys. */
export interface KeyRing {
  /** The newest unretired key, created (and stored) when there is none. */
  signingKey(): Promise<{ kid: string; alg: "ES256"; key: CryptoKey }>;
  /** The public key for `kid` if it is unretired or retired less than the grace period ago. */
  verificationKey(kid: string): Promise<CryptoKey | undefined>;
  /** The public JWKs (`kid`, `alg`, `use: "sig"`) of the keys `verificationKey` accepts. */
  jwks(): Promise<{ keys: JsonWebKey[] }>;
  /** Makes a new key and retires the older ones now (they verify for the grace); its kid. */
  rotate(): Promise<string>;
}

/** Options of {@link createKeyRing}. */
export interface KeyRingOptions {
  /** How long a retired key still verifies tokens (default 24 h). */
  retiredGraceMs?: number;
  /**
   * The least time between two reloads caused by an unknown kid (default 5 s): a kid created by
   * another replica within that time of the last such reload is found only after it.
   */
  reloadMinIntervalMs?: number;
  /** The age after which the cache is reloaded before it is used (default 60 s). */
  refreshIntervalMs?: number;
  /** The clock, in ms since the epoch (default `Date.now`). */
  now?: () => number;
}

const ALG = "ES256";
const CURVE: EcKeyImportParams = { name: "ECDSA", namedCurve: "P-256" };

interface CachedKey {
  stored: StoredSigningKey;
  publicKey: CryptoKey;
  /** Imported on first use (non-extractable). */
  privateKey?: Promise<CryptoKey>;
}

/**
 * A {@link KeyRing} over `repo`. Rows that are not usable ES256 P-256 keys are ignored. The ring
 * never retires or deletes a key except in `rotate()`. A repo error is thrown by the first load
 * and by a reload for an unknown kid; a failing periodic refresh keeps the cached keys.
 */
export function createKeyRing(repo: SigningKeyRepo, options: KeyRingOptions = {}): KeyRing {
  const graceMs = options.retiredGraceMs ?? 24 * 60 * 60 * 1000;
  const reloadMinMs = options.reloadMinIntervalMs ?? 5000;
  const refreshMs = options.refreshIntervalMs ?? 60_000;
  const now = options.now ?? Date.now;

  let keys = new Map<string, CachedKey>();
  let loadedAt = Number.NEGATIVE_INFINITY;
  /** When an unknown kid last caused a reload (the throttle counts only these). */
  let unknownReloadAt = Number.NEGATIVE_INFINITY;
  let loaded = false;
  let loading: Promise<void> | undefined;
  let creating: Promise<CachedKey> | undefined;
  /** Keys this ring stored: kept when a reload that read the repo before the insert ends. */
  const createdHere = new Set<string>();

  /** Reloads from the repo; concurrent callers share one reload. */
  function load(): Promise<void> {
    loading ??= (async () => {
      loadedAt = now();
      const rows = await repo.list();
      const next = new Map<string, CachedKey>();
      for (const stored of rows) {
        const known = keys.get(stored.kid);
        if (known) {
          next.set(stored.kid, { ...known, stored });
          continue;
        }
        const publicKey = await importPublic(stored).catch(() => undefined);
        if (publicKey) next.set(stored.kid, { stored, publicKey });
      }
      for (const kid of createdHere) {
        const mine = keys.get(kid);
        if (mine && !next.has(kid)) next.set(kid, mine);
      }
      keys = next;
      loaded = true;
    })().finally(() => loading = undefined);
    return loading;
  }

  /**
   * Reloads when the cache is older than `refreshMs`. Once a load has succeeded, a failed refresh
   * keeps the cache (and is tried again after `refreshMs`): a database outage does not stop
   * tokens from being signed and verified with the keys already known.
   */
  async function fresh(): Promise<void> {
    if (now() - loadedAt < refreshMs) return;
    try {
      await load();
    } catch (e) {
      if (!loaded) throw e;
    }
  }

  function verifies(k: CachedKey): boolean {
    const retired = k.stored.retiredAt;
    return retired === null || now() < retired.getTime() + graceMs;
  }

  function newestActive(): CachedKey | undefined {
    let best: CachedKey | undefined;
    for (const k of keys.values()) {
      if (k.stored.retiredAt !== null) continue;
      if (!best || newer(k.stored, best.stored)) best = k;
    }
    return best;
  }

  async function generateAndStore(): Promise<CachedKey> {
    const { stored, publicKey } = await generate(new Date(now()));
    await repo.insert(stored);
    const cached: CachedKey = { stored, publicKey };
    createdHere.add(stored.kid);
    keys.set(stored.kid, cached);
    return cached;
  }

  /** Creates the first key, unless the repo (reloaded) has one by now. */
  function createFirst(): Promise<CachedKey> {
    creating ??= (async () => {
      await load();
      return newestActive() ?? await generateAndStore();
    })().finally(() => creating = undefined);
    return creating;
  }

  return {
    async signingKey() {
      await fresh();
      const k = newestActive() ?? await createFirst();
      k.privateKey ??= importPrivate(k.stored);
      return { kid: k.stored.kid, alg: ALG, key: await k.privateKey };
    },

    async verificationKey(kid) {
      if (typeof kid !== "string" || kid === "") return undefined;
      await fresh();
      let k = keys.get(kid);
      if (!k && now() - unknownReloadAt >= reloadMinMs) {
        unknownReloadAt = now();
        await load();
        k = keys.get(kid);
      }
      return k && verifies(k) ? k.publicKey : undefined;
    },

    async jwks() {
      await fresh();
      const list = [...keys.values()].filter(verifies).map((k) => k.stored);
      list.sort((a, b) => newer(a, b) ? -1 : 1);
      return { keys: list.map(publicJwkOf) };
    },

    async rotate() {
      const created = await generateAndStore();
      for (const k of await repo.list()) {
        // Every older key, not one that a concurrent rotation elsewhere made after this one.
        const older = k.createdAt.getTime() <= created.stored.createdAt.getTime();
        if (k.retiredAt === null && k.kid !== created.stored.kid && older) {
          await repo.retire(k.kid, created.stored.createdAt);
        }
      }
      // A reload that began before the retirements would bring back the old keys as unretired.
      await loading?.catch(() => undefined);
      await load();
      return created.stored.kid;
    },
  };
}

/** Whether `a` is newer than `b` (by creation time, then by kid so every replica agrees). */
function newer(a: StoredSigningKey, b: StoredSigningKey): boolean {
  const d = a.createdAt.getTime() - b.createdAt.getTime();
  return d > 0 || (d === 0 && a.kid > b.kid);
}

/** Only the public members of the key, whatever else the stored JWK holds. */
function publicJwkOf(k: StoredSigningKey): JsonWebKey {
  const { kty, crv, x, y } = k.publicJwk;
  const jwk: JsonWebKey & { kid: string } = { kty, crv, x, y, kid: k.kid, alg: ALG, use: "sig" };
  return jwk;
}

function checkRow(k: StoredSigningKey): void {
  const { kty, crv } = k.publicJwk;
  if (k.alg !== ALG || kty !== "EC" || crv !== "P-256") {
    throw new Error(`signing key ${k.kid} is not an ES256 P-256 key`);
  }
}

async function importPublic(k: StoredSigningKey): Promise<CryptoKey> {
  checkRow(k);
  const { kty, crv, x, y } = k.publicJwk;
  return await crypto.subtle.importKey("jwk", { kty, crv, x, y }, CURVE, true, ["verify"]);
}

function importPrivate(k: StoredSigningKey): Promise<CryptoKey> {
  const { kty, crv, x, y, d } = k.privateJwk;
  return crypto.subtle.importKey("jwk", { kty, crv, x, y, d }, CURVE, false, ["sign"]);
}

async function generate(
  createdAt: Date,
): Promise<{ stored: StoredSigningKey; publicKey: CryptoKey }> {
  const pair = await crypto.subtle.generateKey(CURVE, true, ["sign", "verify"]);
  const { kty, crv, x, y, d } = await crypto.subtle.exportKey("jwk", pair.privateKey);
  const publicJwk: JsonWebKey = { kty, crv, x, y };
  const kid = await calculateJwkThumbprint(
    { kty: kty ?? "", crv, x, y },
    "sha256",
  );
  const stored: StoredSigningKey = {
    kid,
    alg: ALG,
    privateJwk: { kty, crv, x, y, d },
    publicJwk,
    createdAt,
    retiredAt: null,
  };
  return { stored, publicKey: await importPublic(stored) };
}
