/**
 * @module The logger of the API and the sidecar: JSON lines on stderr at or above a level, with
 * the component (`api`, `sidecar`). Pure, so the sidecar takes it without pulling in `db/`.
 */

export type Logger = (
  level: "debug" | "info" | "warn" | "error",
  message: string,
  data?: Record<string, unknown>,
) => void;

const LEVELS = { debug: 0, info: 1, warn: 2, error: 3 } as const;

export function createLogger(min: keyof typeof LEVELS, component = "sidecar"): Logger {
  return (level, msg, data) => {
    if (LEVELS[level] < LEVELS[min]) return;
    console.error(
      JSON.stringify({ level, time: new Date().toISOString(), component, msg, ...data }),
    );
  };
}
