/**
 * @module How a FHIR request is described in its AuditEvent: operations at the system, type and
 * instance level are `operation`s of what they act on, and only a Patient's own id names the
 * patient (never `$export` or `_search`).
 */
import assert from "node:assert/strict";
import { describeRequest } from "../../audit/rest.ts";

Deno.test("operations at each level are described as operations", () => {
  const system = describeRequest("GET", "/fhir/$export", "_type=Patient");
  assert.equal(system.subtype, "operation");
  assert.equal(system.entity, "$export");
  assert.equal(system.patient, undefined);

  const status = describeRequest("GET", "/fhir/$export-status/abc", "");
  assert.equal(status.subtype, "operation");
  assert.equal(status.entity, "$export-status");

  const type = describeRequest("GET", "/fhir/Patient/$export", "");
  assert.equal(type.subtype, "operation");
  assert.equal(type.entity, "Patient");
  assert.equal(type.patient, undefined);

  const instance = describeRequest("GET", "/fhir/Patient/p1/$everything", "");
  assert.equal(instance.subtype, "operation");
  assert.equal(instance.entity, "Patient/p1");
  assert.equal(instance.patient, "Patient/p1");

  const compartment = describeRequest("GET", "/fhir/Patient/p1/Observation", "code=x");
  assert.equal(compartment.subtype, "search-type");
  assert.equal(compartment.entity, "Observation");
  assert.equal(compartment.patient, "Patient/p1");
  assert.equal(compartment.query, "code=x");

  const read = describeRequest("GET", "/fhir/Patient/p1", "");
  assert.equal(read.subtype, "read");
});
