/**
 * @module The allow-list of Subscription endpoints (SUBSCRIPTION_ENDPOINTS), a guard against a
 * Subscription making the server send requests where it should not (SSRF). Each pattern is either
 * a URL prefix (`https://ehr.example.org/fhir/`: that scheme, host and port, and that path or below
 * it at a segment boundary) or a host pattern (`ehr.hospital.org`, `*.hospital.org`, with `:port`
 * to allow that port only; http or https). An empty list allows every http(s) endpoint.
 */

export type EndpointPattern =
  | {
    kind: "prefix";
    /** As written in the list, for messages. */
    text: string;
    /** `https://host[:port]`, normalized (lower case, no default port). */
    origin: string;
    /** The path without its trailing `/` (empty for the whole origin). */
    path: string;
  }
  | {
    kind: "host";
    text: string;
    /** The host normalized (lower case, IDNA), without the `*.` of a wildcard. */
    host: string;
    /** `*.host`: any name below `host` (not `host` itself). */
    wildcard: boolean;
    /** Only this port (the scheme's default when the endpoint names none); undefined: any. */
    port?: number;
  };

/** Parses the comma-separated list; throws an Error naming the first bad entry. */
export function parseEndpointPatterns(list: string): EndpointPattern[] {
  return list.split(",").map((entry) => entry.trim()).filter(Boolean).map(parsePattern);
}

function parsePattern(text: string): EndpointPattern {
  const bad = (why: string) => new Error(`"${text}": ${why}`);
  if (text.includes("://")) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw bad("not a URL");
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw bad("expected http(s)://");
    if (url.username || url.password || url.search || url.hash || text.includes("?")) {
      throw bad("a URL prefix has no credentials, query or fragment");
    }
    return { kind: "prefix", text, origin: url.origin, path: url.pathname.replace(/\/+$/, "") };
  }
  const m = /^(\*\.)?(\[[0-9A-Fa-f:.]+\]|[^\s:/?#@\[\]\\*]+)(?::(\d{1,5}))?$/.exec(text);
  if (!m) {
    throw bad(
      "expected a URL prefix (https://host/path/) or a host pattern (host, *.domain, host:port)",
    );
  }
  const port = m[3] === undefined ? undefined : Number(m[3]);
  if (port !== undefined && (port < 1 || port > 65535)) throw bad("port out of range");
  let host: string;
  try {
    host = new URL(`http://${m[2]}/`).hostname;
  } catch {
    throw bad("not a host name");
  }
  return { kind: "host", text, host, wildcard: Boolean(m[1]), port };
}

/** Whether `endpoint` (an absolute http(s) URL) is allowed; every endpoint is when `patterns` is empty. */
export function endpointAllowed(patterns: readonly EndpointPattern[], endpoint: string): boolean {
  if (!patterns.length) return true;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return false;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return false;
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  return patterns.some((p) => {
    if (p.kind === "prefix") {
      return url.origin === p.origin &&
        (url.pathname === p.path || url.pathname.startsWith(`${p.path}/`));
    }
    if (p.port !== undefined && p.port !== port) return false;
    return p.wildcard ? url.hostname.endsWith(`.${p.host}`) : url.hostname === p.host;
  });
}
