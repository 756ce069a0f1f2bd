/**
 * @module The sidecar's logger: JSON lines on stderr at or above a level, the same shape as the
 * API's (`services.ts`), which the sidecar does not import (it would pull in `db/`).
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
