/**
 * @module postgres.js 3.4.10 with the patch of PATCHES.md, for the import map's "postgres" entry:
 * the code from this folder (loaded as local modules, so no copy of it is made per run), the
 * types from the registry's declarations of the same version (type-only: never executed).
 */
import type PG from "npm:postgres@3.4.10";
import impl from "./src/index.js";

const postgres = impl as unknown as typeof PG;
export default postgres;
export type Sql = PG.Sql;
export type TransactionSql = PG.TransactionSql;
