/**
 * @module Builds the Services object from a Config: the database (migrated) and the FHIR service.
 * Nothing here is a module-level singleton, so tests build as many as they like.
 */
import type { Config } from "./config.ts";
import { type Db, openDb } from "./db/db.ts";
import { migrate } from "./db/migrate.ts";
import { loadDefinitions } from "./fhir/definitions.ts";
import { createFhirService, type FhirService } from "./fhir/service.ts";

export interface Services {
  config: Readonly<Config>;
  db: Db;
  fhir: FhirService;
  close(): Promise<void>;
}

export interface ServiceOverrides {
  /** A Postgres schema to use (tests use one each). */
  schema?: string;
}

export async function createServices(
  config: Readonly<Config>,
  overrides: ServiceOverrides = {},
): Promise<Services> {
  loadDefinitions();
  const db = await openDb({
    url: config.databaseUrl || undefined,
    dataDir: config.pgliteDir === "memory" ? undefined : config.pgliteDir,
    poolSize: config.databasePoolSize,
    schema: overrides.schema,
  });
  await migrate(db);
  const fhir = createFhirService({
    db,
    baseUrl: `${config.publicUrl}/fhir`,
    defaultCount: config.searchDefaultCount,
    maxCount: config.searchMaxCount,
  });
  return {
    config,
    db,
    fhir,
    close: () => db.close(),
  };
}
