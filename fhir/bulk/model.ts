/**
 * @module The shapes of a Bulk Data `$export` job: what a kick-off resolved (`ExportPlan`: the
 * level, the types with the caller's reach on each, `_since`, `_typeFilter`), how far a worker got
 * (`ExportProgress`, the checkpoint a resumed job starts from) and the files it wrote; and how
 * the CapabilityStatement declares the operation.
 */
import type { DeclaredOperation } from "../context.ts";

export type ExportLevel = "system" | "patient" | "group";

/** One type to export, with how far the caller reaches it (resolved at kick-off). */
export interface TypePlan {
  type: string;
  /** Only this patient's compartment (a token bound to a patient). */
  patient?: string;
  /** Only what one of these fine-grained scope queries matches. */
  queries?: string[];
  /** `_typeFilter` queries of this type (one must match). */
  typeFilters?: string[];
}

export interface ExportPlan {
  level: ExportLevel;
  /** The Group of a Group-level export. */
  group?: string;
  /**
   * Patient and Group level: only the compartments of these patients (the Group's members, the
   * `patient` parameter); absent at Patient level: of every patient.
   */
  patients?: string[];
  /** `_since`: resources last updated after it. */
  since?: string;
  types: TypePlan[];
}

/** A file of the export. */
export interface OutputFile {
  type: string;
  /** The file's name (`Observation-2.ndjson`), under the job's folder in the object store. */
  name: string;
  count: number;
  bytes: number;
  /** A file of the manifest's `deleted` list (Bundles of DELETE entries), not of `output`. */
  deleted?: boolean;
}

/** A position in one type's scan: the last resource's `last_updated` (database text) and rid. */
export interface ScanKey {
  updated: string;
  rid: string;
}

/** How far a job got; saved with each renewal, so another replica can resume it. */
export interface ExportProgress {
  /** The types with anything in the snapshot, in order (decided when the job first runs). */
  types?: string[];
  /** The type being exported (an index into `types`). */
  index?: number;
  /** The current type's resources that match (counted when the type starts). */
  typeTotal?: number;
  /** The last resource of the current type in a file: a resumed job reads on from here. */
  after?: ScanKey;
  /** The current type's next file number. */
  part?: number;
  /** The current type's resources in files. */
  written?: number;
  /** The current type's resources read (files and the one being filled): X-Progress. */
  read?: number;
}

/** Where the object store keeps a job's files. */
export function exportPrefix(id: string): string {
  return `bulk/${id}/`;
}

/** The media type of the files. */
export const NDJSON = "application/fhir+ndjson";

/** `_outputFormat` values the server accepts (all meaning NDJSON). */
export const OUTPUT_FORMATS = new Set(["application/fhir+ndjson", "application/ndjson", "ndjson"]);

/** Bulk Data Access 2.0.0's `$export` at its three levels, for the CapabilityStatement. */
export const BULK_DATA_OPERATIONS: DeclaredOperation[] = [
  { name: "export", definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export" },
  {
    name: "export",
    definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
    types: ["Patient"],
  },
  {
    name: "export",
    definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
    types: ["Group"],
  },
];

/** The CapabilityStatement a server with `$export` instantiates. */
export const BULK_DATA_CAPABILITY = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data";
