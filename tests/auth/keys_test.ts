/**
 * @module Tests of `auth/keys.ts`: the in-memory repo, key creation on first use (one key even for
 * concurrent callers, kid = RFC 7638 thumbprint), rotation with the retired-key grace period, the
 * public-only JWKS, reloads for unknown kids (throttled) and two replicas sharing a repo.
 */
import assert from "node:assert/strict";
import { calculateJwkThumbprint, type JWK } from "jose";
import {
  createKeyRing,
  type KeyRing,
  memorySigningKeyRepo,
  type SigningKeyRepo,
  type StoredSigningKey,
} from "../../auth/keys.ts";

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

/** A clock the test moves. */
function clock(start = Date.UTC(2026, 0, 1)) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

/** A repo that counts `list()` calls. */
function countingRepo(inner: SigningKeyRepo = memorySigningKeyRepo()) {
  const counts = { list: 0 };
  const repo: SigningKeyRepo = {
    list: () => (counts.list++, inner.list()),
    insert: (k) => inner.insert(k),
    retire: (kid, at) => inner.retire(kid, at),
  };
  return { repo, counts };
}

async function signAndVerify(signer: KeyRing, verifier: KeyRing): Promise<boolean> {
  const { kid, key } = await signer.signingKey();
  const data = new TextEncoder().encode("payload");
  const params = { name: "ECDSA", hash: "SHA-256" };
  const sig = await crypto.subtle.sign(params, key, data);
  const pub = await verifier.verificationKey(kid);
  return pub !== undefined && await crypto.subtle.verify(params, pub, sig, data);
}

Deno.test("memorySigningKeyRepo() copies rows, ignores a duplicate kid, retires once", async () => {
  const repo = memorySigningKeyRepo();
  const k: StoredSigningKey = {
    kid: "k1",
    alg: "ES256",
    privateJwk: { kty: "EC" },
    publicJwk: { kty: "EC" },
    createdAt: new Date(1000),
    retiredAt: null,
  };
  await repo.insert(k);
  k.kid = "changed";
  const [listed] = await repo.list();
  assert.equal(listed.kid, "k1");
  listed.retiredAt = new Date(5);
  assert.equal((await repo.list())[0].retiredAt, null);
  await repo.insert({ ...listed, kid: "k1", createdAt: new Date(9999) });
  assert.equal((await repo.list()).length, 1);
  assert.equal((await repo.list())[0].createdAt.getTime(), 1000);
  await repo.retire("k1", new Date(2000));
  await repo.retire("k1", new Date(3000));
  await repo.retire("unknown", new Date(3000));
  assert.equal((await repo.list())[0].retiredAt?.getTime(), 2000);
});

Deno.test("signingKey() creates one ES256 key on first use, kid its RFC 7638 hash", async () => {
  const repo = memorySigningKeyRepo();
  const c = clock();
  const ring = createKeyRing(repo, { now: c.now });
  const [a, b, d] = await Promise.all([ring.signingKey(), ring.signingKey(), ring.signingKey()]);
  assert.equal(a.kid, b.kid);
  assert.equal(a.kid, d.kid);
  assert.equal(a.alg, "ES256");
  assert.equal(a.key.type, "private");
  assert.equal(a.key.extractable, false, "the private key cannot be exported from the ring");
  const rows = await repo.list();
  assert.equal(rows.length, 1, "concurrent first calls create a single key");
  const [row] = rows;
  assert.equal(row.kid, a.kid);
  assert.equal(row.alg, "ES256");
  assert.equal(row.createdAt.getTime(), c.now());
  assert.equal(row.retiredAt, null);
  assert.equal(row.publicJwk.crv, "P-256");
  assert.equal(row.publicJwk.d, undefined);
  assert.ok(row.privateJwk.d);
  assert.equal(await calculateJwkThumbprint(row.publicJwk as JWK, "sha256"), row.kid);
  assert.equal((await ring.signingKey()).kid, a.kid);
  assert.ok(await signAndVerify(ring, ring));
});

Deno.test("jwks() holds public members only, with kid, alg and use", async () => {
  const ring = createKeyRing(memorySigningKeyRepo());
  assert.deepEqual(await ring.jwks(), { keys: [] }, "no key until one is needed");
  const { kid } = await ring.signingKey();
  const { keys } = await ring.jwks();
  assert.equal(keys.length, 1);
  const jwk = keys[0] as JsonWebKey & { kid?: string };
  assert.deepEqual(Object.keys(jwk).sort(), ["alg", "crv", "kid", "kty", "use", "x", "y"]);
  assert.equal(jwk.kid, kid);
  assert.equal(jwk.alg, "ES256");
  assert.equal(jwk.use, "sig");
  assert.equal(jwk.d, undefined);
  assert.ok(!JSON.stringify(await ring.jwks()).includes('"d"'));
});

Deno.test("jwks() never leaks private members stored by mistake in publicJwk", async () => {
  const repo = memorySigningKeyRepo();
  const ring = createKeyRing(repo);
  await ring.signingKey();
  const [row] = await repo.list();
  // Another writer put the private JWK in both columns.
  const other = memorySigningKeyRepo();
  await other.insert({ ...row, publicJwk: row.privateJwk });
  const leaky = createKeyRing(other);
  const { keys } = await leaky.jwks();
  assert.equal(keys.length, 1);
  assert.equal(keys[0].d, undefined);
  assert.ok(!JSON.stringify(keys).includes(String(row.privateJwk.d)));
});

Deno.test("rotate() signs with a new key; the old one verifies for the grace only", async () => {
  const repo = memorySigningKeyRepo();
  const c = clock();
  const ring = createKeyRing(repo, { now: c.now });
  const old = await ring.signingKey();
  c.advance(HOUR);
  const kid = await ring.rotate();
  assert.notEqual(kid, old.kid);
  assert.equal((await ring.signingKey()).kid, kid);
  const rows = new Map((await repo.list()).map((k) => [k.kid, k]));
  assert.equal(rows.get(old.kid)?.retiredAt?.getTime(), c.now());
  assert.equal(rows.get(kid)?.retiredAt, null);
  assert.deepEqual((await ring.jwks()).keys.map((k) => (k as { kid?: string }).kid), [
    kid,
    old.kid,
  ]);

  c.advance(DAY - 1);
  assert.ok(await ring.verificationKey(old.kid), "within the 24 h grace");
  c.advance(1);
  assert.equal(await ring.verificationKey(old.kid), undefined, "at 24 h: refused");
  assert.ok(await ring.verificationKey(kid));
  assert.deepEqual((await ring.jwks()).keys.map((k) => (k as { kid?: string }).kid), [kid]);
});

Deno.test("retiredGraceMs is honoured", async () => {
  const c = clock();
  const ring = createKeyRing(memorySigningKeyRepo(), { now: c.now, retiredGraceMs: 1000 });
  const { kid } = await ring.signingKey();
  await ring.rotate();
  c.advance(999);
  assert.ok(await ring.verificationKey(kid));
  c.advance(1);
  assert.equal(await ring.verificationKey(kid), undefined);
});

Deno.test("an unknown kid reloads the repo at most once per reloadMinIntervalMs", async () => {
  const { repo, counts } = countingRepo();
  const c = clock();
  const ring = createKeyRing(repo, { now: c.now, refreshIntervalMs: DAY });
  await ring.signingKey();
  const base = counts.list;
  assert.equal(await ring.verificationKey("made-up-0"), undefined);
  assert.equal(counts.list, base + 1, "an unknown kid reloads");
  c.advance(4999);
  assert.equal(await ring.verificationKey("made-up-1"), undefined);
  assert.equal(counts.list, base + 1, "not again within 5 s");
  c.advance(1);
  assert.equal(await ring.verificationKey("made-up-1"), undefined);
  assert.equal(counts.list, base + 2, "5 s later: reloads again");
  for (let i = 0; i < 50; i++) assert.equal(await ring.verificationKey(`made-up-${i}`), undefined);
  assert.equal(counts.list, base + 2, "a flood of made-up kids: no further reload");
  c.advance(5000);
  await ring.verificationKey("made-up-x");
  assert.equal(counts.list, base + 3);
  c.advance(5000);
  assert.equal(await ring.verificationKey(""), undefined);
  assert.equal(counts.list, base + 3, "an empty kid is not looked up");
  assert.ok(await ring.verificationKey((await ring.signingKey()).kid));
  assert.equal(counts.list, base + 3, "a known kid needs no reload");
});

Deno.test("a key made by another replica is found by reloading", async () => {
  const repo = memorySigningKeyRepo();
  const c = clock();
  const a = createKeyRing(repo, { now: c.now });
  const b = createKeyRing(repo, { now: c.now });
  assert.deepEqual(await b.jwks(), { keys: [] }); // b has loaded: an empty repo
  assert.ok(await signAndVerify(a, b), "b had never loaded a's kid: reloaded");
  c.advance(1000);
  await a.rotate();
  assert.equal(await signAndVerify(a, b), false, "throttled: the reload was 1 s ago");
  c.advance(5000);
  assert.ok(await signAndVerify(a, b), "found after the throttle interval");
});

Deno.test("a replica picks up another's rotation at the next refresh", async () => {
  const repo = memorySigningKeyRepo();
  const c = clock();
  const a = createKeyRing(repo, { now: c.now });
  const b = createKeyRing(repo, { now: c.now, refreshIntervalMs: 60_000 });
  const first = await a.signingKey();
  assert.equal((await b.signingKey()).kid, first.kid, "b uses a's key, creating none");
  assert.equal((await repo.list()).length, 1);
  c.advance(1000);
  const second = await a.rotate();
  assert.equal((await b.signingKey()).kid, first.kid, "b's cache is fresh for 60 s");
  c.advance(60_000);
  assert.equal((await b.signingKey()).kid, second, "refreshed");
  // b now knows the first key is retired, and drops it after the grace.
  c.advance(DAY);
  assert.equal(await b.verificationKey(first.kid), undefined);
});

Deno.test("replicas starting together may each make a key: both verify, newest signs", async () => {
  const repo = memorySigningKeyRepo();
  const c = clock();
  // The replicas' list() calls meet in pairs: each reads the repo, then waits for the other's
  // read, so both see it empty before either inserts (a real race, made deterministic).
  let listed = 0;
  let waiting: (() => void) | undefined;
  const racy: SigningKeyRepo = {
    async list() {
      const rows = await repo.list();
      if (++listed <= 4) {
        if (waiting) {
          waiting();
          waiting = undefined;
        } else {
          await new Promise<void>((r) => waiting = r);
        }
      }
      return rows;
    },
    insert: (k) => repo.insert(k),
    retire: (kid, at) => repo.retire(kid, at),
  };
  const a = createKeyRing(racy, { now: c.now });
  const b = createKeyRing(racy, { now: c.now });
  const [ka, kb] = await Promise.all([a.signingKey(), b.signingKey()]);
  assert.notEqual(ka.kid, kb.kid);
  assert.equal((await repo.list()).length, 2);
  assert.ok(await signAndVerify(a, b));
  assert.ok(await signAndVerify(b, a));
  c.advance(60_000);
  const [sa, sb] = await Promise.all([a.signingKey(), b.signingKey()]);
  assert.equal(sa.kid, sb.kid, "after a refresh both sign with the same (newest) key");
  assert.equal(sa.kid, [ka.kid, kb.kid].sort()[1], "same createdAt: the larger kid wins");
  assert.equal((await a.jwks()).keys.length, 2);
});

Deno.test("rows that are not ES256 P-256 keys are ignored", async () => {
  const repo = memorySigningKeyRepo();
  await repo.insert({
    kid: "bogus",
    alg: "ES256",
    privateJwk: { kty: "RSA", n: "AQAB", e: "AQAB" },
    publicJwk: { kty: "RSA", n: "AQAB", e: "AQAB" },
    createdAt: new Date(Date.UTC(2030, 0, 1)),
    retiredAt: null,
  });
  const ring = createKeyRing(repo);
  assert.equal(await ring.verificationKey("bogus"), undefined);
  const { kid } = await ring.signingKey();
  assert.notEqual(kid, "bogus");
  assert.deepEqual((await ring.jwks()).keys.map((k) => (k as { kid?: string }).kid), [kid]);
});

Deno.test("repo failures: the first load throws; a failed refresh keeps the cache", async () => {
  const inner = memorySigningKeyRepo();
  let failing = true;
  const repo: SigningKeyRepo = {
    list: () => failing ? Promise.reject(new Error("database down")) : inner.list(),
    insert: (k) => inner.insert(k),
    retire: (kid, at) => inner.retire(kid, at),
  };
  const c = clock();
  const ring = createKeyRing(repo, { now: c.now });
  await assert.rejects(() => ring.signingKey(), /database down/);
  failing = false;
  const { kid } = await ring.signingKey();
  failing = true;
  c.advance(10 * 60_000);
  assert.equal((await ring.signingKey()).kid, kid, "stale but usable");
  assert.ok(await ring.verificationKey(kid));
  assert.equal((await ring.jwks()).keys.length, 1);
  await assert.rejects(() => ring.verificationKey("another"), /database down/);
});

Deno.test("an RS256 ring (ID tokens) beside the ES256 one: its own keys, rotation and JWKS", async () => {
  const repo = memorySigningKeyRepo();
  const c = clock();
  const es = createKeyRing(repo, { now: c.now });
  const rs = createKeyRing(repo, { now: c.now, alg: "RS256" });
  const esKey = await es.signingKey();
  const rsKey = await rs.signingKey();
  assert.equal(esKey.alg, "ES256");
  assert.equal(rsKey.alg, "RS256");
  // Each ring knows only its own algorithm's keys.
  assert.equal(await rs.verificationKey(esKey.kid), undefined);
  assert.equal(await es.verificationKey(rsKey.kid), undefined);
  const data = new TextEncoder().encode("id token");
  const params = { name: "RSASSA-PKCS1-v1_5" };
  const sig = await crypto.subtle.sign(params, rsKey.key, data);
  const pub = (await rs.verificationKey(rsKey.kid))!;
  assert.ok(await crypto.subtle.verify(params, pub, sig, data));
  // Its JWKS entry: an RSA public key (n, e; no private member), kid its RFC 7638 thumbprint.
  const [jwk] = (await rs.jwks()).keys as (JsonWebKey & { kid: string })[];
  assert.equal(jwk.kty, "RSA");
  assert.equal(jwk.alg, "RS256");
  assert.ok(jwk.n && jwk.e && jwk.d === undefined && jwk.p === undefined);
  assert.equal(jwk.kid, await calculateJwkThumbprint({ kty: "RSA", n: jwk.n, e: jwk.e } as JWK));
  // Rotating one ring leaves the other's key signing.
  c.advance(1000);
  await rs.rotate();
  assert.equal((await es.signingKey()).kid, esKey.kid);
  assert.notEqual((await rs.signingKey()).kid, rsKey.kid);
});
