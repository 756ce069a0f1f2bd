/** @module What FHIR operations need from their caller: the database and the server's settings. */
import type { Db } from "../db/db.ts";

export interface FhirContext {
  db: Db;
  /** The FHIR base URL as clients see it, e.g. https://imaging.example.org/fhir */
  baseUrl: string;
  defaultCount: number;
  maxCount: number;
}

/** `W/"3"` or `"3"` or `3` → `3`; undefined when absent. */
export function parseETag(value: string | null | undefined): string | undefined {
  if (!value) return undefined;
  const m = /^(?:W\/)?"?([^"]*)"?$/.exec(value.trim());
  return m ? m[1] : value;
}
