/** @module The parsed form of a FHIR search: what the parser produces and the SQL builder reads. */
import type { SearchParamDef } from "../definitions.ts";

export type Prefix = "eq" | "ne" | "gt" | "lt" | "ge" | "le" | "sa" | "eb" | "ap";

export type Value =
  | { kind: "string"; text: string }
  | { kind: "token"; system?: string | null; code?: string }
  | { kind: "reference"; type?: string; id?: string; url?: string }
  | { kind: "date"; prefix: Prefix; lo: number; hi: number }
  | { kind: "number"; prefix: Prefix; value: string; half: string }
  | {
    kind: "quantity";
    prefix: Prefix;
    value: string;
    half: string;
    system?: string;
    unit?: string;
  }
  | { kind: "uri"; text: string }
  | { kind: "composite"; parts: Value[] };

/** One condition: a parameter with its OR-ed values (repeated parameters are AND-ed filters). */
export type Filter =
  | {
    kind: "param";
    type: string;
    def: SearchParamDef;
    modifier?: string;
    values: Value[];
    /** For `:missing`. */
    missing?: boolean;
  }
  | { kind: "id"; values: string[]; not?: boolean; missing?: boolean }
  | { kind: "lastUpdated"; values: Extract<Value, { kind: "date" }>[] }
  | { kind: "chain"; def: SearchParamDef; targets: { type: string; inner: Filter }[] }
  | { kind: "has"; sourceType: string; def: SearchParamDef; inner: Filter }
  | {
    /** Keeps the search inside one patient's compartment (a patient-bound token's searches). */
    kind: "compartment";
    type: string;
    patient: string;
    /** The compartment's search parameters of the type (`subject`, `performer`, …). */
    codes: string[];
    /** A Patient is in its own compartment by id. */
    self: boolean;
  }
  | {
    /** Any one of these groups (each AND-ed): the queries of SMART fine-grained scopes. */
    kind: "anyOf";
    groups: Filter[][];
  };

export interface SortKey {
  code: string;
  descending: boolean;
  def?: SearchParamDef;
}

export interface IncludeSpec {
  sourceType: string;
  code: string;
  def: SearchParamDef;
  targetType?: string;
  iterate: boolean;
}

export interface SearchRequest {
  type: string;
  filters: Filter[];
  sort: SortKey[];
  count: number;
  cursor?: Cursor;
  total: "none" | "estimate" | "accurate";
  summary?: "true" | "text" | "data" | "count" | "false";
  elements?: string[];
  include: IncludeSpec[];
  revinclude: IncludeSpec[];
  /** The parameters that were used, in canonical form, for the self link. */
  used: [string, string][];
}

/** A keyset position: the sort values and rid of a row, and the direction to read from it. */
export interface Cursor {
  values: (string | number | null)[];
  direction: "next" | "prev";
}
