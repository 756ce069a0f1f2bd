/**
 * @module The one place environment variables are read: `loadConfig(env)` returns one frozen,
 * typed Config and reports every bad variable at once.
 */

export interface Config {
  /** HTTP port (PORT, default 8080). */
  port: number;
  /** Host to bind (HOST, default 0.0.0.0). */
  host: string;
  /** The public base URL of the FHIR API, used in Location, fullUrl and links (PUBLIC_URL + /fhir). */
  publicUrl: string;
  /** `postgres://…` to use a real Postgres (DATABASE_URL); empty: embedded PGlite. */
  databaseUrl: string;
  /** PGlite data folder (PGLITE_DIR, default ./data/pglite); `memory` keeps it in memory. */
  pgliteDir: string;
  /** Postgres pool size (DATABASE_POOL_SIZE, default 10). */
  databasePoolSize: number;
  /** Default and maximum page sizes for searches. */
  searchDefaultCount: number;
  searchMaxCount: number;
  /** Log level (LOG_LEVEL: debug, info, warn, error). */
  logLevel: "debug" | "info" | "warn" | "error";
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join("\n  - ")}`);
  }
}

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env): Readonly<Config> {
  const problems: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name}=${raw}: expected an integer from ${min} to ${max}`);
      return fallback;
    }
    return n;
  };
  const port = int("PORT", 8080, 0, 65535);
  const host = env.HOST || "0.0.0.0";
  const databaseUrl = env.DATABASE_URL ?? "";
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push(`DATABASE_URL: expected postgres://…, got ${databaseUrl.split("@").pop()}`);
  }
  let publicUrl = env.PUBLIC_URL || `http://localhost:${port}`;
  try {
    publicUrl = new URL(publicUrl).toString().replace(/\/$/, "");
  } catch {
    problems.push(`PUBLIC_URL=${env.PUBLIC_URL}: not a URL`);
  }
  const logLevel = (env.LOG_LEVEL || "info") as Config["logLevel"];
  if (!["debug", "info", "warn", "error"].includes(logLevel)) {
    problems.push(`LOG_LEVEL=${env.LOG_LEVEL}: expected debug, info, warn or error`);
  }
  const config: Config = {
    port,
    host,
    publicUrl,
    databaseUrl,
    pgliteDir: env.PGLITE_DIR || "./data/pglite",
    databasePoolSize: int("DATABASE_POOL_SIZE", 10, 1, 1000),
    searchDefaultCount: int("SEARCH_DEFAULT_COUNT", 20, 1, 1000),
    searchMaxCount: int("SEARCH_MAX_COUNT", 1000, 1, 10000),
    logLevel,
  };
  if (problems.length) throw new ConfigError(problems);
  return Object.freeze(config);
}
