/**
 * @module The resource types this server stores. Adding a type is one line here: storage, search
 * parameters, validation, the CapabilityStatement and the routes all follow from this list.
 */
export const RESOURCE_TYPES = [
  "Patient",
  "ImagingStudy",
  "DiagnosticReport",
  "Observation",
  "Endpoint",
  "Device",
  "Task",
  "AuditEvent",
  "Subscription",
  "Communication",
  "DocumentReference",
] as const;

export type SupportedType = typeof RESOURCE_TYPES[number];

const supported: ReadonlySet<string> = new Set(RESOURCE_TYPES);

export function isSupportedType(type: string): type is SupportedType {
  return supported.has(type);
}
