/**
 * @module The service's token-signing keys: ES256 (ECDSA P-256) key pairs for access tokens, and
 * RS256 (RSA 2048) ones for OpenID Connect ID tokens (RS256 is OIDC's default and the one every
 * relying party verifies), one ring per algorithm, each `kid` the RFC 7638 thumbprint of the
 * public key, kept in a {@link SigningKeyRepo} (Postgres in the service, an
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
  alg: SigningAlg;
  privateJwk: JsonWebKey;
  publicJwk: JsonWebKey;
  createdAt: Date;
  /** When it stopped signing; it still verifies for the ring's grace period after that. */
  retiredAt: Date | null;
}

/** The algorithms a ring signs with. */
export type SigningAlg = "ES256" | "RS256";

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
  signingKey(): Promise<{ kid: string; alg: SigningAlg; key: CryptoKey }>;
  /** The public key for `kid` if it is unretired or retired less than the grace period ago. */
  verificationKey(kid: string): Promise<CryptoKey | undefined>;
  /** The public JWKs (`kid`, `alg`, `use: "sig"`) of the keys `verificationKey` accepts. */
  jwks(): Promise<{ keys: JsonWebKey[] }>;
  /** Makes a new key and retires the older ones now (they verify for the grace); its kid. */
  rotate(): Promise<string>;
}

/** Options of {@link createKeyRing}. */
export interface KeyRingOptions {
  /** The algorithm of the ring's keys (default ES256); rows of another are not the ring's. */
  alg?: SigningAlg;
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

/** How each algorithm's keys are made, imported and published. */
const SPECS: Record<SigningAlg, {
  params: EcKeyImportParams | RsaHashedImportParams;
  generate: EcKeyGenParams | RsaHashedKeyGenParams;
  /** The JWK members of the public key (the thumbprint's, RFC 7638) and of the private key. */
  publicMembers: readonly string[];
  privateMembers: readonly string[];
  usable(jwk: JsonWebKey): boolean;
}> = {
  ES256: {
    params: { name: "ECDSA", namedCurve: "P-256" },
    generate: { name: "ECDSA", namedCurve: "P-256" },
    publicMembers: ["crv", "kty", "x", "y"],
    privateMembers: ["crv", "kty", "x", "y", "d"],
    usable: (j) => j.kty === "EC" && j.crv === "P-256",
  },
  RS256: {
    params: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    generate: {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    publicMembers: ["e", "kty", "n"],
    privateMembers: ["e", "kty", "n", "d", "p", "q", "dp", "dq", "qi"],
    usable: (j) => j.kty === "RSA" && typeof j.n === "string" && j.n.length >= 342,
  },
};

/** Only `members` of `jwk`. */
function pick(jwk: JsonWebKey, members: readonly string[]): JsonWebKey {
  const out: Record<string, unknown> = {};
  for (const m of members) {
    const v = (jwk as Record<string, unknown>)[m];
    if (v !== undefined) out[m] = v;
  }
  return out as JsonWebKey;
}

interface CachedKey {
  stored: StoredSigningKey;
  publicKey: CryptoKey;
  /** Imported on first use (non-extractable). */
  privateKey?: Promise<CryptoKey>;
}

/**
 * A {@link KeyRing} over `repo` for one algorithm. Rows of another algorithm, and rows that are not
 * usable keys of its own, are ignored. The ring
 * never retires or deletes a key except in `rotate()`. A repo error is thrown by the first load
 * and by a reload for an unknown kid; a failing periodic refresh keeps the cached keys.
 */
export function createKeyRing(repo: SigningKeyRepo, options: KeyRingOptions = {}): KeyRing {
  const alg = options.alg ?? "ES256";
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
        if (stored.alg !== alg) continue;
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
    const { stored, publicKey } = await generate(alg, new Date(now()));
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
      return { kid: k.stored.kid, alg, key: await k.privateKey };
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
        if (k.alg === alg && k.retiredAt === null && k.kid !== created.stored.kid && older) {
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
  return { ...pick(k.publicJwk, SPECS[k.alg].publicMembers), kid: k.kid, alg: k.alg, use: "sig" } as
    & JsonWebKey
    & { kid: string };
}

function checkRow(k: StoredSigningKey): void {
  const spec = SPECS[k.alg];
  if (!spec || !spec.usable(k.publicJwk)) {
    throw new Error(`signing key ${k.kid} is not a usable ${k.alg} key`);
  }
}

async function importPublic(k: StoredSigningKey): Promise<CryptoKey> {
  checkRow(k);
  const spec = SPECS[k.alg];
  return await crypto.subtle.importKey(
    "jwk",
    pick(k.publicJwk, spec.publicMembers),
    spec.params,
    true,
    ["verify"],
  );
}

function importPrivate(k: StoredSigningKey): Promise<CryptoKey> {
  const spec = SPECS[k.alg];
  return crypto.subtle.importKey(
    "jwk",
    pick(k.privateJwk, spec.privateMembers),
    spec.params,
    false,
    ["sign"],
  );
}

async function generate(
  alg: SigningAlg,
  createdAt: Date,
): Promise<{ stored: StoredSigningKey; publicKey: CryptoKey }> {
  const spec = SPECS[alg];
  const pair = await crypto.subtle.generateKey(spec.generate, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const privateJwk = pick(
    await crypto.subtle.exportKey("jwk", pair.privateKey),
    spec.privateMembers,
  );
  const publicJwk = pick(privateJwk, spec.publicMembers);
  const kid = await calculateJwkThumbprint(
    publicJwk as Parameters<typeof calculateJwkThumbprint>[0],
    "sha256",
  );
  const stored: StoredSigningKey = { kid, alg, privateJwk, publicJwk, createdAt, retiredAt: null };
  return { stored, publicKey: await importPublic(stored) };
}
