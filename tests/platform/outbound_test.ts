/**
 * The outbound address guard (`platform/outbound.ts`): which IPv4 and IPv6 addresses are refused
 * (loopback, private, shared, link-local and metadata, multicast, reserved, documentation; IPv6
 * forms that carry an IPv4), `localhost`, and names checked after resolution.
 */
import assert from "node:assert/strict";
import { addressProblem, hostProblem, outboundProblem } from "../../platform/outbound.ts";

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
