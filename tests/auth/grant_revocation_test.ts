/**
 * @module A token of an app's grant, cached as verified by two replicas: revoking the grant on one
 * is refused at once there, and on the other within GRANT_RECHECK_MS (it reads the grant again),
 * not only when the token expires.
 */
import assert from "node:assert/strict";
import { openDb } from "../../db/db.ts";
import { migrate } from "../../db/migrate.ts";
import { loadConfig } from "../../platform/config.ts";
import { createAuthService, GRANT_RECHECK_MS } from "../../auth/service.ts";
import { issueAccessToken } from "../../auth/jwt.ts";
import { insertGrant } from "../../auth/smart_repo.ts";
import { findUserByName } from "../../auth/repo.ts";

Deno.test("a grant revoked on one replica ends its cached tokens on another within the recheck", async () => {
  const db = await openDb({});
  await migrate(db);
  let clock = Date.parse("2026-12-07T10:00:00Z");
  const now = () => clock;
  const config = loadConfig({
    AUTH: "on",
    PUBLIC_URL: "http://127.0.0.1:9",
    PGLITE_DIR: "memory",
    ADMIN_USERNAME: "admin",
    ADMIN_PASSWORD: "a password of sixteen",
    LOG_LEVEL: "error",
  });
  const a = createAuthService(db, config, { now });
  const b = createAuthService(db, config, { now });
  try {
    await a.ensureFirstAdmin(() => {});
    const admin = (await findUserByName(db, "admin"))!;
    await insertGrant(db, {
      id: "grant-1",
      userId: admin.id,
      clientId: "app",
      scope: "patient/*.rs",
      context: {},
      session: null as unknown as string,
      authTime: new Date(clock),
    });
    const { token } = await issueAccessToken(a.ring, {
      sub: admin.id,
      kind: "user",
      scope: "patient/*.rs",
      client_id: "app",
      patient: "p1",
      grant_id: "grant-1",
    }, { issuer: a.issuer, audience: a.audience, ttlSeconds: 900, now });
    const bearer = `Bearer ${token}`;
    assert.equal((await a.authenticate(bearer)).patient, "p1");
    assert.equal((await b.authenticate(bearer)).patient, "p1");

    // Revoked through replica a: refused there at once.
    await a.revoke(token);
    await assert.rejects(() => a.authenticate(bearer), /revoked/);
    // Replica b trusts its cache for a while, then reads the grant again and refuses.
    clock += GRANT_RECHECK_MS - 1_000;
    assert.equal((await b.authenticate(bearer)).patient, "p1");
    clock += 2_000;
    await assert.rejects(() => b.authenticate(bearer), /revoked/);
    // Well before the token itself expires.
    assert.ok(GRANT_RECHECK_MS < 900_000 / 10);
  } finally {
    await db.close();
  }
});
