/**
 * @module The CapabilityStatement at `/metadata`, built from what the server really supports:
 * the resource types, their interactions and every search parameter (standard and custom).
 */
import type { CapabilityStatement, CapabilityStatementRestResource } from "@medplum/fhirtypes";
import type { FhirContext } from "./context.ts";
import { loadDefinitions, searchParamsOf } from "./definitions.ts";
import { RESOURCE_TYPES } from "./resource_types.ts";

const SOFTWARE_VERSION = "0.1.0";

/** Built once per base URL and set of operations (the context is copied per request). */
const cache = new WeakMap<object, { base: string; statement: CapabilityStatement }>();
const NO_OPERATIONS = new Map();

export function capabilityStatement(ctx: FhirContext): CapabilityStatement {
  const key = ctx.operations ?? NO_OPERATIONS;
  const cached = cache.get(key);
  if (cached?.base === ctx.baseUrl) return cached.statement;
  const operations = declaredOperations(ctx);
  const { custom } = loadDefinitions();
  const customUrls = new Set(custom.map((sp) => sp.url));
  const resource: CapabilityStatementRestResource[] = RESOURCE_TYPES.map((type) => ({
    type,
    profile: `http://hl7.org/fhir/StructureDefinition/${type}`,
    interaction: [
      "read",
      "vread",
      "update",
      "patch",
      "delete",
      "history-instance",
      "history-type",
      "create",
      "search-type",
    ].map((code) => ({ code: code as "read" })),
    versioning: "versioned-update",
    readHistory: true,
    updateCreate: true,
    conditionalCreate: true,
    conditionalRead: "not-supported",
    conditionalUpdate: true,
    conditionalDelete: "single",
    referencePolicy: ["literal", "local"],
    ...(operations.get(type)?.length ? { operation: operations.get(type) } : {}),
    searchInclude: [...searchParamsOf(type).values()].filter((d) => d.type === "reference")
      .map((d) => `${type}:${d.code}`),
    searchRevInclude: revIncludesOf(type),
    searchParam: [
      { name: "_id", type: "token", definition: "http://hl7.org/fhir/SearchParameter/Resource-id" },
      {
        name: "_lastUpdated",
        type: "date",
        definition: "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
      },
      ...[...searchParamsOf(type).values()]
        .filter((d) => d.code !== "_id" && d.code !== "_lastUpdated")
        .map((d) => ({
          name: d.code,
          type: d.type,
          definition: d.resource.url,
          documentation: customUrls.has(d.resource.url)
            ? `Defined by this server: ${d.resource.description}`
            : undefined,
        })),
    ],
  }));
  if (ctx.audit) {
    // The audit trail (audit/search.ts): read and searched, written by the server only.
    const i = resource.findIndex((r) => r.type === "AuditEvent");
    if (i >= 0) resource[i] = AUDIT_EVENT;
  }
  const statement: CapabilityStatement = {
    resourceType: "CapabilityStatement",
    status: "active",
    date: new Date().toISOString(),
    publisher: "imaging-ai",
    kind: "instance",
    software: { name: "imaging-ai FHIR server", version: SOFTWARE_VERSION },
    implementation: { description: "Imaging AI service: FHIR R4 API", url: ctx.baseUrl },
    ...(ctx.instantiates?.length ? { instantiates: ctx.instantiates } : {}),
    fhirVersion: "4.0.1",
    format: ["application/fhir+json", "json"],
    patchFormat: ["application/json-patch+json"],
    rest: [{
      mode: "server",
      documentation:
        "Unknown search parameters are rejected with 400 (Prefer: handling=strict is the " +
        "default); send Prefer: handling=lenient to have them ignored. Paging uses opaque _cursor links.",
      ...(ctx.security
        ? {
          security: {
            cors: true,
            service: [{
              coding: [{
                system: "http://terminology.hl7.org/CodeSystem/restful-security-service",
                code: "SMART-on-FHIR",
              }],
              text: "OAuth 2.0 bearer tokens with SMART on FHIR scopes (v1 and v2)",
            }],
            description: "Every interaction but this CapabilityStatement needs a bearer token: " +
              "people and apps sign in with SMART App Launch (authorization code with PKCE, EHR " +
              "and standalone launch), systems use SMART Backend Services " +
              "(client_credentials with a private_key_jwt assertion). See " +
              ".well-known/smart-configuration.",
            extension: [{
              url: "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
              extension: [
                { url: "token", valueUri: ctx.security.token },
                ...(ctx.security.authorize
                  ? [{ url: "authorize", valueUri: ctx.security.authorize }]
                  : []),
                { url: "revoke", valueUri: ctx.security.revoke },
                ...(ctx.security.introspect
                  ? [{ url: "introspect", valueUri: ctx.security.introspect }]
                  : []),
              ],
            }],
          },
        }
        : {}),
      resource,
      interaction: [{ code: "transaction" }, { code: "batch" }, { code: "history-system" }],
      // `Patient/{id}/{type}` searches inside one patient's compartment.
      compartment: ["http://hl7.org/fhir/CompartmentDefinition/patient"],
      ...(operations.get("")?.length ? { operation: operations.get("") } : {}),
      searchParam: [
        {
          name: "_count",
          type: "number",
          documentation: "Page size (default and maximum set by the server)",
        },
        { name: "_sort", type: "string" },
        { name: "_total", type: "token", documentation: "none, estimate or accurate (default)" },
        { name: "_summary", type: "token" },
        { name: "_elements", type: "string" },
      ],
    }],
  };
  cache.set(key, { base: ctx.baseUrl, statement });
  return statement;
}

type Operation = NonNullable<CapabilityStatementRestResource["operation"]>[number];

/**
 * Every operation, by the type it is declared on ("" for the system level): those of the FHIR
 * dispatch (`ctx.operations`, on every type for `Resource/$name`) and those other routes serve.
 */
function declaredOperations(ctx: FhirContext): Map<string, Operation[]> {
  const out = new Map<string, Operation[]>();
  const add = (type: string, op: Operation) => {
    const list = out.get(type) ?? [];
    if (!list.some((o) => o.name === op.name)) list.push(op);
    out.set(type, list);
  };
  for (const [key, handler] of ctx.operations ?? []) {
    const slash = key.indexOf("/");
    const name = key.slice(slash + 1).replace(/^\$/, "");
    const op = {
      name,
      definition: handler.definition ?? `${ctx.baseUrl}/OperationDefinition/${name}`,
    };
    if (slash < 0) add("", op);
    else if (key.startsWith("Resource/")) { for (const t of RESOURCE_TYPES) add(t, op); }
    else add(key.slice(0, slash), op);
  }
  for (const d of ctx.declaredOperations ?? []) {
    const op = { name: d.name, definition: d.definition };
    if (!d.types) add("", op);
    else for (const t of d.types) add(t, op);
  }
  return out;
}

function revIncludesOf(type: string): string[] {
  const out: string[] = [];
  for (const source of RESOURCE_TYPES) {
    for (const d of searchParamsOf(source).values()) {
      if (d.type === "reference" && (d.resource.target ?? []).includes(type as never)) {
        out.push(`${source}:${d.code}`);
      }
    }
  }
  return out;
}

const auditParam = (name: string, type: "date" | "token" | "string" | "reference") => ({
  name,
  type,
  ...(name === "agent-name" || name === "address"
    ? {}
    : { definition: `http://hl7.org/fhir/SearchParameter/AuditEvent-${name}` }),
});

/** AuditEvent as the audit trail serves it. */
const AUDIT_EVENT: CapabilityStatementRestResource = {
  type: "AuditEvent",
  profile: "http://hl7.org/fhir/StructureDefinition/AuditEvent",
  documentation: "The server's audit trail: admins read and search it; it is written by the " +
    "server only. `agent` is `user/<id>` or `client/<id>`; sorted by date, newest first.",
  interaction: [{ code: "read" }, { code: "search-type" }],
  readHistory: false,
  updateCreate: false,
  conditionalCreate: false,
  conditionalUpdate: false,
  conditionalDelete: "not-supported",
  searchParam: [
    auditParam("date", "date"),
    auditParam("agent", "token"),
    auditParam("agent-name", "string"),
    auditParam("entity", "reference"),
    auditParam("patient", "reference"),
    auditParam("type", "token"),
    auditParam("subtype", "token"),
    auditParam("action", "token"),
    auditParam("outcome", "token"),
    auditParam("address", "string"),
  ],
};
