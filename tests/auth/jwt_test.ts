/**
 * @module Tests of `auth/jwt.ts`: issuing and verifying access tokens, and each way a token must
 * be refused (invalid_token, with a specific reason): expired, not yet valid, wrong issuer or
 * audience, unknown or missing kid, `alg: none`, HS256 keyed with the service's public key, RS256,
 * another key, a tampered payload, garbage, a retired key past its grace, a wrong `typ`, missing
 * or ill-typed claims. Also: a second ring on the same repo (another replica) verifies, before and
 * after a rotation.
 */
import assert from "node:assert/strict";
import {
  base64url,
  CompactSign,
  decodeProtectedHeader,
  generateKeyPair,
  type JWTPayload,
  SignJWT,
} from "jose";
import { TokenError } from "../../auth/errors.ts";
import {
  type AccessClaims,
  type AccessClaimsInput,
  issueAccessToken,
  verifyAccessToken,
} from "../../auth/jwt.ts";
import { createKeyRing, type KeyRing, memorySigningKeyRepo } from "../../auth/keys.ts";

const ISSUER = "https://imaging.example.org/auth";
const AUDIENCE = "https://imaging.example.org/fhir";
const HOUR = 3600;

const USER: AccessClaimsInput = {
  sub: "user-1",
  scope: "user/*.rs openid fhirUser",
  kind: "user",
  role: "clinician",
  name: "Dr. Ada Example",
  fhirUser: "Practitioner/ada",
};

function setup() {
  let t = Date.UTC(2026, 2, 1, 12);
  const now = () => t;
  const repo = memorySigningKeyRepo();
  const ring = createKeyRing(repo, { now });
  return {
    repo,
    ring,
    now,
    advance: (seconds: number) => void (t += seconds * 1000),
    issue: (claims: AccessClaimsInput = USER, ttlSeconds = HOUR) =>
      issueAccessToken(ring, claims, { issuer: ISSUER, audience: AUDIENCE, ttlSeconds, now }),
    verify: (token: string, r: KeyRing = ring, extra: { clockToleranceSeconds?: number } = {}) =>
      verifyAccessToken(r, token, { issuer: ISSUER, audience: AUDIENCE, now, ...extra }),
  };
}

/** Asserts that `p` rejects with TokenError invalid_token whose message matches `reason`. */
async function refused(p: Promise<unknown>, reason: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof TokenError, `a TokenError, got ${e}`);
    assert.equal(e.code, "invalid_token");
    assert.equal(e.status, 401);
    assert.match(e.message, reason);
    return true;
  });
}

/** A valid payload for `now` (the claims issueAccessToken would write). */
function payloadAt(nowMs: number, extra: Record<string, unknown> = {}): JWTPayload {
  const iat = Math.floor(nowMs / 1000);
  return {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: "user-1",
    scope: "user/*.rs",
    kind: "user",
    jti: crypto.randomUUID(),
    iat,
    exp: iat + HOUR,
    ...extra,
  };
}

/** Signs `payload` with the ring's own key, with header members overridden. */
async function forge(
  ring: KeyRing,
  payload: JWTPayload,
  header: Record<string, unknown> = {},
): Promise<string> {
  const { kid, key } = await ring.signingKey();
  return await new SignJWT(payload)
    .setProtectedHeader({ alg: "ES256", kid, typ: "at+jwt", ...header })
    .sign(key);
}

function b64json(value: unknown): string {
  return base64url.encode(JSON.stringify(value));
}

Deno.test("issueAccessToken() signs an ES256 at+jwt that verifyAccessToken() accepts", async () => {
  const s = setup();
  const { token, claims } = await s.issue();
  const header = decodeProtectedHeader(token);
  const { kid } = await s.ring.signingKey();
  assert.deepEqual(header, { alg: "ES256", kid, typ: "at+jwt" });
  const nowS = Math.floor(s.now() / 1000);
  const expected: Omit<AccessClaims, "jti"> = {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: "user-1",
    scope: "user/*.rs openid fhirUser",
    iat: nowS,
    nbf: nowS,
    exp: nowS + HOUR,
    kind: "user",
    role: "clinician",
    name: "Dr. Ada Example",
    fhirUser: "Practitioner/ada",
  };
  const { jti, ...rest } = claims;
  assert.deepEqual(rest, expected);
  assert.match(jti, /^[0-9a-f-]{36}$/);
  assert.deepEqual(await s.verify(token), claims);
  const second = await s.issue();
  assert.notEqual(second.claims.jti, jti, "a fresh jti per token");
});

Deno.test("a client token carries client_id and patient, and no user-only claims", async () => {
  const s = setup();
  const { token } = await s.issue({
    sub: "worker",
    scope: "system/Task.rus",
    kind: "client",
    client_id: "worker",
    patient: "p-7",
  });
  const claims = await s.verify(token);
  assert.equal(claims.kind, "client");
  assert.equal(claims.client_id, "worker");
  assert.equal(claims.patient, "p-7");
  assert.equal("role" in claims, false);
  assert.equal("name" in claims, false);
  assert.equal("fhirUser" in claims, false);
});

Deno.test("issueAccessToken() refuses a non-positive ttl and an empty sub", async () => {
  const s = setup();
  await assert.rejects(() => s.issue(USER, 0), RangeError);
  await assert.rejects(() => s.issue(USER, -5), RangeError);
  await assert.rejects(() => s.issue({ ...USER, sub: "" }), TypeError);
});

Deno.test("refused: expired (past exp beyond the clock tolerance)", async () => {
  const s = setup();
  const { token } = await s.issue(USER, 60);
  s.advance(60 + 29);
  await s.verify(token); // within the default 30 s tolerance
  s.advance(1);
  await refused(s.verify(token), /^token expired$/);
  const fresh = await s.issue(USER, 60);
  s.advance(60);
  await refused(s.verify(fresh.token, s.ring, { clockToleranceSeconds: 0 }), /expired/);
});

Deno.test("refused: not yet valid (nbf in the future beyond the tolerance)", async () => {
  const s = setup();
  const nowS = Math.floor(s.now() / 1000);
  const soon = await forge(s.ring, payloadAt(s.now(), { nbf: nowS + 20 }));
  await s.verify(soon); // within 30 s
  const later = await forge(s.ring, payloadAt(s.now(), { nbf: nowS + 120 }));
  await refused(s.verify(later), /not yet valid/);
  s.advance(120);
  await s.verify(later);
});

Deno.test("refused: wrong issuer, wrong audience", async () => {
  const s = setup();
  const { token } = await s.issue();
  const now = s.now;
  await refused(
    verifyAccessToken(s.ring, token, { issuer: "https://evil.example", audience: AUDIENCE, now }),
    /^wrong issuer$/,
  );
  await refused(
    verifyAccessToken(s.ring, token, { issuer: ISSUER, audience: "https://other/fhir", now }),
    /^wrong audience$/,
  );
  const otherAud = await forge(s.ring, payloadAt(s.now(), { aud: "https://other/fhir" }));
  await refused(s.verify(otherAud), /wrong audience/);
  const noIss = payloadAt(s.now());
  delete noIss.iss;
  await refused(s.verify(await forge(s.ring, noIss)), /missing required claim iss/);
});

Deno.test("refused: unknown kid, and no kid", async () => {
  const s = setup();
  const unknown = await forge(s.ring, payloadAt(s.now()), { kid: "not-a-kid-of-ours" });
  await refused(s.verify(unknown), /unknown signing key \(kid not-a-kid-of-ours\)/);
  const { key } = await s.ring.signingKey();
  const noKid = await new SignJWT(payloadAt(s.now()))
    .setProtectedHeader({ alg: "ES256", typ: "at+jwt" })
    .sign(key);
  await refused(s.verify(noKid), /^token has no kid$/);
  const emptyKid = await forge(s.ring, payloadAt(s.now()), { kid: "" });
  await refused(s.verify(emptyKid), /^token has no kid$/);
});

Deno.test("refused: alg none (unsigned token)", async () => {
  const s = setup();
  const { kid } = await s.ring.signingKey();
  const payload = b64json(payloadAt(s.now()));
  for (const alg of ["none", "None", "NONE"]) {
    const header = b64json({ alg, kid, typ: "at+jwt" });
    const reason = alg === "none" ? /unsigned token \(alg none\)/ : /unsupported alg/;
    await refused(s.verify(`${header}.${payload}.`), reason);
    await refused(s.verify(`${header}.${payload}.c2ln`), reason);
  }
  await refused(s.verify(`${b64json({ kid, typ: "at+jwt" })}.${payload}.`), /alg none/);
});

Deno.test("refused: HS256 keyed with the service's public JWK (JSON or raw bytes)", async () => {
  const s = setup();
  const { kid } = await s.ring.signingKey();
  const [jwk] = (await s.ring.jwks()).keys;
  const publicKey = await crypto.subtle.importKey(
    "jwk",
    jwk,
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["verify"],
  );
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", publicKey));
  assert.equal(raw.length, 65);
  const secrets = [
    new TextEncoder().encode(JSON.stringify(jwk)),
    new TextEncoder().encode(JSON.stringify({ keys: [jwk] })),
    raw,
  ];
  for (const secret of secrets) {
    for (const alg of ["HS256", "HS384", "HS512"]) {
      const token = await new SignJWT(payloadAt(s.now()))
        .setProtectedHeader({ alg, kid, typ: "at+jwt" })
        .sign(secret);
      await refused(s.verify(token), new RegExp(`unsupported alg ${alg}: only ES256`));
    }
  }
});

Deno.test("refused: RS256 or ES256 signed with some other key", async () => {
  const s = setup();
  const { kid } = await s.ring.signingKey();
  const rsa = await generateKeyPair("RS256");
  const rs256 = await new SignJWT(payloadAt(s.now()))
    .setProtectedHeader({ alg: "RS256", kid, typ: "at+jwt" })
    .sign(rsa.privateKey);
  await refused(s.verify(rs256), /unsupported alg RS256/);
  const ec = await generateKeyPair("ES256");
  const es256 = await new SignJWT(payloadAt(s.now()))
    .setProtectedHeader({ alg: "ES256", kid, typ: "at+jwt" })
    .sign(ec.privateKey);
  await refused(s.verify(es256), /signature verification failed/);
  const es384 = await generateKeyPair("ES384");
  const wrongCurve = await new SignJWT(payloadAt(s.now()))
    .setProtectedHeader({ alg: "ES384", kid, typ: "at+jwt" })
    .sign(es384.privateKey);
  await refused(s.verify(wrongCurve), /unsupported alg ES384/);
});

Deno.test("refused: a tampered payload (scope widened, signature kept)", async () => {
  const s = setup();
  const { token } = await s.issue({ ...USER, scope: "user/Patient.rs" });
  const [h, p, sig] = token.split(".");
  const claims = JSON.parse(new TextDecoder().decode(base64url.decode(p)));
  claims.scope = "system/*.cruds";
  const tampered = `${h}.${b64json(claims)}.${sig}`;
  await refused(s.verify(tampered), /signature verification failed/);
  const flipped = `${h}.${p}.${sig.slice(0, -2)}${sig.endsWith("AA") ? "AB" : "AA"}`;
  await refused(s.verify(flipped), /signature verification failed/);
  // The header is covered too: swapping typ breaks the signature.
  const header = b64json({ ...decodeProtectedHeader(token), extra: 1 });
  await refused(s.verify(`${header}.${p}.${sig}`), /signature verification failed/);
  await s.verify(token); // the original is fine
});

Deno.test("refused: garbage, not three parts, non-JSON parts", async () => {
  const s = setup();
  const { token } = await s.issue();
  const [h, p, sig] = token.split(".");
  const garbage = [
    "",
    "abc",
    "a.b",
    "a.b.c.d",
    `${token}.x.y`, // five parts, JWE-shaped
    "!!!.???.***",
    `${h}.${p}.${sig} `,
    `Bearer ${token}`,
    "x".repeat(20_000),
  ];
  for (const t of garbage) await refused(s.verify(t), /^malformed token/);
  await refused(s.verify(`bm90IGpzb24.${p}.${sig}`), /malformed token: the header/);
  await refused(s.verify(`${b64json([1, 2])}.${p}.${sig}`), /malformed token/);
  // A valid signature over claims that are not a JSON object.
  const { kid, key } = await s.ring.signingKey();
  const notJson = await new CompactSign(new TextEncoder().encode("not json"))
    .setProtectedHeader({ alg: "ES256", kid, typ: "at+jwt" })
    .sign(key);
  await refused(s.verify(notJson), /malformed token/);
});

Deno.test("refused: a typ other than at+jwt (RFC 9068); application/at+jwt accepted", async () => {
  const s = setup();
  await refused(s.verify(await forge(s.ring, payloadAt(s.now()), { typ: "JWT" })), /typ/);
  await refused(s.verify(await forge(s.ring, payloadAt(s.now()), { typ: undefined })), /typ/);
  await s.verify(await forge(s.ring, payloadAt(s.now()), { typ: "application/at+jwt" }));
});

Deno.test("refused: missing required claims", async () => {
  const s = setup();
  for (const claim of ["sub", "scope", "kind", "jti", "iat", "exp"]) {
    const payload = payloadAt(s.now());
    delete payload[claim];
    await refused(
      s.verify(await forge(s.ring, payload)),
      new RegExp(`^missing required claim ${claim}$`),
    );
  }
});

Deno.test("refused: ill-typed claims", async () => {
  const s = setup();
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ kind: "admin" }, /invalid claim kind/],
    [{ kind: null }, /invalid claim kind/],
    [{ scope: 42 }, /invalid claim scope/],
    [{ sub: "" }, /invalid claim sub/],
    [{ sub: 7 }, /invalid claim sub/],
    [{ jti: 1 }, /invalid claim jti/],
    [{ role: "root" }, /invalid claim role/],
    [{ patient: 12 }, /invalid claim patient/],
    [{ exp: "tomorrow" }, /invalid claim exp|malformed/],
  ];
  for (const [extra, reason] of cases) {
    await refused(s.verify(await forge(s.ring, payloadAt(s.now(), extra))), reason);
  }
  // An empty scope is allowed: a token that grants nothing.
  assert.equal((await s.verify(await forge(s.ring, payloadAt(s.now(), { scope: "" })))).scope, "");
});

Deno.test("a retired key verifies within the grace period and is refused past it", async () => {
  const s = setup();
  const { token } = await s.issue(USER, 3 * 24 * HOUR); // outlives the grace on purpose
  s.advance(60);
  await s.ring.rotate();
  const fresh = await s.issue(USER, 3 * 24 * HOUR);
  assert.notEqual(decodeProtectedHeader(fresh.token).kid, decodeProtectedHeader(token).kid);
  s.advance(23 * HOUR);
  await s.verify(token);
  s.advance(HOUR);
  await refused(s.verify(token), /unknown signing key .*retired/);
  await s.verify(fresh.token);
});

Deno.test("another replica (a ring on the same repo) verifies, also after a rotation", async () => {
  const s = setup();
  const replica = createKeyRing(s.repo, { now: s.now });
  const first = await s.issue();
  assert.equal((await s.verify(first.token, replica)).sub, "user-1");
  s.advance(10);
  await s.ring.rotate();
  const second = await s.issue();
  await s.verify(second.token, replica); // an unknown kid: the replica reloads
  await s.verify(first.token, replica); // the retired key, within its grace
  // And the other way round: a token signed by the replica verifies on the first ring.
  s.advance(120);
  const fromReplica = await issueAccessToken(replica, USER, {
    issuer: ISSUER,
    audience: AUDIENCE,
    ttlSeconds: 60,
    now: s.now,
  });
  assert.equal(
    decodeProtectedHeader(fromReplica.token).kid,
    decodeProtectedHeader(second.token).kid,
  );
  await s.verify(fromReplica.token);
});

Deno.test("a failing key repo is not reported as a bad token", async () => {
  const s = setup();
  const { token } = await s.issue();
  const broken = createKeyRing({
    list: () => Promise.reject(new Error("database down")),
    insert: () => Promise.reject(new Error("database down")),
    retire: () => Promise.reject(new Error("database down")),
  });
  await assert.rejects(s.verify(token, broken), (e: unknown) => {
    assert.ok(!(e instanceof TokenError));
    assert.match(String(e), /database down/);
    return true;
  });
});
