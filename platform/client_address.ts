/**
 * @module The address a request came from, for login limits and the audit trail: the peer's, or
 * behind trusted proxies (TRUSTED_PROXIES: addresses and IPv4/IPv6 CIDR blocks) the right-most
 * address of `X-Forwarded-For` that is not a trusted proxy. A client can prepend anything to that
 * header, so only the hops the trusted proxies appended are believed.
 */

/** A parsed TRUSTED_PROXIES entry: `10.0.0.7`, `10.0.0.0/8`, `::1`, `fd00::/8`. */
export interface ProxyRange {
  bits: bigint;
  prefix: number;
  v6: boolean;
}

function ipv4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    n = (n << 8n) | BigInt(Number(p));
  }
  return n;
}

function ipv6(text: string): bigint | undefined {
  const zone = text.replace(/^\[|\]$/g, "").split("%")[0];
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(zone);
  if (mapped) {
    const v4 = ipv4(mapped[1]);
    return v4 === undefined ? undefined : 0xffff00000000n | v4;
  }
  const halves = zone.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string) => s ? s.split(":") : [];
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const fill = 8 - head.length - tail.length;
  if ((halves.length === 1 && fill !== 0) || fill < 0) return undefined;
  let n = 0n;
  for (const g of [...head, ...Array(halves.length === 2 ? fill : 0).fill("0"), ...tail]) {
    if (!/^[0-9a-f]{1,4}$/i.test(g)) return undefined;
    n = (n << 16n) | BigInt(parseInt(g, 16));
  }
  return n;
}

/** An address as a number and its family; undefined when it is not an IP address. */
function parseAddress(text: string): { bits: bigint; v6: boolean } | undefined {
  const t = text.trim();
  const v4 = ipv4(t);
  if (v4 !== undefined) return { bits: v4, v6: false };
  const v6 = t.includes(":") ? ipv6(t) : undefined;
  return v6 === undefined ? undefined : { bits: v6, v6: true };
}

/** Parses TRUSTED_PROXIES entries; throws naming the first bad one. */
export function parseProxyRanges(entries: readonly string[]): ProxyRange[] {
  return entries.map((entry) => {
    const [addr, len] = entry.trim().split("/");
    const a = parseAddress(addr);
    const max = a?.v6 ? 128 : 32;
    const prefix = len === undefined ? max : Number(len);
    if (!a || !/^\d*$/.test(len ?? "") || !(prefix >= 0 && prefix <= max)) {
      throw new Error(`not an IP address or CIDR block: ${entry}`);
    }
    return { bits: a.bits, prefix, v6: a.v6 };
  });
}

function trusted(address: string, ranges: readonly ProxyRange[]): boolean {
  const a = parseAddress(address);
  if (!a) return false;
  return ranges.some((r) => {
    if (r.v6 !== a.v6) return false;
    const shift = BigInt((r.v6 ? 128 : 32) - r.prefix);
    return (a.bits >> shift) === (r.bits >> shift);
  });
}

/** The client's address: see the module note. */
export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | undefined,
  ranges: readonly ProxyRange[],
): string {
  const direct = peer ?? "unknown";
  if (!ranges.length || !forwardedFor || !trusted(direct, ranges)) return direct;
  const hops = forwardedFor.split(",").map((h) => h.trim()).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) {
    if (!parseAddress(hops[i])) return direct; // garbage: believe no more of the header
    if (!trusted(hops[i], ranges)) return hops[i].slice(0, 64);
  }
  return hops[0]?.slice(0, 64) ?? direct;
}
