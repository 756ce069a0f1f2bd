/**
 * @module Tests of `auth/passwords.ts`: the stored format, verification of right and wrong
 * passwords, false (never a throw) for malformed stored values, the 1024-byte limit, `needsRehash`,
 * and the 600 000-iteration default (the one slow test; the others use 1000 iterations).
 */
import assert from "node:assert/strict";
import { base64url } from "jose";
import {
  hashPassword,
  MAX_PASSWORD_BYTES,
  needsRehash,
  PBKDF2_ITERATIONS,
  verifyPassword,
} from "../../auth/passwords.ts";

const FAST = 1000;

Deno.test("hashPassword() writes pbkdf2-sha256$n$salt$hash, a 16-byte salt", async () => {
  const stored = await hashPassword("correct horse battery staple", FAST);
  const m = /^pbkdf2-sha256\$1000\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(stored);
  assert.ok(m, stored);
  assert.equal(base64url.decode(m[1]).length, 16);
  assert.equal(base64url.decode(m[2]).length, 32);
  const again = await hashPassword("correct horse battery staple", FAST);
  assert.notEqual(again, stored, "a fresh salt each time");
});

Deno.test("hashPassword() matches an independent PBKDF2-SHA256 derivation", async () => {
  const stored = await hashPassword("pässwörd", FAST);
  const [, , salt64, hash64] = stored.split("$");
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode("pässwörd"),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const bits = await crypto.subtle.deriveBits(
    {
      name: "PBKDF2",
      hash: "SHA-256",
      salt: new Uint8Array(base64url.decode(salt64)),
      iterations: FAST,
    },
    key,
    256,
  );
  assert.equal(base64url.encode(new Uint8Array(bits)), hash64);
});

Deno.test("verifyPassword() accepts the password and refuses any other", async () => {
  const stored = await hashPassword("s3cret-Ünïcode-🔑", FAST);
  assert.equal(await verifyPassword("s3cret-Ünïcode-🔑", stored), true);
  assert.equal(await verifyPassword("s3cret-Ünïcode-🔑 ", stored), false);
  assert.equal(await verifyPassword("S3cret-Ünïcode-🔑", stored), false);
  assert.equal(await verifyPassword("", stored), false);
  const empty = await hashPassword("", FAST);
  assert.equal(await verifyPassword("", empty), true);
});

Deno.test("verifyPassword() is false for a tampered hash or salt", async () => {
  const stored = await hashPassword("pw", FAST);
  const [scheme, n, salt, hash] = stored.split("$");
  const flip = (s: string) => (s[0] === "A" ? "B" : "A") + s.slice(1);
  assert.equal(await verifyPassword("pw", [scheme, n, salt, flip(hash)].join("$")), false);
  assert.equal(await verifyPassword("pw", [scheme, n, flip(salt), hash].join("$")), false);
  assert.equal(await verifyPassword("pw", [scheme, "1001", salt, hash].join("$")), false);
});

Deno.test("verifyPassword() is false, not a throw, for malformed stored values", async () => {
  const good = await hashPassword("pw", FAST);
  const [, , salt, hash] = good.split("$");
  const bad = [
    "",
    "pw",
    "$$$",
    `pbkdf2-sha1$1000$${salt}$${hash}`,
    `bcrypt$1000$${salt}$${hash}`,
    `pbkdf2-sha256$$${salt}$${hash}`,
    `pbkdf2-sha256$0$${salt}$${hash}`,
    `pbkdf2-sha256$01000$${salt}$${hash}`,
    `pbkdf2-sha256$-5$${salt}$${hash}`,
    `pbkdf2-sha256$1e3$${salt}$${hash}`,
    `pbkdf2-sha256$99999999$${salt}$${hash}`, // above the 10 000 000 cap: never run
    `pbkdf2-sha256$1000$${salt}`,
    `pbkdf2-sha256$1000$${salt}$${hash}$extra`,
    `pbkdf2-sha256$1000$$${hash}`,
    `pbkdf2-sha256$1000$${salt}$`,
    `pbkdf2-sha256$1000$${salt}$not+base64/url=`,
    `pbkdf2-sha256$1000$AAAA$${hash}`, // a 3-byte salt
    `pbkdf2-sha256$1000$${salt}$AAAA`, // a 3-byte hash
    `pbkdf2-sha256$1000$${salt}$${hash}==`,
  ];
  for (const stored of bad) {
    assert.equal(await verifyPassword("pw", stored), false, stored);
  }
  // Not even a string (e.g. a NULL column read without care).
  assert.equal(await verifyPassword("pw", null as unknown as string), false);
});

Deno.test("passwords over 1024 UTF-8 bytes are refused before hashing", async () => {
  const max = "a".repeat(MAX_PASSWORD_BYTES);
  const stored = await hashPassword(max, FAST);
  assert.equal(await verifyPassword(max, stored), true);
  await assert.rejects(() => hashPassword(max + "a", FAST), RangeError);
  // 342 × "€" is 342 UTF-16 units but 1026 UTF-8 bytes.
  await assert.rejects(() => hashPassword("€".repeat(342), FAST), /too long/);
  // A huge login field costs no PBKDF2 work, even against a costly hash.
  const costly = `pbkdf2-sha256$5000000$${"A".repeat(22)}$${"A".repeat(43)}`;
  const t0 = performance.now();
  assert.equal(await verifyPassword("x".repeat(10_000_000), costly), false);
  assert.equal(await verifyPassword(max + "a", costly), false);
  assert.ok(performance.now() - t0 < 200, "refused without hashing");
});

Deno.test("hashPassword() refuses an iteration count that is not a positive integer", async () => {
  for (const n of [0, -1, 1.5, Number.NaN, 20_000_000]) {
    await assert.rejects(() => hashPassword("pw", n), RangeError, String(n));
  }
});

Deno.test("needsRehash() is true for fewer iterations or a malformed value only", async () => {
  const stored = await hashPassword("pw", FAST);
  assert.equal(needsRehash(stored, FAST), false);
  assert.equal(needsRehash(stored, FAST + 1), true);
  assert.equal(needsRehash(stored, 500), false, "never rehash down");
  assert.equal(needsRehash(stored), true, "1000 < the 600 000 default");
  assert.equal(needsRehash("garbage", FAST), true);
  assert.equal(
    needsRehash(`pbkdf2-sha256$600000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA`),
    true,
  );
});

Deno.test("the default is 600 000 iterations (timed)", async () => {
  assert.equal(PBKDF2_ITERATIONS, 600_000);
  const t0 = performance.now();
  const stored = await hashPassword("the default");
  const hashMs = performance.now() - t0;
  assert.match(stored, /^pbkdf2-sha256\$600000\$/);
  assert.equal(needsRehash(stored), false);
  const t1 = performance.now();
  assert.equal(await verifyPassword("the default", stored), true);
  const verifyMs = performance.now() - t1;
  console.log(
    `PBKDF2-SHA256 600000 iterations: hash ${hashMs.toFixed(0)} ms, ` +
      `verify ${verifyMs.toFixed(0)} ms`,
  );
});
