/**
 * @module Tests of `auth/scopes.ts`: SMART v1 and v2 scope strings parsed into grants, other
 * scopes and invalid tokens; `permits` for each interaction (fine-grained scopes grant nothing);
 * `scopeCovers` and `narrowScopes` (wildcards, contexts that never cover one another, refusals).
 */
import assert from "node:assert/strict";
import {
  type Interaction,
  narrowScopes,
  parseScopes,
  permits,
  scopeCovers,
  type ScopeGrant,
} from "../../auth/scopes.ts";

const LAB = "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory";
const ALL: Interaction[] = ["create", "read", "update", "delete", "search"];

/** The one grant of a single-scope string (asserting it parsed as one). */
function grant(scope: string): ScopeGrant {
  const p = parseScopes(scope);
  assert.equal(p.grants.length, 1, `${scope}: ${JSON.stringify(p)}`);
  return p.grants[0];
}

Deno.test("parseScopes() turns v1 and v2 resource scopes into interactions", () => {
  const table: [string, string, string, Interaction[], string?][] = [
    ["patient/Observation.read", "patient", "Observation", ["read", "search"]],
    ["user/Patient.write", "user", "Patient", ["create", "update", "delete"]],
    ["system/*.*", "system", "*", ALL],
    ["patient/Observation.*", "patient", "Observation", ALL],
    ["user/*.read", "user", "*", ["read", "search"]],
    ["patient/Observation.rs", "patient", "Observation", ["read", "search"]],
    ["user/Task.cruds", "user", "Task", ALL],
    ["system/DiagnosticReport.cu", "system", "DiagnosticReport", ["create", "update"]],
    ["user/Observation.r", "user", "Observation", ["read"]],
    ["user/Observation.s", "user", "Observation", ["search"]],
    ["user/Observation.d", "user", "Observation", ["delete"]],
    ["user/Observation.crs", "user", "Observation", ["create", "read", "search"]],
    ["system/*.rs", "system", "*", ["read", "search"]],
    ["user/AB12.c", "user", "AB12", ["create"]],
    [
      `patient/Observation.rs?${LAB}`,
      "patient",
      "Observation",
      ["read", "search"],
      LAB,
    ],
  ];
  for (const [raw, context, resourceType, interactions, query] of table) {
    const g = grant(raw);
    assert.equal(g.raw, raw);
    assert.equal(g.context, context, raw);
    assert.equal(g.resourceType, resourceType, raw);
    assert.deepEqual([...g.interactions].sort(), [...interactions].sort(), raw);
    assert.equal(g.query, query, raw);
    assert.equal("query" in g, query !== undefined, `${raw}: no query member without a query`);
  }
});

Deno.test("parseScopes() puts malformed resource scopes in invalid", () => {
  const invalid = [
    "patient/Observation.sr", // out of cruds order
    "patient/Observation.rr", // a letter twice
    "patient/Observation.rx", // unknown letter
    "patient/Observation.scrud",
    "patient/Observation.", // no permissions
    "patient/Observation", // no dot
    "patient/.read", // no type
    "patient/observation.read", // lower-case type
    "patient/Obs-ervation.read",
    "patient/Observation.Read",
    "patient/Observation.READ",
    "patient/Observation.read?category=x", // v1 has no query
    "patient/Observation.rs?", // empty query
    "patient/Observation.rs.x",
    "patient/**.read",
    "user/*.readwrite",
    "system/Observation.write.read",
    "user/Pat\u00e9ient.read", // not a scope-token character
    'openid"', // '"' is not a scope-token character
    "back\\slash",
  ];
  for (const token of invalid) {
    const p = parseScopes(token);
    assert.deepEqual(p, { grants: [], other: [], invalid: [token] }, token);
  }
});

Deno.test("parseScopes() keeps non-resource scopes in other", () => {
  const scope =
    "openid fhirUser profile launch launch/patient launch/encounter offline_access online_access";
  const p = parseScopes(scope);
  assert.deepEqual(p.other, scope.split(" "));
  assert.deepEqual(p.grants, []);
  assert.deepEqual(p.invalid, []);
  // Looks like a resource scope, but its context is not one of the three: not a grant.
  assert.deepEqual(parseScopes("Patient/Observation.read").other, ["Patient/Observation.read"]);
  assert.deepEqual(parseScopes("Patient/Observation.read").grants, []);
});

Deno.test("parseScopes() splits on any whitespace and counts duplicates once", () => {
  const p = parseScopes(
    "  openid\tpatient/Observation.rs \n\r patient/Observation.rs  openid  user/x.read ",
  );
  assert.deepEqual(p.grants.map((g) => g.raw), ["patient/Observation.rs"]);
  assert.deepEqual(p.other, ["openid"]);
  assert.deepEqual(p.invalid, ["user/x.read"]);
  assert.deepEqual(parseScopes(""), { grants: [], other: [], invalid: [] });
  assert.deepEqual(parseScopes(" \t\n "), { grants: [], other: [], invalid: [] });
  // Two spellings of the same permission stay two grants.
  assert.equal(parseScopes("user/Task.read user/Task.rs").grants.length, 2);
});

Deno.test("permits() answers the contexts allowing each interaction", () => {
  const s = parseScopes("patient/Observation.read user/Observation.cu system/*.d openid");
  assert.deepEqual(permits(s, "Observation", "read"), ["patient"]);
  assert.deepEqual(permits(s, "Observation", "search"), ["patient"]);
  assert.deepEqual(permits(s, "Observation", "create"), ["user"]);
  assert.deepEqual(permits(s, "Observation", "update"), ["user"]);
  assert.deepEqual(permits(s, "Observation", "delete"), ["system"]);
  assert.deepEqual(permits(s, "Patient", "delete"), ["system"]);
  assert.deepEqual(permits(s, "Patient", "read"), []);
  assert.deepEqual(permits(s, "Patient", "create"), []);

  const v1 = parseScopes("user/Patient.write");
  for (const i of ALL) {
    const expected = i === "read" || i === "search" ? [] : ["user"];
    assert.deepEqual(permits(v1, "Patient", i), expected, i);
  }
  const star = parseScopes("system/*.*");
  for (const i of ALL) assert.deepEqual(permits(star, "ImagingStudy", i), ["system"], i);

  // Every context once, in patient, user, system order, whatever the grant order.
  const many = parseScopes("system/Task.rs user/*.r patient/Task.read user/Task.rs");
  assert.deepEqual(permits(many, "Task", "read"), ["patient", "user", "system"]);
  assert.deepEqual(permits(many, "Task", "search"), ["patient", "user", "system"]);
  assert.deepEqual(permits(many, "Device", "read"), ["user"]);
  // Exact type match: no prefix or case folding.
  assert.deepEqual(permits(parseScopes("user/Observation.rs"), "ObservationX", "read"), []);
  assert.deepEqual(permits(parseScopes("user/Observation.rs"), "observation", "read"), []);
});

Deno.test("permits() ignores fine-grained (query) scopes and invalid tokens", () => {
  const s = parseScopes("patient/Observation.rs?category=laboratory user/Patient.xx");
  assert.equal(s.grants.length, 1);
  assert.deepEqual(permits(s, "Observation", "read"), []);
  assert.deepEqual(permits(s, "Observation", "search"), []);
  assert.deepEqual(permits(s, "Patient", "read"), []);
  const both = parseScopes("patient/Observation.rs?category=laboratory patient/Observation.r");
  assert.deepEqual(permits(both, "Observation", "read"), ["patient"]);
  assert.deepEqual(permits(both, "Observation", "search"), []);
});

Deno.test("scopeCovers() needs the same context, type (or *) and more interactions", () => {
  const cases: [string, string, boolean][] = [
    ["system/*.read", "system/Observation.rs", true],
    ["system/*.read", "system/Observation.read", true],
    ["system/Observation.read", "system/*.read", false],
    ["system/*.rs", "system/*.read", true],
    ["system/Observation.cruds", "system/Observation.*", true],
    ["system/Observation.*", "system/Observation.cruds", true],
    ["system/Observation.write", "system/Observation.cud", true],
    ["system/Observation.write", "system/Observation.cuds", false],
    ["system/Observation.rs", "system/Observation.cruds", false],
    ["system/Observation.rs", "system/Patient.rs", false],
    ["system/*.*", "patient/Observation.r", false],
    ["patient/*.*", "user/Observation.r", false],
    ["user/*.*", "patient/Observation.r", false],
    ["user/*.*", "system/Observation.r", false],
    ["patient/Observation.rs", "patient/Observation.rs?category=laboratory", true],
    ["patient/Observation.rs?category=laboratory", "patient/Observation.rs", false],
    [
      "patient/Observation.rs?category=laboratory",
      "patient/Observation.r?category=laboratory",
      true,
    ],
    [
      "patient/Observation.rs?category=laboratory",
      "patient/Observation.r?category=vital-signs",
      false,
    ],
  ];
  for (const [outer, inner, expected] of cases) {
    assert.equal(scopeCovers(grant(outer), grant(inner)), expected, `${outer} ⊇ ${inner}`);
  }
});

Deno.test("narrowScopes() keeps covered resource scopes and registered other scopes", () => {
  assert.deepEqual(narrowScopes("system/Observation.rs", "system/*.read"), {
    granted: "system/Observation.rs",
    refused: [],
  });
  assert.deepEqual(narrowScopes("system/*.read", "system/Observation.read"), {
    granted: "",
    refused: ["system/*.read"],
  });
  assert.deepEqual(
    narrowScopes(
      "patient/Observation.rs user/Observation.rs system/Observation.rs system/Task.cu",
      "user/*.cruds",
    ),
    {
      granted: "user/Observation.rs",
      refused: ["patient/Observation.rs", "system/Observation.rs", "system/Task.cu"],
    },
  );
  assert.deepEqual(narrowScopes("patient/*.rs", "patient/*.r patient/*.s"), {
    granted: "",
    refused: ["patient/*.rs"], // refused whole: no single registered scope covers it
  });
});

Deno.test("narrowScopes() refuses unregistered other scopes and invalid tokens, in order", () => {
  const r = narrowScopes(
    "openid  system/Task.rus launch/patient fhirUser system/Task.rus system/Task.xyz openid",
    "system/Task.cruds openid fhirUser",
  );
  assert.equal(r.granted, "openid system/Task.rus fhirUser");
  assert.deepEqual(r.refused, ["launch/patient", "system/Task.xyz"]);
  assert.deepEqual(narrowScopes("", "system/*.*"), { granted: "", refused: [] });
  assert.deepEqual(narrowScopes("system/Patient.rs", ""), {
    granted: "",
    refused: ["system/Patient.rs"],
  });
  // An invalid registered token covers nothing.
  assert.deepEqual(narrowScopes("system/Patient.rs", "system/*.sr"), {
    granted: "",
    refused: ["system/Patient.rs"],
  });
});
