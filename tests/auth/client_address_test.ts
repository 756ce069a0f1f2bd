/** clientAddress(): X-Forwarded-For believed only from trusted proxies, right to left. */
import assert from "node:assert/strict";
import { clientAddress, parseProxyRanges } from "../../platform/client_address.ts";
import { loadConfig } from "../../platform/config.ts";

Deno.test("clientAddress() without trusted proxies is the peer, whatever the header says", () => {
  assert.equal(clientAddress("203.0.113.9", "1.2.3.4", []), "203.0.113.9");
  assert.equal(clientAddress(undefined, undefined, []), "unknown");
});

Deno.test("clientAddress() behind trusted proxies: the right-most untrusted hop", () => {
  const ranges = parseProxyRanges(["10.0.0.0/8", "::1", "fd00::/8"]);
  // Client → proxy 10.0.0.5 → proxy 10.1.2.3 → us.
  assert.equal(clientAddress("10.1.2.3", "198.51.100.7, 10.0.0.5", ranges), "198.51.100.7");
  // A forged left-most entry is not believed: the hop the trusted proxy saw is.
  assert.equal(clientAddress("10.1.2.3", "6.6.6.6, 198.51.100.7", ranges), "198.51.100.7");
  assert.equal(clientAddress("::1", "2001:db8::1", ranges), "2001:db8::1");
  assert.equal(clientAddress("fd12:3456::1", "198.51.100.7", ranges), "198.51.100.7");
  // An untrusted peer's header is ignored; garbage stops the walk at the peer.
  assert.equal(clientAddress("203.0.113.9", "198.51.100.7", ranges), "203.0.113.9");
  assert.equal(clientAddress("10.1.2.3", "'; DROP TABLE x; --", ranges), "10.1.2.3");
  // Every hop trusted: the left-most.
  assert.equal(clientAddress("10.1.2.3", "10.9.9.9, 10.0.0.5", ranges), "10.9.9.9");
  assert.equal(clientAddress("10.1.2.3", undefined, ranges), "10.1.2.3");
  // IPv4-mapped IPv6 and the edges of a block.
  const v4 = parseProxyRanges(["192.168.1.0/24"]);
  assert.equal(clientAddress("192.168.1.255", "1.1.1.1", v4), "1.1.1.1");
  assert.equal(clientAddress("192.168.2.0", "1.1.1.1", v4), "192.168.2.0");
  assert.equal(
    clientAddress("::ffff:10.0.0.1", "1.1.1.1", parseProxyRanges(["::ffff:10.0.0.0/104"])),
    "1.1.1.1",
  );
});

Deno.test("TRUSTED_PROXIES: bad entries are configuration errors", () => {
  for (const bad of ["10.0.0.0/33", "example.org", "10.0.0", "::1/129", "1.2.3.4/x"]) {
    assert.throws(() => loadConfig({ TRUSTED_PROXIES: bad }), /TRUSTED_PROXIES/, bad);
  }
  assert.equal(loadConfig({ TRUSTED_PROXIES: "10.0.0.0/8, ::1" }).auth.trustedProxies.length, 2);
});

Deno.test("behind a trusted proxy, the audit trail records the client's address", async () => {
  const { startAuthStack } = await import("./_auth_harness.ts");
  const st = await startAuthStack({ TRUSTED_PROXIES: "127.0.0.1" });
  try {
    const res = await st.call("/auth/token", {
      method: "POST",
      headers: {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Forwarded-For": "6.6.6.6, 198.51.100.7",
      },
      body: "grant_type=password&username=admin&password=wrong-password-here",
    });
    assert.equal(res.status, 400);
    await res.body?.cancel();
    let total = 0;
    for (let i = 0; i < 50 && !total; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const found = await st.call("/fhir/AuditEvent?address=198.51.100.7", {
        token: st.tokens.admin,
      });
      total = (await found.json()).entry?.length ?? 0;
    }
    assert.equal(total, 1, "the failed login, from the client's address");
  } finally {
    await st.close();
  }
});
