/**
 * @module Where the service sends the DICOM objects it stores (DICOM_DESTINATIONS): archives and
 * PACS that take STOW-RS, each with its credentials and the kinds of object it wants, like a
 * PACS's export or auto-routing rules. By default a destination receives Segmentations and
 * Structured Reports (the AI results: SEG + SR), so the reading workstation finds them beside the
 * images it already holds.
 *
 * DICOM_DESTINATIONS is a JSON array:
 *
 *     [{ "name": "pacs", "url": "https://pacs.example.org/dicom-web",
 *        "tokenEnv": "PACS_TOKEN", "send": ["SEG", "SR"] }]
 *
 * `url` is the DICOMweb root (STOW-RS goes to `{url}/studies/{study}`), or `dimse` a DIMSE peer
 * `AE@host:port` (C-STORE from DIMSE_AE_TITLE, no credentials); credentials are a bearer
 * token (`token`, or `tokenEnv` naming the variable that holds it) or basic auth (`username` with
 * `password` or `passwordEnv`); `send` lists object kinds (SEG, SR, KO, PR, CT, MR, ...: the
 * modalities' SOP Classes) or SOP Class UIDs, default SEG and SR.
 */

export interface DicomDestination {
  /** Unique; names the destination in the delivery log and the admin API. */
  name: string;
  /** The DICOMweb root, without a trailing slash (`dimse://AE@host:port` for a DIMSE peer). */
  url: string;
  /** A DIMSE peer instead of DICOMweb: instances go by C-STORE from our AE title. */
  dimse?: { aeTitle: string; host: string; port: number };
  /** The Authorization header to send, when the destination wants one. */
  authorization?: string;
  /** SOP Class UIDs, or prefixes ending in "." for a family (every SR class). */
  sopClasses: string[];
  /** What `send` said, for the admin API. */
  send: string[];
}

/** The SOP Classes behind each kind a destination may ask for (PS3.4 B.5). */
export const SEND_KINDS: Record<string, string[]> = {
  SEG: ["1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.5"],
  SR: ["1.2.840.10008.5.1.4.1.1.88."],
  KO: ["1.2.840.10008.5.1.4.1.1.88.59"],
  PR: ["1.2.840.10008.5.1.4.1.1.11."],
  CT: ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2"],
  MR: ["1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.4.4"],
  CR: ["1.2.840.10008.5.1.4.1.1.1"],
  DX: ["1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1.1"],
  PT: ["1.2.840.10008.5.1.4.1.1.128", "1.2.840.10008.5.1.4.1.1.130"],
  US: ["1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.3.1"],
  DOC: ["1.2.840.10008.5.1.4.1.1.104.1"],
};

const DEFAULT_SEND = ["SEG", "SR"];
const NAME = /^[A-Za-z0-9._-]{1,64}$/;
const UID = /^[0-9]+(\.[0-9]+)*$/;

/** Whether `sopClassUid` is among those a destination wants. */
export function wants(d: Pick<DicomDestination, "sopClasses">, sopClassUid: string): boolean {
  return d.sopClasses.some((c) => c.endsWith(".") ? sopClassUid.startsWith(c) : c === sopClassUid);
}

/**
 * Reads DICOM_DESTINATIONS; `env` resolves `tokenEnv`/`passwordEnv`. Problems are pushed to
 * `problems` (the configuration is refused at start, naming each), never thrown.
 */
export function parseDestinations(
  raw: string | undefined,
  env: Record<string, string | undefined>,
  problems: string[],
): DicomDestination[] {
  if (!raw?.trim()) return [];
  let list: unknown;
  try {
    list = JSON.parse(raw);
  } catch (e) {
    problems.push(`DICOM_DESTINATIONS: not JSON (${(e as Error).message})`);
    return [];
  }
  if (!Array.isArray(list)) {
    problems.push("DICOM_DESTINATIONS: expected a JSON array of destinations");
    return [];
  }
  const out: DicomDestination[] = [];
  list.forEach((item, i) => {
    const where = `DICOM_DESTINATIONS[${i}]`;
    const problem = (text: string) => problems.push(`${where}: ${text}`);
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      return problem("expected an object");
    }
    const o = item as Record<string, unknown>;
    const known = [
      "name",
      "url",
      "token",
      "tokenEnv",
      "username",
      "password",
      "passwordEnv",
      "send",
      "dimse",
    ];
    const unknown = Object.keys(o).filter((k) => !known.includes(k));
    if (unknown.length) return problem(`unknown field(s) ${unknown.join(", ")}`);
    const text = (key: string): string | undefined => {
      const v = o[key];
      if (v === undefined) return undefined;
      if (typeof v !== "string" || !v) {
        problem(`${key} must be a non-empty string`);
        return undefined;
      }
      return v;
    };
    const name = text("name");
    if (!name || !NAME.test(name)) {
      return problem("name is required: 1-64 letters, digits, '.', '_' or '-'");
    }
    if (out.some((d) => d.name === name)) return problem(`name ${name} is used twice`);
    const dimseAddress = text("dimse");
    let url: URL | undefined;
    let dimse: DicomDestination["dimse"];
    if (dimseAddress !== undefined) {
      // A DIMSE peer: C-STORE to AE@host:port.
      const m = /^([^@]{1,16})@(.+):(\d{1,5})$/.exec(dimseAddress);
      const port = m ? Number(m[3]) : 0;
      if (!m || port < 1 || port > 65535 || !/^[\x20-\x5b\x5d-\x7e]{1,16}$/.test(m[1])) {
        return problem("dimse must be AE@host:port (an AE title of 1-16 characters)");
      }
      if (o.url !== undefined) return problem("give a url (DICOMweb) or dimse, not both");
      for (const k of ["token", "tokenEnv", "username", "password", "passwordEnv"]) {
        if (o[k] !== undefined) return problem(`${k}: a DIMSE destination takes no credentials`);
      }
      dimse = { aeTitle: m[1].trim(), host: m[2], port };
    } else {
      try {
        url = new URL(text("url") ?? "");
      } catch {
        return problem("url must be an absolute http(s) URL (the DICOMweb root), or give dimse");
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        return problem("url must be http or https");
      }
      if (url.username || url.password || url.search || url.hash) {
        return problem("url must carry no credentials, query or fragment (use username/password)");
      }
    }
    const fromEnv = (key: string) => {
      const variable = text(key);
      if (variable === undefined) return undefined;
      const value = env[variable];
      if (!value) problem(`${key}: the variable ${variable} is not set`);
      return value;
    };
    const token = text("token") ?? fromEnv("tokenEnv");
    const username = text("username");
    const password = text("password") ?? fromEnv("passwordEnv");
    if (token && username) return problem("give a token or a username, not both");
    if (username && password === undefined) return problem("username needs password/passwordEnv");
    if (!username && password !== undefined) return problem("password needs a username");
    if (username?.includes(":")) return problem("a basic-auth username cannot contain ':'");
    const send = o.send === undefined ? DEFAULT_SEND : o.send;
    if (!Array.isArray(send) || !send.length || send.some((s) => typeof s !== "string")) {
      return problem(
        `send must be a non-empty array of kinds (${Object.keys(SEND_KINDS)}) or UIDs`,
      );
    }
    const sopClasses: string[] = [];
    for (const s of send as string[]) {
      const kind = SEND_KINDS[s.toUpperCase()];
      if (kind) sopClasses.push(...kind);
      else if (UID.test(s)) sopClasses.push(s);
      else return problem(`send: ${s} is neither a kind (${Object.keys(SEND_KINDS)}) nor a UID`);
    }
    out.push({
      name,
      url: url ? url.href.replace(/\/+$/, "") : `dimse://${dimseAddress}`,
      ...(dimse ? { dimse } : {}),
      authorization: token
        ? `Bearer ${token}`
        : username
        ? `Basic ${
          btoa(String.fromCharCode(...new TextEncoder().encode(`${username}:${password}`)))
        }`
        : undefined,
      sopClasses,
      send: send as string[],
    });
  });
  return out;
}
