/**
 * @module The DIMSE listener's settings: its port and AE title, who may associate (an allow-list
 * of AE titles and hosts, empty by default: a DICOM port open to anyone is a way around the API's
 * sign-in), the C-MOVE destinations by AE title, and the limits on associations.
 */

export interface DimseConfig {
  /** TCP port of the DIMSE SCP (DIMSE_PORT); undefined: no listener. */
  port?: number;
  /** Our AE title (DIMSE_AE_TITLE, default IMAGING_AI): associations called otherwise are refused. */
  aeTitle: string;
  /**
   * Who may associate (DIMSE_ALLOWED_PEERS: comma-separated `AE@host`, either part `*`; `*` alone
   * for anyone). Empty (the default): no one, and the listener says so at start.
   */
  allowedPeers: { aeTitle: string; host: string }[];
  /** C-MOVE destinations by AE title (DIMSE_MOVE_DESTINATIONS: `AE=host:port`, comma-separated). */
  moveDestinations: { aeTitle: string; host: string; port: number }[];
  /** Associations open at once (DIMSE_MAX_ASSOCIATIONS, default 16); more are refused (transient). */
  maxAssociations: number;
  /** An association idle this long is aborted (DIMSE_TIMEOUT_SECONDS, default 60). */
  timeoutMs: number;
}

/** An AE title: 1–16 characters of the default repertoire, no backslash or control characters. */
const AE_TITLE = /^[\x20-\x5b\x5d-\x7e]{1,16}$/;

export function parseDimse(
  env: Record<string, string | undefined>,
  int: (name: string, fallback: number, min: number, max: number) => number,
  problems: string[],
): DimseConfig {
  const aeTitle = (env.DIMSE_AE_TITLE || "IMAGING_AI").trim();
  if (!AE_TITLE.test(aeTitle)) problems.push(`DIMSE_AE_TITLE=${aeTitle}: 1-16 characters, no \\`);
  const list = (raw: string | undefined) =>
    (raw ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const allowedPeers = list(env.DIMSE_ALLOWED_PEERS).flatMap((entry) => {
    if (entry === "*") return [{ aeTitle: "*", host: "*" }];
    const at = entry.lastIndexOf("@");
    const ae = entry.slice(0, at).trim(), host = entry.slice(at + 1).trim();
    if (at <= 0 || !host || (ae !== "*" && !AE_TITLE.test(ae))) {
      problems.push(`DIMSE_ALLOWED_PEERS: ${entry}: expected AE@host (either may be *), or *`);
      return [];
    }
    return [{ aeTitle: ae, host }];
  });
  const moveDestinations = list(env.DIMSE_MOVE_DESTINATIONS).flatMap((entry) => {
    const m = /^([^=]+)=(.+):(\d{1,5})$/.exec(entry);
    const port = m ? Number(m[3]) : 0;
    if (!m || !AE_TITLE.test(m[1].trim()) || port < 1 || port > 65535) {
      problems.push(`DIMSE_MOVE_DESTINATIONS: ${entry}: expected AE=host:port`);
      return [];
    }
    return [{ aeTitle: m[1].trim(), host: m[2].trim(), port }];
  });
  const rawPort = env.DIMSE_PORT;
  return {
    port: rawPort === undefined || rawPort === "" ? undefined : int("DIMSE_PORT", 0, 0, 65535),
    aeTitle,
    allowedPeers,
    moveDestinations,
    maxAssociations: int("DIMSE_MAX_ASSOCIATIONS", 16, 1, 1000),
    timeoutMs: int("DIMSE_TIMEOUT_SECONDS", 60, 1, 86_400) * 1000,
  };
}
