/**
 * @module Tests of `auth/client_assertion.ts` (SMART Backend Services, private_key_jwt): success
 * with RS384 and ES384 keys, inline and `jwks_uri` JWKS (fetched with a fake fetcher, cached,
 * refetched for a new kid), and each refusal: alg none, HS256, RS256, a key outside the client's
 * JWKS, a tampered payload, unknown or disabled client, iss ≠ sub, wrong aud, exp missing, passed
 * or too far ahead, jti missing or replayed, garbage and a missing kid. Also `memoryJtiStore`.
 */
import assert from "node:assert/strict";
import { base64url, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";
import {
  type ClientAssertionOptions,
  memoryJtiStore,
  type RegisteredClient,
  verifyClientAssertion,
} from "../../auth/client_assertion.ts";
import { OAuthError } from "../../auth/errors.ts";

const TOKEN_URL = "https://imaging.example.org/auth/token";
const T0 = Date.UTC(2026, 2, 1, 12);

interface TestKey {
  alg: "RS384" | "ES384";
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function makeKey(alg: TestKey["alg"] | "RS256" | "ES256", kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...await exportJWK(publicKey), kid, alg };
  return { alg: alg as TestKey["alg"], kid, privateKey, publicJwk };
}

const rsa = await makeKey("RS384", "rsa-1");
const ec = await makeKey("ES384", "ec-1");
const stranger = await makeKey("ES384", "stranger");

const clients: RegisteredClient[] = [
  {
    clientId: "worker",
    name: "Analysis worker",
    jwks: { keys: [rsa.publicJwk, ec.publicJwk] },
    scope: "system/*.rs",
  },
  { clientId: "off", jwks: { keys: [ec.publicJwk] }, scope: "system/*.rs", disabled: true },
  { clientId: "remote", jwksUri: "https://client.example/jwks.json", scope: "system/*.rs" },
];

function setup(extra: Partial<ClientAssertionOptions> = {}) {
  let t = T0;
  const now = () => t;
  const options: ClientAssertionOptions = {
    findClient: (id) => Promise.resolve(clients.find((c) => c.clientId === id)),
    tokenUrl: TOKEN_URL,
    jti: memoryJtiStore(now),
    now,
    ...extra,
  };
  return {
    now,
    advance: (seconds: number) => void (t += seconds * 1000),
    options,
    verify: (assertion: string) => verifyClientAssertion(assertion, options),
  };
}

function claims(nowMs: number, extra: JWTPayload = {}, clientId = "worker"): JWTPayload {
  return {
    iss: clientId,
    sub: clientId,
    aud: TOKEN_URL,
    exp: Math.floor(nowMs / 1000) + 240,
    jti: crypto.randomUUID(),
    ...extra,
  };
}

async function sign(
  key: TestKey,
  payload: JWTPayload,
  header: Record<string, unknown> = {},
): Promise<string> {
  return await new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "JWT", ...header })
    .sign(key.privateKey);
}

/** Asserts an OAuthError invalid_client with this status and a description matching `why`. */
async function refused(p: Promise<unknown>, status: 400 | 401, why: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof OAuthError, `an OAuthError, got ${e}`);
    assert.equal(e.error, "invalid_client");
    assert.equal(e.status, status, e.description);
    assert.match(e.description, why);
    return true;
  });
}

Deno.test("an RS384 assertion authenticates its client", async () => {
  const s = setup();
  const client = await s.verify(await sign(rsa, claims(s.now())));
  assert.equal(client.clientId, "worker");
  assert.equal(client.name, "Analysis worker");
});

Deno.test("an ES384 assertion authenticates its client; aud may be an array", async () => {
  const s = setup();
  assert.equal((await s.verify(await sign(ec, claims(s.now())))).clientId, "worker");
  const arrayAud = claims(s.now(), { aud: ["https://elsewhere", TOKEN_URL] });
  assert.equal((await s.verify(await sign(ec, arrayAud))).clientId, "worker");
});

Deno.test("a jwks_uri client: fetched once, cached, refetched for a new kid", async () => {
  const published = { keys: [ec.publicJwk] };
  const fetched: string[] = [];
  const fetchJwks = (uri: string) => {
    fetched.push(uri);
    return Promise.resolve(structuredClone(published));
  };
  const s = setup({ fetchJwks });
  assert.equal((await s.verify(await sign(ec, claims(s.now(), {}, "remote")))).clientId, "remote");
  await s.verify(await sign(ec, claims(s.now(), {}, "remote")));
  assert.deepEqual(fetched, ["https://client.example/jwks.json"], "cached");

  // The client rotates to a new key: a kid not in the cached set is refetched, though not
  // within 30 s of the last fetch.
  const next = await makeKey("RS384", "rsa-2");
  published.keys.push(next.publicJwk);
  await refused(s.verify(await sign(next, claims(s.now(), {}, "remote"))), 401, /no key with kid/);
  assert.equal(fetched.length, 1);
  s.advance(30);
  assert.equal(
    (await s.verify(await sign(next, claims(s.now(), {}, "remote")))).clientId,
    "remote",
  );
  assert.equal(fetched.length, 2);

  // And the set is fetched again once five minutes old.
  s.advance(5 * 60);
  await s.verify(await sign(ec, claims(s.now(), {}, "remote")));
  assert.equal(fetched.length, 3);
});

Deno.test("a jwks_uri that cannot be fetched, or is not a JWKS, refuses the client", async () => {
  let answer: () => Promise<{ keys: JsonWebKey[] }> = () => Promise.reject(new Error("timeout"));
  const s = setup({ fetchJwks: () => answer() });
  await refused(s.verify(await sign(ec, claims(s.now(), {}, "remote"))), 401, /fetched.*timeout/);
  answer = () => Promise.resolve({ nope: true } as unknown as { keys: JsonWebKey[] });
  await refused(s.verify(await sign(ec, claims(s.now(), {}, "remote"))), 401, /not a JWKS/);
  answer = () => Promise.resolve({ keys: [ec.publicJwk] });
  assert.equal((await s.verify(await sign(ec, claims(s.now(), {}, "remote")))).clientId, "remote");
});

Deno.test("refused: alg none", async () => {
  const s = setup();
  const payload = base64url.encode(JSON.stringify(claims(s.now())));
  const header = base64url.encode(JSON.stringify({ alg: "none", kid: rsa.kid }));
  await refused(s.verify(`${header}.${payload}.`), 401, /alg none/);
});

Deno.test("refused: HS256 (keyed with the client's public JWK), RS256, ES256", async () => {
  const s = setup();
  const secret = new TextEncoder().encode(JSON.stringify(rsa.publicJwk));
  const hs = await new SignJWT(claims(s.now()))
    .setProtectedHeader({ alg: "HS256", kid: rsa.kid })
    .sign(secret);
  await refused(s.verify(hs), 401, /alg HS256 is not allowed: use RS384 or ES384/);
  const rs256 = await makeKey("RS256", rsa.kid);
  await refused(s.verify(await sign(rs256, claims(s.now()))), 401, /alg RS256 is not allowed/);
  const es256 = await makeKey("ES256", ec.kid);
  await refused(s.verify(await sign(es256, claims(s.now()))), 401, /alg ES256 is not allowed/);
});

Deno.test("refused: a key not in the client's JWKS, or not fit for the alg", async () => {
  const s = setup();
  await refused(s.verify(await sign(stranger, claims(s.now()))), 401, /no key with kid stranger/);
  // Another key claiming a registered kid: the signature does not verify.
  const impostor = { ...stranger, kid: ec.kid };
  await refused(s.verify(await sign(impostor, claims(s.now()))), 401, /signature verification/);
  // The RSA kid named in an ES384 header.
  await refused(
    s.verify(await sign(ec, claims(s.now()), { kid: rsa.kid })),
    401,
    /key rsa-1 is not a key for ES384/,
  );
  // A registered JWK restricted to encryption does not verify signatures.
  const encOnly = setup({
    findClient: () =>
      Promise.resolve({
        clientId: "worker",
        jwks: { keys: [{ ...ec.publicJwk, use: "enc" }] },
        scope: "",
      }),
  });
  await refused(encOnly.verify(await sign(ec, claims(s.now()))), 401, /not a key for ES384/);
});

Deno.test("refused: a tampered payload", async () => {
  const s = setup();
  for (const key of [rsa, ec]) {
    const [h, , sig] = (await sign(key, claims(s.now()))).split(".");
    const forged = base64url.encode(JSON.stringify(claims(s.now(), { exp: 9_999_999_999 })));
    await refused(s.verify(`${h}.${forged}.${sig}`), 401, /signature verification failed/);
  }
});

Deno.test("refused: unknown client, disabled client, iss ≠ sub", async () => {
  const s = setup();
  await refused(
    s.verify(await sign(ec, claims(s.now(), {}, "nobody"))),
    401,
    /unknown client nobody/,
  );
  await refused(
    s.verify(await sign(ec, claims(s.now(), {}, "off"))),
    401,
    /client off is disabled/,
  );
  await refused(
    s.verify(await sign(ec, claims(s.now(), { sub: "someone-else" }))),
    401,
    /iss and sub must both be the client_id/,
  );
  const noIss = claims(s.now());
  delete noIss.iss;
  await refused(s.verify(await sign(ec, noIss)), 400, /no iss/);
  const noSub = claims(s.now());
  delete noSub.sub;
  await refused(s.verify(await sign(ec, noSub)), 400, /no sub/);
});

Deno.test("refused: aud that is not the token URL", async () => {
  const s = setup();
  for (const aud of ["https://imaging.example.org/auth/token/", "https://evil/token", ["x", "y"]]) {
    await refused(
      s.verify(await sign(ec, claims(s.now(), { aud }))),
      401,
      /aud must be the token URL/,
    );
  }
  const noAud = claims(s.now());
  delete noAud.aud;
  await refused(s.verify(await sign(ec, noAud)), 400, /no aud/);
});

Deno.test("refused: exp missing, passed, or more than 300 s ahead", async () => {
  const s = setup();
  const nowS = Math.floor(s.now() / 1000);
  const noExp = claims(s.now());
  delete noExp.exp;
  await refused(s.verify(await sign(ec, noExp)), 400, /no exp/);
  await refused(s.verify(await sign(ec, claims(s.now(), { exp: nowS }))), 401, /expired/);
  await refused(s.verify(await sign(ec, claims(s.now(), { exp: nowS - 60 }))), 401, /expired/);
  await refused(
    s.verify(await sign(ec, claims(s.now(), { exp: nowS + 301 }))),
    401,
    /exp is more than 300 s ahead/,
  );
  await s.verify(await sign(ec, claims(s.now(), { exp: nowS + 300 })));
  const strict = setup({ maxLifetimeSeconds: 60 });
  await refused(
    strict.verify(await sign(ec, claims(s.now(), { exp: nowS + 61 }))),
    401,
    /more than 60 s/,
  );
});

Deno.test("refused: jti missing, too long, or replayed", async () => {
  const s = setup();
  const noJti = claims(s.now());
  delete noJti.jti;
  await refused(s.verify(await sign(ec, noJti)), 400, /no jti/);
  await refused(s.verify(await sign(ec, claims(s.now(), { jti: "" }))), 400, /jti must be/);
  await refused(s.verify(await sign(ec, claims(s.now(), { jti: "j".repeat(257) }))), 400, /jti/);
  const once = await sign(ec, claims(s.now(), { jti: "abc" }));
  await s.verify(once);
  await refused(s.verify(once), 401, /jti was already used \(replay\)/);
  // The same jti in a fresh assertion is a replay too.
  await refused(s.verify(await sign(rsa, claims(s.now(), { jti: "abc" }))), 401, /replay/);
});

Deno.test("a refused assertion does not burn its jti", async () => {
  const s = setup();
  const bad = await sign(stranger, claims(s.now(), { jti: "kept" }), { kid: ec.kid });
  await refused(s.verify(bad), 401, /signature/);
  await s.verify(await sign(ec, claims(s.now(), { jti: "kept" })));
});

Deno.test("refused: garbage (400) and a header without kid (400)", async () => {
  const s = setup();
  const good = await sign(ec, claims(s.now()));
  const [h, p, sig] = good.split(".");
  for (const g of ["", "abc", "a.b", `${good}.x`, "!!.@@.##", `${h}..${sig}`, "x".repeat(20_000)]) {
    await refused(s.verify(g), 400, /client_assertion/);
  }
  await refused(s.verify(`bm90IGpzb24.${p}.${sig}`), 400, /not a JWT/);
  await refused(s.verify(`${h}.bm90IGpzb24.${sig}`), 400, /not a JWT/);
  const noKid = await new SignJWT(claims(s.now()))
    .setProtectedHeader({ alg: "ES384" })
    .sign(ec.privateKey);
  await refused(s.verify(noKid), 400, /no kid/);
});

Deno.test("memoryJtiStore() remembers per client until expiry", async () => {
  let t = T0;
  const store = memoryJtiStore(() => t);
  const exp = new Date(T0 + 60_000);
  assert.equal(await store.remember("a", "j1", exp), true);
  assert.equal(await store.remember("a", "j1", exp), false);
  assert.equal(await store.remember("b", "j1", exp), true, "per client");
  assert.equal(await store.remember("a\nj1", "", exp), true, "no key collisions");
  t += 59_999;
  assert.equal(await store.remember("a", "j1", exp), false);
  t += 1;
  assert.equal(await store.remember("a", "j1", new Date(t + 60_000)), true, "expired: forgotten");
  assert.equal(await store.remember("a", "j1", new Date(t + 60_000)), false);
});

Deno.test("OAuthError carries status, error, description and its JSON body", () => {
  const e = new OAuthError(401, "invalid_client", "unknown client x");
  assert.ok(e instanceof Error);
  assert.equal(e.name, "OAuthError");
  assert.equal(e.message, "invalid_client: unknown client x");
  assert.deepEqual(e.toJSON(), { error: "invalid_client", error_description: "unknown client x" });
});
