/**
 * @module Where the server may send requests of its own (Subscription notifications, a client's
 * `jwks_uri`): not to loopback, private, shared, link-local, multicast, reserved or cloud metadata
 * addresses, IPv4 or IPv6 (IPv4-mapped, NAT64 and 6to4 forms included), unless the administrator
 * allows them (`OUTBOUND_PRIVATE_ADDRESSES=allow`). A host name is checked after resolution: every
 * address it resolves to (the hosts file first, then DNS, A and AAAA) must be public, so a name that
 * points at 127.0.0.1 is refused like 127.0.0.1 itself. A guard against server-side request forgery
 * (SSRF), applied before each request; callers do not follow redirects. `guardedRequest` makes
 * the request itself and connects to the addresses it checked (no DNS rebinding between the two).
 */

/** Why `ip` (an IPv4 or IPv6 literal, brackets allowed) is not a public address; null if it is. */
export function addressProblem(ip: string): string | null {
  const v4 = parseIPv4(ip);
  if (v4) return ipv4Problem(v4);
  const v6 = parseIPv6(ip.replace(/^\[|\]$/g, ""));
  if (!v6) return null;
  return ipv6Problem(v6);
}

/** Whether `host` (a URL's hostname) is an IP literal. */
export function isIpLiteral(host: string): boolean {
  return !!parseIPv4(host) || !!parseIPv6(host.replace(/^\[|\]$/g, ""));
}

/**
 * What can be told without resolving: an IP literal's problem, and `localhost` (and names below
 * it, RFC 6761) as loopback.
 */
export function hostProblem(host: string): string | null {
  const h = host.toLowerCase().replace(/\.$/, "");
  if (h === "localhost" || h.endsWith(".localhost")) return "a loopback name (localhost)";
  return isIpLiteral(h) ? addressProblem(h) : null;
}

export type Resolver = (host: string) => Promise<string[]>;

/**
 * Why `url` must not be requested, or null: not http(s), a refused literal or name, or a name that
 * resolves to a refused address. A name that does not resolve is refused too (it cannot be checked,
 * and the request could not be made).
 */
export async function outboundProblem(
  url: URL,
  resolve: Resolver = systemResolver,
): Promise<string | null> {
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `${url.protocol} is not http(s)`;
  }
  const host = url.hostname;
  const direct = hostProblem(host);
  if (direct || isIpLiteral(host)) return direct && `${host} is ${direct}`;
  let addresses: string[];
  try {
    addresses = await resolve(host);
  } catch (e) {
    return `${host} does not resolve (${(e as Error).message})`;
  }
  if (!addresses.length) return `${host} does not resolve`;
  for (const a of addresses) {
    const p = addressProblem(a);
    if (p) return `${host} resolves to ${a}, ${p}`;
  }
  return null;
}

/** The hosts file's addresses for `host`, else DNS (A and AAAA). */
export const systemResolver: Resolver = async (host) => {
  const h = host.toLowerCase();
  try {
    const hosts = await Deno.readTextFile("/etc/hosts");
    const found: string[] = [];
    for (const line of hosts.split("\n")) {
      const [address, ...names] = line.replace(/#.*/, "").trim().split(/\s+/);
      if (address && names.some((n) => n.toLowerCase() === h)) found.push(address);
    }
    if (found.length) return found;
  } catch { /* no hosts file */ }
  const settled = await Promise.allSettled([
    Deno.resolveDns(host, "A"),
    Deno.resolveDns(host, "AAAA"),
  ]);
  const out = settled.flatMap((s) => s.status === "fulfilled" ? s.value : []);
  if (!out.length) {
    const failed = settled.find((s) => s.status === "rejected") as PromiseRejectedResult;
    throw failed?.reason ?? new Error("no address");
  }
  return out;
};

function parseIPv4(s: string): number[] | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  return parts.every((p) => p <= 255) ? parts : null;
}

/** Eight 16-bit groups, or null. Accepts `::` and a trailing dotted IPv4. */
function parseIPv6(s: string): number[] | null {
  if (!s.includes(":") || /[^0-9a-fA-F:.%]/.test(s)) return null;
  let text = s.replace(/%.*$/, ""); // zone id
  const tail: number[] = [];
  const dotted = /:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = parseIPv4(dotted[1]);
    if (!v4) return null;
    tail.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    text = text.slice(0, -dotted[1].length) + "0:0";
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (h: string) => h ? h.split(":") : [];
  const head = groups(halves[0]), rest = halves.length === 2 ? groups(halves[1]) : [];
  const fill = 8 - head.length - rest.length;
  if (halves.length === 1 ? fill !== 0 : fill < 1) return null;
  const all = [...head, ...Array(halves.length === 2 ? fill : 0).fill("0"), ...rest];
  if (all.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return null;
  const out = all.map((g) => parseInt(g, 16));
  if (tail.length) out.splice(6, 2, ...tail);
  return out;
}

function ipv4Problem([a, b, c]: number[]): string | null {
  if (a === 127) return "a loopback address";
  if (a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168)) {
    return "a private address";
  }
  if (a === 169 && b === 254) return "a link-local address (cloud metadata lives there)";
  if (a === 100 && b >= 64 && b <= 127) return "a shared (carrier-grade NAT) address";
  if (a === 0) return "an unspecified address";
  if (a >= 224 && a <= 239) return "a multicast address";
  if (a >= 240) return "a reserved address";
  if (a === 192 && b === 0 && c === 0) return "an IETF protocol address";
  if (
    (a === 192 && b === 0 && c === 2) || (a === 198 && b === 51 && c === 100) ||
    (a === 203 && b === 0 && c === 113)
  ) return "a documentation address";
  if (a === 198 && (b === 18 || b === 19)) return "a benchmarking address";
  return null;
}

function ipv6Problem(g: number[]): string | null {
  const zero = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zero(0, 7) && g[7] === 1) return "a loopback address (::1)";
  if (zero(0, 8)) return "an unspecified address (::)";
  // IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::a.b.c.d: the IPv4 decides.
  const v4 = [g[6] >> 8, g[6] & 255, g[7] >> 8, g[7] & 255];
  if ((zero(0, 5) && g[5] === 0xffff) || zero(0, 6) || (g[0] === 0x64 && g[1] === 0xff9b)) {
    const p = ipv4Problem(v4);
    return p && `${p} (as IPv6)`;
  }
  if (g[0] === 0x2002) { // 6to4: the IPv4 in groups 1–2
    const p = ipv4Problem([g[1] >> 8, g[1] & 255, g[2] >> 8, g[2] & 255]);
    if (p) return `${p} (as 6to4)`;
  }
  if ((g[0] & 0xfe00) === 0xfc00) return "a unique local (private) address";
  if ((g[0] & 0xffc0) === 0xfe80) return "a link-local address";
  if ((g[0] & 0xffc0) === 0xfec0) return "a site-local address";
  if ((g[0] & 0xff00) === 0xff00) return "a multicast address";
  if (g[0] === 0x2001 && g[1] === 0x0db8) return "a documentation address";
  return null;
}

/** A refused or failed outbound request (the guard's reason, or the transport's). */
export class OutboundRefused extends Error {
  override name = "OutboundRefused";
}

export interface GuardedRequest {
  method: string;
  headers?: Headers;
  body?: Uint8Array | string;
  signal?: AbortSignal;
  /** The response body is cut off (an error) past this many bytes (default 1 MiB). */
  maxBytes?: number;
}

export interface GuardedResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

/**
 * An HTTP(S) request to `url` that can only reach public addresses, with the name resolved once:
 * the connection goes to the very addresses that were checked (node:http's `lookup` hook), so a
 * name whose DNS answer changes between the check and the connection (DNS rebinding) cannot slip
 * through. TLS still verifies the certificate against the URL's host name. Redirects are not
 * followed (the 3xx is the answer).
 */
export async function guardedRequest(
  url: URL,
  init: GuardedRequest,
  resolve: Resolver = systemResolver,
  /** Why an address is refused (default `addressProblem`; tests allow a loopback server). */
  problemOf: (address: string) => string | null = addressProblem,
): Promise<GuardedResponse> {
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new OutboundRefused(`${url.protocol} is not http(s)`);
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const direct = isIpLiteral(url.hostname) ? problemOf(host) : hostProblem(url.hostname);
  if (direct) throw new OutboundRefused(`${url.hostname} is ${direct}`);
  const lookup = (
    name: string,
    options: { all?: boolean } | number,
    callback: (e: Error | null, address?: unknown, family?: number) => void,
  ) => {
    resolve(name).then((addresses) => {
      if (!addresses.length) throw new OutboundRefused(`${name} does not resolve`);
      for (const a of addresses) {
        const p = problemOf(a);
        if (p) throw new OutboundRefused(`${name} resolves to ${a}, ${p}`);
      }
      const all = addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
      if (typeof options === "object" && options.all) callback(null, all);
      else callback(null, all[0].address, all[0].family);
    }).catch((e) =>
      callback(
        e instanceof OutboundRefused ? e : new OutboundRefused(`${name} does not resolve (${e})`),
      )
    );
  };
  const { request } = url.protocol === "https:"
    ? await import("node:https")
    : await import("node:http");
  const limit = init.maxBytes ?? 2 ** 20;
  return await new Promise<GuardedResponse>((done, fail) => {
    const req = request({
      protocol: url.protocol,
      hostname: host,
      port: url.port || undefined,
      path: `${url.pathname}${url.search}`,
      method: init.method,
      headers: Object.fromEntries(init.headers ?? []),
      signal: init.signal,
      // IP literals never reach `lookup`: they were checked above.
      lookup: lookup as never,
      // A connection of its own: each request resolves (and checks) the name anew.
      agent: false,
    }, (res) => {
      const chunks: Uint8Array[] = [];
      let size = 0;
      res.on("data", (chunk: Uint8Array) => {
        size += chunk.length;
        if (size > limit) {
          // Not a refusal of the address: an answer too large fails like any transport error.
          res.destroy(new Error(`the answer is larger than ${limit} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on("error", fail);
      res.on("end", () => {
        const body = new Uint8Array(size);
        let at = 0;
        for (const c of chunks) {
          body.set(c, at);
          at += c.length;
        }
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          for (const value of Array.isArray(v) ? v : v === undefined ? [] : [v]) {
            headers.append(k, String(value));
          }
        }
        done({ status: res.statusCode ?? 0, headers, body });
      });
    });
    req.on("error", fail);
    req.end(init.body);
  });
}
