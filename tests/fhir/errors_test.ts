// deno-lint-ignore-file no-explicit-any
import assert from "node:assert/strict";
import { backendTest, fhirJson, uniq } from "../_harness.ts";
import * as ops from "../../fhir/resource_ops.ts";
import { assertOutcome, create, link, search, tagged, tagQ } from "./_util.ts";

function expressions(oo: any): string[] {
  return (oo.issue ?? []).flatMap((i: any) => [...(i.expression ?? []), ...(i.location ?? [])]);
}

function assertExpression(oo: any, path: string): void {
  const all = expressions(oo);
  assert.ok(
    all.some((e) => e === path || e.startsWith(`${path}.`) || e.startsWith(`${path}[`)),
    `expected an issue at ${path}, got ${JSON.stringify(all)}`,
  );
}

backendTest("malformed JSON is 400 with an OperationOutcome", async (ctx) => {
  for (const body of ['{"resourceType": "Patient",', "not json", "[]", '"Patient"', "null", ""]) {
    const res = await fhirJson(ctx, "POST", "Patient", body);
    assert.equal(res.status, 400, `body ${JSON.stringify(body)}`);
    assertOutcome(res.body, JSON.stringify(body));
  }
});

backendTest("a body without resourceType is 400", async (ctx) => {
  const res = await fhirJson(ctx, "POST", "Patient", { name: [{ family: "x" }] });
  assert.equal(res.status, 400);
  assertOutcome(res.body);
});

backendTest("an invalid code in a required binding is 400 at Observation.status", async (ctx) => {
  const res = await fhirJson(ctx, "POST", "Observation", {
    resourceType: "Observation",
    status: "bogus",
    code: { text: "x" },
  });
  assert.equal(res.status, 400);
  assertOutcome(res.body);
  assertExpression(res.body, "Observation.status");
});

backendTest("a missing required element is 400 at its path", async (ctx) => {
  const res = await fhirJson(ctx, "POST", "Observation", {
    resourceType: "Observation",
    status: "final",
  });
  assert.equal(res.status, 400);
  assertOutcome(res.body);
  assertExpression(res.body, "Observation.code");
});

backendTest("a malformed primitive is 400 at its path", async (ctx) => {
  const res = await fhirJson(ctx, "POST", "Patient", {
    resourceType: "Patient",
    birthDate: "06/05/1974",
  });
  assert.equal(res.status, 400);
  assertOutcome(res.body);
  assertExpression(res.body, "Patient.birthDate");
  const bool = await fhirJson(ctx, "POST", "Patient", { resourceType: "Patient", active: "yes" });
  assert.equal(bool.status, 400);
  assertExpression(bool.body, "Patient.active");
});

backendTest(
  "an update is validated too: invalid status is 400 and nothing changes",
  async (ctx) => {
    const u = uniq();
    const obs = await create(ctx, {
      resourceType: "Observation",
      meta: tagged(u),
      status: "final",
      code: { text: u },
    });
    const res = await fhirJson(ctx, "PUT", `Observation/${obs.id}`, { ...obs, status: "bogus" });
    assert.equal(res.status, 400);
    assertExpression(res.body, "Observation.status");
    const read = await fhirJson(ctx, "GET", `Observation/${obs.id}`);
    assert.equal(read.body.meta.versionId, "1");
  },
);

backendTest("ids that do not match [A-Za-z0-9\\-.]{1,64} are 400 on update", async (ctx) => {
  for (const id of ["a_b", "a".repeat(65), "a%20b", "é"]) {
    const res = await fhirJson(ctx, "PUT", `Patient/${id}`, {
      resourceType: "Patient",
      id: decodeURIComponent(id),
    });
    assert.equal(res.status, 400, `id ${id}`);
    assertOutcome(res.body);
  }
  const ok = "A-z.0-" + uniq();
  const res = await fhirJson(ctx, "PUT", `Patient/${ok}`, { resourceType: "Patient", id: ok });
  assert.equal(res.status, 201);
  const max = "x".repeat(52) + uniq().slice(0, 12);
  assert.equal(max.length, 64);
  assert.equal(
    (await fhirJson(ctx, "PUT", `Patient/${max}`, { resourceType: "Patient", id: max })).status,
    201,
  );
});

backendTest(
  "an unknown or unsupported resource type is 404 with an OperationOutcome",
  async (ctx) => {
    for (const [method, path] of [["GET", "Foo/1"], ["GET", "Foo"], ["GET", "Parameters"]]) {
      const res = await fhirJson(ctx, method, path);
      assert.equal(res.status, 404, `${method} ${path}`);
      assertOutcome(res.body);
    }
    const post = await fhirJson(ctx, "POST", "Parameters", { resourceType: "Parameters" });
    assert.equal(post.status, 404);
    assert.match(JSON.stringify(post.body), /no RESTful endpoint/);
  },
);

backendTest("a wrong Content-Type is 415 with an OperationOutcome", async (ctx) => {
  const body = JSON.stringify({ resourceType: "Patient" });
  for (const type of ["text/plain", "application/xml", "application/x-www-form-urlencoded"]) {
    const res = await fhirJson(ctx, "POST", "Patient", body, { "content-type": type });
    assert.equal(res.status, 415, type);
    assertOutcome(res.body, type);
  }
  const created = await create(ctx, { resourceType: "Patient" });
  const patch = await fhirJson(ctx, "PATCH", `Patient/${created.id}`, [
    { op: "add", path: "/gender", value: "male" },
  ], { "content-type": "text/plain" });
  assert.equal(patch.status, 415);
});

backendTest("application/json and a charset parameter are accepted as JSON", async (ctx) => {
  const body = { resourceType: "Patient" };
  for (
    const type of [
      "application/json",
      "application/fhir+json; charset=utf-8",
      "application/fhir+json;fhirVersion=4.0",
    ]
  ) {
    const res = await fhirJson(ctx, "POST", "Patient", body, { "content-type": type });
    assert.equal(res.status, 201, type);
  }
});

backendTest(
  "an unknown search parameter is 400 by default and under handling=strict",
  async (ctx) => {
    const def = await fhirJson(ctx, "GET", "Patient?bogusparam=1");
    assert.equal(def.status, 400);
    assertOutcome(def.body);
    const strict = await fhirJson(ctx, "GET", "Patient?bogusparam=1", undefined, {
      prefer: "handling=strict",
    });
    assert.equal(strict.status, 400);
    assertOutcome(strict.body);
  },
);

backendTest(
  "Prefer: handling=lenient ignores an unknown search parameter and omits it from self",
  async (ctx) => {
    const u = uniq();
    const p = await create(ctx, { resourceType: "Patient", meta: tagged(u) });
    const b = await search(ctx, `Patient?${tagQ(u)}&bogusparam=1`, { prefer: "handling=lenient" });
    assert.deepEqual(b.entry.map((e: any) => e.resource.id), [p.id]);
    const self = link(b, "self");
    assert.ok(self, "self link");
    assert.ok(!self.includes("bogusparam"), self);
    assert.ok(decodeURIComponent(self).includes(u), self);
  },
);

backendTest("an id in the body differing from the URL on PUT is 400", async (ctx) => {
  const created = await create(ctx, { resourceType: "Patient" });
  const res = await fhirJson(ctx, "PUT", `Patient/${created.id}`, { ...created, id: uniq() });
  assert.equal(res.status, 400);
  assertOutcome(res.body);
});

backendTest("a resourceType differing from the URL is 400 on create and update", async (ctx) => {
  const c = await fhirJson(ctx, "POST", "Patient", {
    resourceType: "Observation",
    status: "final",
    code: { text: "x" },
  });
  assert.equal(c.status, 400);
  assertOutcome(c.body);
  const id = uniq();
  const u = await fhirJson(ctx, "PUT", `Patient/${id}`, {
    resourceType: "Observation",
    id,
    status: "final",
    code: { text: "x" },
  });
  assert.equal(u.status, 400);
  assertOutcome(u.body);
});

backendTest("malformed search values are 400, not 5xx", async (ctx) => {
  for (
    const q of [
      "Patient?birthdate=notadate",
      "Patient?birthdate=gt1974-13-45",
      "Observation?value-quantity=abc",
      "Observation?value-quantity=zz5",
      "Patient?_sort=bogusparam",
      "Patient?_lastUpdated=yesterday",
    ]
  ) {
    const res = await fhirJson(ctx, "GET", q);
    assert.equal(res.status, 400, `${q}: ${JSON.stringify(res.body)}`);
    assertOutcome(res.body, q);
  }
});

backendTest(
  "client errors never produce 5xx, and every 4xx carries an OperationOutcome",
  async (ctx) => {
    const probes: [string, string, unknown?, Record<string, string>?][] = [
      ["GET", "Patient/x/_history/notaversion"],
      ["GET", "Patient?_include=Bogus:thing"],
      ["GET", "Patient?_revinclude=Observation:bogus"],
      ["GET", "Observation?subject.bogus=1"],
      ["GET", "Patient?_has:Observation:patient:bogus=1"],
      ["GET", "Patient?name:bogusmodifier=x"],
      ["GET", "Patient?_count=-1"],
      ["GET", "Patient?_count=abc"],
      ["GET", "Observation?code-value-quantity=http://loinc.org|8480-6"],
      ["GET", "Observation?code-value-quantity=$$$"],
      ["GET", "Patient?birthdate=gt"],
      ["GET", "Patient?_id="],
      ["GET", "Observation?subject=Patient/"],
      ["GET", "_history?_since=notadate"],
      ["POST", "", { resourceType: "Bundle", type: "collection" }],
      ["POST", "", { resourceType: "Patient" }],
      ["POST", "", { resourceType: "Bundle", type: "transaction", entry: [{ request: {} }] }],
      ["PATCH", "Patient/nonexistent", [{ op: "bogus" }], {
        "content-type": "application/json-patch+json",
      }],
      ["DELETE", "Patient"],
      ["PUT", "Patient", { resourceType: "Patient" }],
      ["POST", "Patient/_search", "birthdate=notadate", {
        "content-type": "application/x-www-form-urlencoded",
      }],
      ["POST", "Patient", { resourceType: "Patient", name: "not-an-array-of-HumanName" }],
      ["POST", "Patient", { resourceType: "Patient", name: [{ family: ["x"] }] }],
      ["POST", "Patient", { resourceType: "Patient", extension: [{ url: 1 }] }],
    ];
    for (const [method, path, body, headers] of probes) {
      const res = await fhirJson(ctx, method, path, body, headers);
      assert.ok(res.status < 500, `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
      if (res.status >= 400) assertOutcome(res.body, `${method} ${path}`);
    }
  },
);

backendTest(
  "control characters and unpaired surrogates anywhere in a body are 400 at their path",
  async (ctx) => {
    const u = uniq();
    // @medplum/core checks string and markdown; uri, code, xhtml and property names are ours.
    const cases: [any, string][] = [
      [{ name: [{ family: "a\u0000b" }] }, "Patient.name[0].family"],
      [{ identifier: [{ system: "urn:x:\u0000", value: "1" }] }, "Patient.identifier[0].system"],
      [{ identifier: [{ system: "urn:x:\u0007", value: "1" }] }, "Patient.identifier[0].system"],
      [{ identifier: [{ type: { coding: [{ code: "a\u001fb" }] } }] }, "Patient.identifier[0]"],
      [{ extension: [{ url: "urn:x:\u0000", valueString: "v" }] }, "Patient.extension[0].url"],
      [
        {
          text: {
            status: "generated",
            div: '<div xmlns="http://www.w3.org/1999/xhtml">\u000b</div>',
          },
        },
        "Patient.text.div",
      ],
      [{ name: [{ family: "a\ud800b" }] }, "Patient.name[0].family"],
      [{ identifier: [{ system: "urn:x:\udc00", value: "1" }] }, "Patient.identifier[0].system"],
      [{ name: [{ ["fam\u0000ily"]: "x" }] }, "Patient.name[0]"],
    ];
    for (const [extra, path] of cases) {
      const body = { resourceType: "Patient", meta: tagged(u), ...extra };
      const res = await fhirJson(ctx, "POST", "Patient", body);
      assert.equal(res.status, 400, `${path}: ${JSON.stringify(res.body)}`);
      assertExpression(res.body, path);
    }
    // Tab, carriage return and line feed are allowed, as are other non-ASCII characters.
    await create(ctx, {
      resourceType: "Patient",
      meta: tagged(u),
      name: [{ text: "a\tb\r\nc \u007f\u0085 😀 \u202e" }],
    });
    assert.equal((await search(ctx, `Patient?${tagQ(u)}`)).entry.length, 1, "only the valid one");
  },
);

backendTest(
  "a search with a control character, an out-of-range number or a forged _cursor is 400 naming the parameter",
  async (ctx) => {
    const bad: [string, string][] = [
      ["Patient?name=a%00b", "name"],
      ["Patient?name%00=x", "name\u0000"],
      ["Patient?_id=%01", "_id"],
      ["Observation?subject:Patient.name=%00", "subject:Patient.name"],
      ["Patient?_has:Observation:subject:code=%1F", "_has:Observation:subject:code"],
      ["Observation?value-quantity=1e999999", "value-quantity"],
      ["Observation?value-quantity=1e-1001", "value-quantity"],
      ["Observation?code-value-quantity=x$1e2147483648", "code-value-quantity"],
      [`Observation?value-quantity=${"9".repeat(1001)}`, "value-quantity"],
      [`Patient?_sort=birthdate&_cursor=${btoa('[0,["\'",1]]')}`, "_cursor"],
      [`Patient?_sort=birthdate&_cursor=${btoa('[0,["2020-13-01 00:00:00+00",1]]')}`, "_cursor"],
      [`Patient?_sort=_id&_cursor=${btoa('[0,["a\\u0000b",1]]')}`, "_cursor"],
      [`Patient?_cursor=${btoa('[0,["x"]]')}`, "_cursor"],
      [`Patient?_cursor=${btoa("[0,[1,2]]")}`, "_cursor"],
    ];
    for (const [q, param] of bad) {
      const res = await fhirJson(ctx, "GET", q);
      assert.equal(res.status, 400, `${q}: ${JSON.stringify(res.body)}`);
      assertOutcome(res.body, q);
      assert.ok(expressions(res.body).includes(param), `${q}: ${JSON.stringify(res.body)}`);
    }
    // The edges still work: 1000 digits, exponents of ±1000, year 9999, a real cursor.
    for (
      const q of [
        `Observation?value-quantity=${"9".repeat(1000)}`,
        "Observation?value-quantity=1e1000",
        "Observation?value-quantity=gt1e-1000",
        "Patient?birthdate=ap9999",
        "Patient?_lastUpdated=le9999-12-31T23:59:59.999Z",
        "Patient?birthdate=ap0100",
      ]
    ) await search(ctx, q);
    const u = uniq();
    for (const birthDate of ["1970", "1980", "1990"]) {
      await create(ctx, { resourceType: "Patient", meta: tagged(u), birthDate });
    }
    const first = await search(ctx, `Patient?${tagQ(u)}&_sort=-birthdate&_count=1`);
    const next = link(first, "next")!;
    const page2 = await search(ctx, next.slice(next.indexOf("Patient?")));
    assert.equal(page2.entry[0].resource.birthDate, "1980");
  },
);

backendTest(
  "an empty reference value matches nothing, on every backend (no undefined SQL parameter)",
  async (ctx) => {
    for (
      const q of ["Observation?subject=", "Observation?subject=,,", "Observation?subject:Patient="]
    ) {
      assert.equal((await search(ctx, q)).entry?.length ?? 0, 0, q);
    }
  },
);

backendTest(
  "a path id no resource can have is 404 before the database (U+0000 included); a conditional with U+0000 is 400",
  async (ctx) => {
    // Called directly: a path with U+0000 would also reach the audit trail (see tests/security).
    const db = ctx.services.db;
    const fhir = ctx.services.fhir.context;
    const status = async (p: Promise<unknown>) => {
      try {
        await p;
        return 200;
      } catch (e) {
        return (e as { status?: number }).status ?? 500;
      }
    };
    const p = await create(ctx, { resourceType: "Patient", meta: tagged(uniq()) });
    for (const id of ["a\u0000b", "\u0000", "'", "x".repeat(65)]) {
      assert.equal(await status(ops.read(db, "Patient", id)), 404, JSON.stringify(id));
      assert.equal(await status(ops.vread(db, "Patient", id, "1")), 404, JSON.stringify(id));
      assert.equal(
        await status(db.transaction((tx) => ops.remove(fhir, tx, "Patient", id))),
        404,
        JSON.stringify(id),
      );
      assert.equal(
        await status(db.transaction((tx) => ops.patch(fhir, tx, "Patient", id, []))),
        404,
        JSON.stringify(id),
      );
    }
    for (const v of ["99999999999999999999", "2147483648", "0", "1\u0000"]) {
      assert.equal(await status(ops.vread(db, "Patient", p.id, v)), 404, v);
    }
    assert.equal(
      await status(
        db.transaction((tx) =>
          ops.matchCondition(fhir, tx, "Patient", "identifier=a\u0000b", "If-None-Exist", "create")
        ),
      ),
      400,
    );
    const tx = await fhirJson(ctx, "POST", "", {
      resourceType: "Bundle",
      type: "transaction",
      entry: [{
        request: { method: "POST", url: "Patient", ifNoneExist: "identifier=a\u0000b" },
        resource: { resourceType: "Patient" },
      }],
    });
    assert.equal(tx.status, 400, JSON.stringify(tx.body));
  },
);
