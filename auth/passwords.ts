/**
 * @module Password hashing with PBKDF2-HMAC-SHA256 (Web Crypto): a 16-byte random salt, a 32-byte
 * derived key, stored as `pbkdf2-sha256$<iterations>$<salt base64url>$<hash base64url>`. The
 * default of 600 000 iterations is OWASP's 2023 figure for PBKDF2-SHA256. Passwords longer than
 * 1024 UTF-8 bytes are refused before any hashing, so that a huge login field cannot cost CPU.
 * `verifyPassword` compares in constant time and answers false (never throws) for a malformed
 * stored value; `needsRehash` says when a stored hash is weaker than the current setting, for an
 * upgrade on the next successful login.
 */
import { base64url } from "jose";

/** The iteration count new hashes get by default. */
export const PBKDF2_ITERATIONS = 600_000;

/** The longest password accepted, in UTF-8 bytes. */
export const MAX_PASSWORD_BYTES = 1024;

/** A stored count above this is treated as corrupt rather than run (a guard against a hang). */
const MAX_ITERATIONS = 10_000_000;
const SCHEME = "pbkdf2-sha256";
const SALT_BYTES = 16;
const KEY_BYTES = 32;
const B64URL = /^[A-Za-z0-9_-]+$/;

/**
 * Hashes a password with a fresh random salt. Throws a RangeError for a password over
 * {@link MAX_PASSWORD_BYTES} or an iteration count that is not an integer in 1…10 000 000.
 */
export async function hashPassword(
  password: string,
  iterations: number = PBKDF2_ITERATIONS,
): Promise<string> {
  const bytes = passwordBytes(password);
  if (!bytes) {
    throw new RangeError(`password too long (more than ${MAX_PASSWORD_BYTES} UTF-8 bytes)`);
  }
  if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) {
    throw new RangeError(`PBKDF2 iterations must be an integer in 1…${MAX_ITERATIONS}`);
  }
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const hash = await derive(bytes, salt, iterations, KEY_BYTES);
  return `${SCHEME}$${iterations}$${base64url.encode(salt)}$${base64url.encode(hash)}`;
}

/**
 * Whether `password` matches the stored hash. False for a wrong password, a password over
 * {@link MAX_PASSWORD_BYTES}, and a stored value that is not a well-formed PBKDF2 hash.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseStored(stored);
  const bytes = passwordBytes(password);
  if (!parsed || !bytes) return false;
  const actual = await derive(bytes, parsed.salt, parsed.iterations, parsed.hash.length);
  return constantTimeEqual(actual, parsed.hash);
}

/**
 * Whether a stored hash should be replaced on the next successful login: it is malformed, uses
 * fewer than `iterations` iterations, or has a derived key of another length than 32 bytes. A
 * hash with more iterations than asked is left alone (lowering the setting never weakens hashes).
 */
export function needsRehash(stored: string, iterations: number = PBKDF2_ITERATIONS): boolean {
  const parsed = parseStored(stored);
  return !parsed || parsed.iterations < iterations || parsed.hash.length !== KEY_BYTES;
}

/** The UTF-8 bytes of the password, or undefined when it is too long. */
function passwordBytes(password: string): Uint8Array<ArrayBuffer> | undefined {
  // A UTF-16 code unit is at most 3 UTF-8 bytes: skip encoding a string that is clearly too long.
  if (typeof password !== "string" || password.length > MAX_PASSWORD_BYTES) return undefined;
  const bytes = new TextEncoder().encode(password);
  return bytes.length > MAX_PASSWORD_BYTES ? undefined : bytes;
}

function parseStored(
  stored: string,
):
  | { iterations: number; salt: Uint8Array<ArrayBuffer>; hash: Uint8Array<ArrayBuffer> }
  | undefined {
  if (typeof stored !== "string") return undefined;
  const parts = stored.split("$");
  if (parts.length !== 4 || parts[0] !== SCHEME) return undefined;
  const [, count, salt64, hash64] = parts;
  if (!/^[1-9][0-9]{0,7}$/.test(count)) return undefined;
  const iterations = Number(count);
  if (iterations > MAX_ITERATIONS || !B64URL.test(salt64) || !B64URL.test(hash64)) {
    return undefined;
  }
  try {
    const salt = new Uint8Array(base64url.decode(salt64));
    const hash = new Uint8Array(base64url.decode(hash64));
    if (salt.length < 8 || hash.length < 16 || hash.length > 64) return undefined;
    return { iterations, salt, hash };
  } catch {
    return undefined;
  }
}

async function derive(
  password: Uint8Array<ArrayBuffer>,
  salt: Uint8Array<ArrayBuffer>,
  iterations: number,
  length: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const key = await crypto.subtle.importKey("raw", password, "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt, iterations },
    key,
    length * 8,
  );
  return new Uint8Array(bits);
}

/** Compares two byte strings in time that depends only on their lengths. */
function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

const dummies = new Map<number, Promise<string>>();
/** A valid hash of a random password, checked when the username is unknown (the same cost). */
export function dummyHash(iterations: number): Promise<string> {
  let hash = dummies.get(iterations);
  if (!hash) dummies.set(iterations, hash = hashPassword(crypto.randomUUID(), iterations));
  return hash;
}
