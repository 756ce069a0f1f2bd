/**
 * The outbound address guard (`platform/outbound.ts`): which IPv4 and IPv6 addresses are refused
 * (loopback, private, shared, link-local and metadata, multicast, reserved, documentation; IPv6
 * forms that carry an IPv4), `localhost`, and names checked after resolution.
 */
import assert from "node:assert/strict";
import {
  addressProblem,
  guardedRequest,
  hostProblem,
  outboundProblem,
  OutboundRefused,
} from "../../platform/outbound.ts";
import { fetchJwksHttps } from "../../auth/client_assertion.ts";

Deno.test("addressProblem() refuses non-public IPv4 and IPv6 addresses and passes public ones", () => {
  const refused: [string, RegExp][] = [
    ["127.0.0.1", /loopback/],
    ["127.255.255.254", /loopback/],
    ["10.1.2.3", /private/],
    ["172.16.0.1", /private/],
    ["172.31.255.255", /private/],
    ["192.168.1.1", /private/],
    ["169.254.169.254", /link-local/],
    ["100.64.0.1", /shared/],
    ["0.0.0.0", /unspecified/],
    ["224.0.0.1", /multicast/],
    ["255.255.255.255", /reserved/],
    ["192.0.2.10", /documentation/],
    ["::1", /loopback/],
    ["[::1]", /loopback/],
    ["::", /unspecified/],
    ["fe80::1", /link-local/],
    ["fc00::1", /unique local/],
    ["fd00:ec2::254", /unique local/],
    ["::ffff:127.0.0.1", /loopback address \(as IPv6\)/],
    ["::ffff:7f00:1", /loopback address \(as IPv6\)/],
    ["::ffff:a9fe:a9fe", /link-local/],
    ["64:ff9b::a9fe:a9fe", /link-local/],
    ["2002:7f00:1::", /loopback address \(as 6to4\)/],
    ["ff02::1", /multicast/],
    ["2001:db8::1", /documentation/],
  ];
  for (const [ip, why] of refused) {
    const p = addressProblem(ip);
    assert.ok(p, `${ip} passed`);
    assert.match(p!, why, ip);
  }
  for (
    const ip of ["8.8.8.8", "172.32.0.1", "93.184.216.34", "2606:4700::1111", "[2a00:1450::1]"]
  ) {
    assert.equal(addressProblem(ip), null, ip);
  }
  assert.equal(addressProblem("not-an-ip"), null);
  assert.equal(addressProblem("1.2.3"), null);
});

Deno.test("hostProblem() knows localhost and literals without resolving", () => {
  assert.match(hostProblem("localhost")!, /loopback name/);
  assert.match(hostProblem("api.LOCALHOST.")!, /loopback name/);
  assert.match(hostProblem("[::1]")!, /loopback/);
  assert.equal(hostProblem("ehr.example.org"), null);
});

Deno.test("outboundProblem() checks every address a name resolves to, and refuses what does not resolve", async () => {
  const resolve = (host: string) =>
    ({
      "public.test": Promise.resolve(["93.184.216.34", "2606:4700::1111"]),
      "loopback.test": Promise.resolve(["127.0.0.1"]),
      "mixed.test": Promise.resolve(["93.184.216.34", "10.0.0.5"]),
      "v6.test": Promise.resolve(["::1"]),
    })[host] ?? Promise.reject(new Error("NXDOMAIN"));
  const check = (u: string) => outboundProblem(new URL(u), resolve);
  assert.equal(await check("https://public.test/hook"), null);
  assert.match(
    (await check("https://loopback.test/hook"))!,
    /loopback\.test resolves to 127\.0\.0\.1/,
  );
  assert.match((await check("http://mixed.test:8080/"))!, /resolves to 10\.0\.0\.5, a private/);
  assert.match((await check("http://v6.test/"))!, /resolves to ::1/);
  assert.match((await check("http://nowhere.test/"))!, /does not resolve/);
  assert.match((await check("http://127.0.0.1:5432/"))!, /127\.0\.0\.1 is a loopback/);
  assert.match((await check("http://[::ffff:169.254.169.254]/"))!, /link-local/);
  assert.equal(await check("http://8.8.8.8/"), null);
  assert.match((await check("ftp://public.test/"))!, /not http/);
  // The hosts file counts: localhost is refused whatever DNS says.
  assert.match((await outboundProblem(new URL("http://localhost/")))!, /loopback name/);
});

/** A local HTTP server that counts what reaches it. */
function receiver() {
  const seen: { host: string | null; method: string }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    seen.push({ host: req.headers.get("host"), method: req.method });
    return new Response("ok", { status: 201 });
  });
  return { seen, port: server.addr.port, close: () => server.shutdown() };
}

Deno.test("guardedRequest() refuses a name that resolves to a private address; nothing is sent", async () => {
  const r = receiver();
  try {
    const url = new URL(`http://hook.example.test:${r.port}/notify`);
    await assert.rejects(
      guardedRequest(url, { method: "POST", body: "{}" }, () => Promise.resolve(["127.0.0.1"])),
      (e: Error) =>
        e instanceof OutboundRefused && /resolves to 127\.0\.0\.1, a loopback/.test(e.message),
    );
    for (const literal of ["127.0.0.1", "[::1]", "169.254.169.254", "localhost"]) {
      await assert.rejects(
        guardedRequest(new URL(`http://${literal}:${r.port}/`), { method: "GET" }),
        OutboundRefused,
        literal,
      );
    }
    assert.deepEqual(r.seen, []);
  } finally {
    await r.close();
  }
});

Deno.test("guardedRequest() connects to the address it checked, once resolved (no DNS rebinding)", async () => {
  const r = receiver();
  try {
    // A policy that allows 127.0.0.1 alone (the default refuses it), and a name that answers
    // 127.0.0.1 on the first lookup and 127.0.0.2 on the next: a pre-check would see the first
    // and the connection the second. The request resolves once and goes where it checked.
    const only = (a: string) => a === "127.0.0.1" ? null : "not the allowed address";
    let lookups = 0;
    const rebinding = () => Promise.resolve([++lookups === 1 ? "127.0.0.1" : "127.0.0.2"]);
    const url = new URL(`http://hook.example.test:${r.port}/notify?x=1`);
    const res = await guardedRequest(url, { method: "PUT", body: "{}" }, rebinding, only);
    assert.equal(res.status, 201);
    assert.equal(new TextDecoder().decode(res.body), "ok");
    assert.equal(lookups, 1);
    assert.deepEqual(r.seen, [{ host: `hook.example.test:${r.port}`, method: "PUT" }]);
    // The next request looks the name up again, gets 127.0.0.2, and is refused before connecting.
    await assert.rejects(
      guardedRequest(url, { method: "PUT", body: "{}" }, rebinding, only),
      /resolves to 127\.0\.0\.2/,
    );
    assert.equal(r.seen.length, 1);
    // An answer over the size limit is an error, not a truncated body.
    await assert.rejects(
      guardedRequest(
        url,
        { method: "GET", maxBytes: 1 },
        () => Promise.resolve(["127.0.0.1"]),
        only,
      ),
      /larger than 1 bytes/,
    );
  } finally {
    await r.close();
  }
});

Deno.test("fetchJwksHttps() refuses private addresses, literal or resolved, before connecting", async () => {
  await assert.rejects(fetchJwksHttps("http://keys.example.org/jwks"), /must be an https URL/);
  await assert.rejects(
    fetchJwksHttps("https://127.0.0.1/jwks"),
    /jwks_uri refused: 127\.0\.0\.1 is a loopback address/,
  );
  await assert.rejects(
    fetchJwksHttps("https://[fd00::1]/jwks"),
    /jwks_uri refused: \[fd00::1\] is a unique local/,
  );
  await assert.rejects(
    fetchJwksHttps("https://keys.example.test/jwks", "refuse", () => Promise.resolve(["10.0.0.5"])),
    /jwks_uri refused: keys\.example\.test resolves to 10\.0\.0\.5, a private address/,
  );
});
