/**
 * @module The web UI's pure helpers: routing, the worklist's query and rows, findings and
 * reviews from FHIR, STOW responses, multipart frames, event streams, window/level, slice order.
 */
import assert from "node:assert/strict";
import { matchRoute } from "../../static/lib/routes.ts";
import {
  filterFromSearch,
  filterToSearch,
  worklistQuery,
} from "../../static/lib/worklist_query.ts";
import { aiStatusOf, studyRows, taskState } from "../../static/lib/study_rows.ts";
import { findingsOf, locationOf, parseBox } from "../../static/lib/findings.ts";
import { reviewObservation, reviewOf, reviewsByFinding } from "../../static/lib/review.ts";
import { parseStowResponse } from "../../static/lib/stow_result.ts";
import { boundaryOf, parseMultipart } from "../../static/lib/multipart.ts";
import { SseParser } from "../../static/lib/sse.ts";
import { applyTable, dragWindow, windowTable } from "../../static/lib/window_level.ts";
import { sliceIndexMapper, sliceInfo, sortSlices } from "../../static/lib/series.ts";
import { formatBytes, formatDate, humanName, probabilityColor } from "../../static/lib/format.ts";
import { place, zoomAbout } from "../../static/lib/view_transform.ts";
import { isUiPath } from "../../routes/ui.ts";
import { fitLabel, labelColumnWidth } from "../../static/lib/chart_labels.ts";

Deno.test("matchRoute() names the page of each client path", () => {
  assert.deepEqual(matchRoute("/"), { name: "worklist" });
  assert.deepEqual(matchRoute("/studies/abc-1"), { name: "study", id: "abc-1" });
  assert.deepEqual(matchRoute("/studies/abc-1/report/"), { name: "report", id: "abc-1" });
  assert.deepEqual(matchRoute("/patients/p1"), { name: "patient", id: "p1" });
  assert.deepEqual(matchRoute("/nowhere"), { name: "not-found" });
});

Deno.test("isUiPath() serves the shell for client routes and never an API prefix", () => {
  for (const p of ["/", "/login", "/upload", "/console", "/studies/x", "/studies/x/report"]) {
    assert.ok(isUiPath(p), p);
  }
  assert.ok(isUiPath("/assets/app.0123abcd.js"));
  for (
    const p of [
      "/fhir",
      "/fhir/Patient",
      "/dicomweb/studies",
      "/auth/me",
      "/admin/stats",
      "/metrics",
      "/health",
      "/uploads/nifti",
      "/reports/x/findings.json",
      "/events",
      "/.well-known/jwks.json",
      "/assets/../x",
    ]
  ) assert.ok(!isUiPath(p), p);
});

Deno.test("worklistQuery() sorts newest first, includes what the rows need, maps filters", () => {
  const q = worklistQuery({
    name: "doe",
    patientId: "MRN1",
    from: "2020-01-01",
    to: "2020-12-31",
    status: "done",
  });
  const params = new URLSearchParams(q.split("?")[1]);
  assert.equal(params.get("_sort"), "-started");
  assert.deepEqual(params.getAll("_revinclude"), ["Task:focus", "DiagnosticReport:imaging-study"]);
  assert.equal(params.get("patient.name"), "doe");
  assert.equal(params.get("patient.identifier"), "MRN1");
  assert.deepEqual(params.getAll("started"), ["ge2020-01-01", "le2020-12-31"]);
  assert.equal(params.get("_has:Task:focus:status"), "completed");
  const f = { name: "a b", status: "failed" as const };
  assert.deepEqual(filterFromSearch(new URLSearchParams(filterToSearch(f).slice(1))), {
    name: "a b",
    patientId: "",
    from: "",
    to: "",
    status: "failed",
  });
});

const study = (id: string) => ({
  resourceType: "ImagingStudy",
  id,
  started: "2020-04-16",
  subject: { reference: "Patient/p1" },
  modality: [{ code: "CT" }],
  description: "CT CHEST",
});

Deno.test("studyRows() joins patients, the latest Task and its report", () => {
  const rows = studyRows({
    resourceType: "Bundle",
    type: "searchset",
    entry: [
      { resource: study("s1"), search: { mode: "match" } },
      { resource: study("s2"), search: { mode: "match" } },
      {
        resource: {
          resourceType: "Patient",
          id: "p1",
          name: [{ family: "DOE", given: ["Jo"] }],
          identifier: [{ value: "MRN1" }],
        },
        search: { mode: "include" },
      },
      {
        resource: {
          resourceType: "Task",
          id: "t0",
          status: "failed",
          focus: { reference: "ImagingStudy/s1" },
          meta: { lastUpdated: "2024-01-01" },
        },
        search: { mode: "include" },
      },
      {
        resource: {
          resourceType: "Task",
          id: "t1",
          status: "completed",
          focus: { reference: "ImagingStudy/s1" },
          meta: { lastUpdated: "2024-02-01" },
          output: [{ valueReference: { reference: "DiagnosticReport/r1" } }],
        },
        search: { mode: "include" },
      },
      {
        resource: {
          resourceType: "DiagnosticReport",
          id: "r1",
          imagingStudy: [{ reference: "ImagingStudy/s1" }],
          result: [{ reference: "Observation/a" }, { reference: "Observation/b" }, {
            reference: "Observation/c",
          }],
          conclusionCode: [{ coding: [{ code: "786838002" }] }],
        },
        search: { mode: "include" },
      },
      {
        resource: {
          resourceType: "Task",
          id: "t2",
          status: "in-progress",
          focus: { reference: "ImagingStudy/s2" },
        },
        search: { mode: "include" },
      },
    ],
  });
  assert.equal(rows.length, 2);
  assert.equal(rows[0].patientName, "DOE, Jo");
  assert.equal(rows[0].patientMrn, "MRN1");
  assert.deepEqual(rows[0].ai, { state: "done", taskId: "t1", reportId: "r1", findings: 2 });
  assert.equal(rows[0].decision, "positive");
  assert.equal(rows[1].ai.state, "running");
  assert.equal(rows[1].decision, undefined);
  assert.equal(taskState("accepted"), "queued");
  assert.equal(taskState("cancelled"), "failed");
  assert.deepEqual(aiStatusOf([], []), { state: "none" });
});

const M = "urn:imaging-ai:measure";
const comp = (code: string, v: Record<string, unknown>) => ({
  code: { coding: [{ system: M, code }] },
  ...v,
});

Deno.test("findingsOf() reads size, probability, centre and box; skips the study decision", () => {
  const report = {
    resourceType: "DiagnosticReport",
    result: [{ reference: "Observation/d" }, { reference: "Observation/f" }],
  };
  const obs = [
    {
      resourceType: "Observation",
      id: "d",
      code: { coding: [{ system: M, code: "study-decision" }] },
      valueBoolean: true,
    },
    {
      resourceType: "Observation",
      id: "f",
      code: { text: "Pulmonary nodule" },
      valueQuantity: { value: 892.5 },
      note: [{ text: "Finding 1 of 1: 13.1 mm, 892.5 mm³, left lower zone. Series 1.2." }],
      component: [
        comp("probability", { valueQuantity: { value: 0.97 } }),
        comp("longest-diameter", { valueQuantity: { value: 13.1 } }),
        comp("centre-voxel-i", { valueInteger: 14 }),
        comp("centre-voxel-j", { valueInteger: 16 }),
        comp("centre-voxel-k", { valueInteger: 4 }),
        comp("bounding-box", { valueString: "[9,11,2]-[19,21,6]" }),
        comp("centre-sop-instance-uid", { valueString: "1.2.3" }),
      ],
    },
  ];
  const [f, ...rest] = findingsOf(report, obs);
  assert.equal(rest.length, 0);
  assert.equal(f.number, 1);
  assert.equal(f.probability, 0.97);
  assert.equal(f.diameterMm, 13.1);
  assert.deepEqual(f.centreVoxel, [14, 16, 4]);
  assert.deepEqual(f.box, { min: [9, 11, 2], max: [19, 21, 6] });
  assert.equal(f.location, "left lower zone");
  assert.equal(parseBox("nonsense"), undefined);
  assert.equal(locationOf(undefined), undefined);
});

Deno.test("reviewObservation() is an Observation about the finding that reviewOf() reads back", () => {
  const finding = { resourceType: "Observation", id: "f1", subject: { reference: "Patient/p1" } };
  const obs = reviewObservation(
    finding,
    "disagree",
    " too small ",
    { sub: "u1", name: "Dr A" },
    "2024-05-01T10:00:00Z",
  );
  assert.equal(obs.resourceType, "Observation");
  assert.deepEqual(obs.focus, [{ reference: "Observation/f1" }]);
  assert.deepEqual(obs.derivedFrom, [{ reference: "Observation/f1" }]);
  assert.deepEqual(obs.subject, { reference: "Patient/p1" });
  assert.equal(obs.identifier[0].value, "f1/u1");
  assert.equal(obs.note[0].text, "too small");
  const review = reviewOf({ ...obs, id: "r1", meta: { versionId: "2" } })!;
  assert.equal(review.verdict, "disagree");
  assert.equal(review.reviewer, "Dr A");
  assert.equal(review.reviewerId, "u1");
  assert.equal(review.version, "2");
  const commentOnly = reviewObservation(
    finding,
    undefined,
    "see prior",
    { sub: "u2", name: "B" },
    "2024-05-02T00:00:00Z",
  );
  assert.equal(commentOnly.valueCodeableConcept, undefined);
  assert.ok(commentOnly.dataAbsentReason);
  const grouped = reviewsByFinding([obs, commentOnly]);
  assert.deepEqual(grouped.get("f1")!.map((r) => r.reviewerId), ["u2", "u1"]);
});

Deno.test("parseStowResponse() lists stored, warned and refused instances with reasons", () => {
  const s = parseStowResponse({
    "00081190": { vr: "UR", Value: ["http://h/dicomweb/studies/1.2.3"] },
    "00081199": {
      vr: "SQ",
      Value: [
        {
          "00081155": { Value: ["1.1"] },
          "00081190": { Value: ["http://h/dicomweb/studies/1.2.3/series/4/instances/1.1"] },
        },
        { "00081155": { Value: ["1.2"] }, "00081196": { Value: [0xb000] } },
      ],
    },
    "00081198": {
      vr: "SQ",
      Value: [{ "00081155": { Value: ["1.3"] }, "00081197": { Value: [0x0111] } }],
    },
  });
  assert.deepEqual(s.studyUids, ["1.2.3"]);
  assert.deepEqual(s.instances.map((i) => i.outcome), ["stored", "warning", "refused"]);
  assert.match(s.instances[2].reason!, /duplicate.*0x0111/);
});

Deno.test("parseMultipart() cuts the parts of a WADO-RS frames answer", () => {
  const type = 'multipart/related; type="application/octet-stream"; boundary=abc';
  assert.equal(boundaryOf(type), "abc");
  const enc = new TextEncoder();
  const body = new Uint8Array([
    ...enc.encode("--abc\r\nContent-Type: application/octet-stream\r\n\r\n"),
    1,
    2,
    13,
    10,
    3,
    ...enc.encode("\r\n--abc\r\nContent-Type: text/plain\r\n\r\nhi\r\n--abc--\r\n"),
  ]);
  const parts = parseMultipart(body, "abc");
  assert.equal(parts.length, 2);
  assert.deepEqual([...parts[0].body], [1, 2, 13, 10, 3]);
  assert.equal(parts[1].headers["content-type"], "text/plain");
});

Deno.test("SseParser reads events split across chunks, comments, ids and retry", () => {
  const p = new SseParser();
  assert.deepEqual(p.feed(": connected\nretry: 3000\n\nevent: Task\nid: 7\nda"), []);
  const events = p.feed('ta: {"id":"t1"}\n\nevent: Task\r\ndata: a\r\ndata: b\r\n\r\n');
  assert.deepEqual(events, [
    { event: "Task", data: '{"id":"t1"}', id: "7" },
    { event: "Task", data: "a\nb", id: undefined },
  ]);
  assert.equal(p.lastEventId, "7");
  assert.equal(p.retry, 3000);
});

Deno.test("windowTable() maps Hounsfield units through the window; dragging widens and levels", () => {
  const t = windowTable(-1024, 3071, 1, 0, { center: 40, width: 400 });
  assert.equal(t[-1000 + 1024], 0);
  assert.equal(t[1000 + 1024], 255);
  assert.ok(Math.abs(t[40 + 1024] - 128) <= 1);
  const rgba = new Uint8ClampedArray(8);
  applyTable(new Int16Array([-1024, 3071]), t, -1024, rgba);
  assert.deepEqual([...rgba], [0, 0, 0, 255, 255, 255, 255, 255]);
  const inverted = windowTable(0, 10, 1, 0, { center: 5, width: 10 }, true);
  assert.equal(inverted[0], 255);
  const w = dragWindow({ center: 40, width: 400 }, 10, -5);
  assert.ok(w.width > 400 && w.center < 40);
});

Deno.test("sortSlices() orders by position and follows the instance numbers' direction", () => {
  const ds = (n: number, z: number) => ({
    "00080018": { Value: [`1.${n}`] },
    "00200013": { Value: [n] },
    "00280010": { Value: [4] },
    "00280011": { Value: [4] },
    "00200032": { Value: [0, 0, z] },
    "00200037": { Value: [1, 0, 0, 0, 1, 0] },
  });
  const sorted = sortSlices([ds(2, 5), ds(3, 0), ds(1, 10)].map(sliceInfo));
  assert.deepEqual(sorted.map((s) => s.instanceNumber), [1, 2, 3]);
  // The analysis sorted ascending z: its k=0 is instance 3 (here index 2).
  const map = sliceIndexMapper(sorted, 0, "1.3");
  assert.equal(map(0), 2);
  assert.equal(map(2), 0);
  assert.equal(sliceIndexMapper(sorted, 1, "1.2")(1), 1);
});

Deno.test("format helpers and the view transform", () => {
  assert.equal(formatDate("2020-04-16"), "16 Apr 2020");
  assert.equal(formatDate("2020-04-16T09:30:00Z"), "16 Apr 2020, 09:30");
  assert.equal(formatBytes(1536), "1.5 KB");
  assert.equal(humanName([{ family: "DOE", given: ["Jo", "A"] }]), "DOE, Jo A");
  assert.equal(probabilityColor(1), "rgb(255, 50, 0)");
  const p = place(200, 100, 50, 50, [1, 1], { zoom: 1, panX: 0, panY: 0 });
  assert.deepEqual(p, { x: 50, y: 0, sx: 2, sy: 2 });
  const z = zoomAbout({ zoom: 1, panX: 0, panY: 0 }, 2, 150, 50, 200, 100);
  assert.deepEqual(z, { zoom: 2, panX: -50, panY: 0 });
});

Deno.test("chart labels: the column fits the longest route class; longer ones keep both ends", () => {
  const routes = ["GET /fhir/Patient", "POST /fhir/ImagingStudy/{id}/$analyze"];
  const width = labelColumnWidth(routes, 48);
  // Every character of the longest label fits left of the bars (11-unit monospace ≈ 6.6 each).
  assert.ok(width >= routes[1].length * 6.6 + 8, String(width));
  assert.ok(labelColumnWidth(["x"], 48) < 50);
  assert.equal(fitLabel(routes[1], 48), routes[1]);
  const long = "GET /dicomweb/studies/{uid}/series/{uid}/instances/{uid}/frames/{frames}/rendered";
  const fitted = fitLabel(long, 48);
  assert.equal(fitted.length, 48);
  assert.ok(fitted.startsWith("GET /dicomweb/"));
  assert.ok(fitted.endsWith("/rendered"));
  assert.ok(fitted.includes("…"));
});
