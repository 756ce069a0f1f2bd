// deno-lint-ignore-file no-explicit-any
/**
 * @module Injection (security) in FHIR JSON bodies: NUL, control characters and lone surrogates in
 * a string, code, uri, extension url, xhtml, date, id or key, and 1 MB+ strings, sent by create and
 * update, and NUL in a transaction, a JSON Patch and the criteria of conditional interactions.
 * Proves that each is a 400 (with an OperationOutcome) and stores or changes nothing; a date in
 * year 9999 is stored, indexed and found.
 */
import assert from "node:assert/strict";
import { backendTest, fhirJson, uniq } from "../_harness.ts";
import { assertOutcome, create, searchIds, tagged, tagQ } from "../fhir/_util.ts";
import { assertNoFailures, enc, type Probe, sweep } from "./_injection.ts";

backendTest(
  "injection: a FHIR body with NUL, control characters, lone surrogates or a 1 MB+ string is a 400 and stores nothing",
  async (ctx) => {
    const u = uniq("body");
    const patient = (marker: string, extra: Record<string, unknown>) => ({
      resourceType: "Patient",
      meta: tagged(u),
      identifier: [{ system: "urn:test:injection", value: marker }],
      ...extra,
    });
    // Each case puts the hostile string where a different FHIR type is validated.
    const cases: [string, (s: string) => Record<string, unknown>][] = [
      ["string", (s) => ({ name: [{ family: s }] })],
      [
        "code",
        (s) => ({ identifier: [{ system: "urn:x", value: "1", type: { coding: [{ code: s }] } }] }),
      ],
      ["uri", (s) => ({ identifier: [{ system: `urn:x:${s}`, value: "1" }] })],
      ["extension url", (s) => ({ extension: [{ url: `urn:x:${s}`, valueString: "v" }] })],
      [
        "xhtml",
        (s) => ({
          text: {
            status: "generated",
            div: `<div xmlns="http://www.w3.org/1999/xhtml">${s}</div>`,
          },
        }),
      ],
      ["date", (s) => ({ birthDate: `1970-01-01${s}` })],
      ["id", (s) => ({ id: `x${s}` })],
      ["key", (s) => ({ [`name${s}`]: [{ family: "x" }] })],
    ];
    const hostile: [string, string][] = [
      ["NUL", "a\u0000b"],
      ["a lone NUL", "\u0000"],
      ["control characters", "a\u0001\u0007\u001bb"],
      ["a vertical tab", "a\u000bb"],
      ["a lone high surrogate", "a\ud800b"],
      ["a lone low surrogate", "a\udc00b"],
    ];
    const probes: Probe[] = [];
    const markers: string[] = [];
    for (const [where, place] of cases) {
      for (const [what, s] of hostile) {
        const marker = uniq("m");
        markers.push(marker);
        const body = JSON.stringify(patient(marker, place(s)));
        const label = `${what} in ${where}`;
        // (A create ignores the id of its body: only PUT tries the id.)
        if (where !== "id") {
          probes.push({
            label: `POST Patient with ${label}`,
            kind: "fhir",
            run: () =>
              ctx.fetch("Patient", {
                method: "POST",
                headers: {
                  "content-type": "application/fhir+json",
                  accept: "application/fhir+json",
                },
                body,
              }),
          });
        }
        const id = uniq("id");
        probes.push({
          label: `PUT Patient/${id} with ${label}`,
          kind: "fhir",
          run: () =>
            ctx.fetch(`Patient/${id}`, {
              method: "PUT",
              headers: { "content-type": "application/fhir+json", accept: "application/fhir+json" },
              body: JSON.stringify({ id, ...patient(marker, place(s)) }),
            }),
        });
      }
    }
    // 1 MB+ strings: in a string, a uri and a code.
    const big = "b".repeat(1024 * 1024 + 1);
    for (const [where, place] of cases.slice(0, 3)) {
      const marker = uniq("m");
      markers.push(marker);
      const body = JSON.stringify(patient(marker, place(big)));
      probes.push({
        label: `POST Patient with a 1 MB+ ${where}`,
        kind: "fhir",
        run: () =>
          ctx.fetch("Patient", {
            method: "POST",
            headers: { "content-type": "application/fhir+json", accept: "application/fhir+json" },
            body,
          }),
      });
    }
    const statuses = new Map<string, number>();
    const wrapped = probes.map((p) => ({
      ...p,
      run: async () => {
        const res = await p.run();
        statuses.set(p.label, res.status);
        return res;
      },
    }));
    const failures = await sweep(wrapped);
    console.log(`[${ctx.backend}] FHIR bodies: ${probes.length} requests`);
    assertNoFailures(failures, probes.length, "hostile bodies");
    const accepted = [...statuses].filter(([, s]) => s !== 400);
    assert.deepEqual(accepted, [], "every hostile body is a 400");

    // A transaction and a JSON Patch carrying NUL: 400, nothing stored or changed.
    const marker = uniq("m");
    markers.push(marker);
    const tx = await fhirJson(ctx, "POST", "", {
      resourceType: "Bundle",
      type: "transaction",
      entry: [{
        request: { method: "POST", url: "Patient" },
        resource: patient(marker, { name: [{ family: "ok" }] }),
      }, {
        request: { method: "POST", url: "Patient" },
        resource: patient(marker, { name: [{ family: "a\u0000b" }] }),
      }],
    });
    assert.equal(tx.status, 400, JSON.stringify(tx.body));
    assertOutcome(tx.body);
    const good = await create(ctx, patient(uniq("m"), { name: [{ family: "Good" }] }));
    const patch = await ctx.fetch(`Patient/${good.id}`, {
      method: "PATCH",
      headers: { "content-type": "application/json-patch+json", accept: "application/fhir+json" },
      body: JSON.stringify([{ op: "add", path: "/name/0/given", value: ["a\u0000b"] }]),
    });
    assert.equal(patch.status, 400, await patch.text());
    const reread = await fhirJson(ctx, "GET", `Patient/${good.id}`);
    assert.deepEqual(reread.body, good, "the patched Patient is unchanged");

    // Conditional interactions whose criteria carry NUL: 400 (the search parser), nothing written.
    const condMarker = uniq("m");
    const cond = await fhirJson(ctx, "POST", "Patient", patient(condMarker, {}), {
      "if-none-exist": `identifier=urn:test:injection|${condMarker}`,
    });
    assert.equal(cond.status, 201, "a plain If-None-Exist still works");
    const conditional: [string, string, unknown, Record<string, string>][] = [
      [
        "PUT",
        `Patient?identifier=${enc("urn:test:injection|a\u0000b")}`,
        patient(condMarker, {}),
        {},
      ],
      ["DELETE", `Patient?identifier=${enc("a\u0000b")}`, undefined, {}],
      ["POST", "", {
        resourceType: "Bundle",
        type: "transaction",
        entry: [{
          request: { method: "POST", url: "Patient", ifNoneExist: "identifier=a\u0000b" },
          resource: patient(condMarker, {}),
        }],
      }, {}],
      ["POST", "", {
        resourceType: "Bundle",
        type: "batch",
        entry: [{ request: { method: "GET", url: `Patient?name=a\u0000b&_id=${good.id}` } }],
      }, {}],
    ];
    for (const [method, path, body, headers] of conditional) {
      const res = await fhirJson(ctx, method, path, body, headers);
      assert.ok(res.status < 500, `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
      if (method === "POST" && (body as any).type === "batch") {
        assert.equal(res.body.entry[0].response.status.slice(0, 3), "400");
      } else assert.equal(res.status, 400, `${method} ${path}: ${JSON.stringify(res.body)}`);
    }
    const same = await fhirJson(ctx, "GET", `Patient/${cond.body.id}`);
    assert.equal(same.body.meta.versionId, "1", "the If-None-Exist Patient is unchanged");

    // Year 9999 (its upper bound is 10000-01-01, past 4-digit years): stored, indexed, found.
    const far = await create(ctx, patient(uniq("m"), { birthDate: "9999-12-31" }));
    for (
      const q of ["9999-12-31", "9999", "ap9999", "ge9999-12-31", "gt9999-12-30", "sa9999-12-30"]
    ) {
      assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&birthdate=${q}`), [far.id], q);
    }
    assert.deepEqual(await searchIds(ctx, `Patient?${tagQ(u)}&birthdate=lt9999`), [], "lt9999");

    for (const m of markers) {
      const found = await fhirJson(
        ctx,
        "GET",
        `Patient?identifier=${enc(`urn:test:injection|${m}`)}&_summary=count`,
      );
      assert.equal(found.body.total, 0, `nothing stored for ${m}`);
    }
    assert.deepEqual(
      await searchIds(ctx, `Patient?${tagQ(u)}`),
      [good.id, cond.body.id, far.id].sort(),
    );
  },
);
