// deno-lint-ignore-file no-explicit-any
/**
 * @module The DIMSE listener against Debian's DCMTK: echoscu; storescu of real files (three
 * transfer syntaxes) and a synthetic study, which land in the same index as STOW-RS (QIDO-RS finds
 * them, WADO-RS serves the same bytes' data set, the ImagingStudy follows); findscu at patient,
 * study, series and image level; getscu and movescu (to a DCMTK storescp) retrieving what was
 * stored; and the refusals: an AE or host not allowed, the wrong called AE, an unknown move
 * destination. Ignored, by name, where DCMTK is missing.
 */
import assert from "node:assert/strict";
import { generateStudy } from "../../dicom/synth/ct.ts";
import { parseDataSet } from "../../dicom/codec/dataset.ts";
import { startContext, type TestContext } from "../_harness.ts";

const PYDICOM = "/usr/lib/python3/dist-packages/pydicom/data/test_files";
const FILES = ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm"];
const DATABASE_URL = Deno.env.get("DATABASE_URL") ?? "";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function tool(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return {
    code: o.code,
    out: new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr),
  };
}

const missing = (await tool("which", ["storescu"]).catch(() => ({ code: 1, out: "" }))).code !== 0
  ? "DCMTK is not installed (apt-get install dcmtk)"
  : undefined;

interface Dimse {
  ctx: TestContext;
  port: number;
  moveTo: number;
}

async function withDimse(
  backend: "pglite" | "postgres",
  fn: (d: Dimse) => Promise<void>,
  allowed = "*@127.0.0.1",
) {
  const port = freePort();
  const moveTo = freePort();
  const ctx = await startContext(backend, {
    DIMSE_PORT: String(port),
    DIMSE_AE_TITLE: "IMAGING_AI",
    DIMSE_ALLOWED_PEERS: allowed,
    DIMSE_MOVE_DESTINATIONS: `STORESCP=127.0.0.1:${moveTo}`,
  });
  try {
    await fn({ ctx, port, moveTo });
  } finally {
    await ctx.close();
  }
}

/** findscu's answers: each response identifier as `(gggg,eeee) VR [value]` lines, by tag. */
function findAnswers(out: string): Record<string, string>[] {
  const answers: Record<string, string>[] = [];
  for (const block of out.split(/Find Response: \d+ \(Pending\)/).slice(1)) {
    const a: Record<string, string> = {};
    for (
      const m of block.matchAll(/\(([0-9a-f]{4},[0-9a-f]{4})\) \w\w (?:\[([^\]]*)\]|\(no value)/g)
    ) {
      a[m[1]] = (m[2] ?? "").trim();
    }
    answers.push(a);
  }
  return answers;
}

for (const backend of ["pglite", "postgres"] as const) {
  Deno.test({
    name: `DIMSE with DCMTK: echo, store, find, get, move [${backend}]${
      missing ? ` [skipped: ${missing}]` : ""
    }`,
    ignore: !!missing || (backend === "postgres" && !DATABASE_URL),
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () =>
      withDimse(backend, async ({ ctx, port, moveTo }) => {
        const p = String(port);
        const echo = await tool("echoscu", [
          "-aet",
          "MODALITY",
          "-aec",
          "IMAGING_AI",
          "127.0.0.1",
          p,
        ]);
        assert.equal(echo.code, 0, echo.out);

        // C-STORE: real files and a synthetic study.
        const dir = await Deno.makeTempDir({ prefix: "dimse-" });
        const study = generateStudy({ seed: 1701, slices: 6, rows: 64, cols: 64, lesions: 0 });
        for (const [i, bytes] of study.instances.entries()) {
          await Deno.writeFile(`${dir}/ct${i}.dcm`, bytes);
        }
        const files = [
          ...FILES.map((f) => `${PYDICOM}/${f}`),
          ...study.instances.map((_, i) => `${dir}/ct${i}.dcm`),
        ];
        const stored = await tool("storescu", [
          "-aet",
          "MODALITY",
          "-aec",
          "IMAGING_AI",
          "-R",
          "-xw",
          "127.0.0.1",
          p,
          ...files,
        ]);
        assert.equal(stored.code, 0, stored.out);
        const uid = study.plan.study.studyInstanceUid;
        const series = await (await fetch(`${ctx.origin}/dicomweb/studies/${uid}/instances`))
          .json();
        assert.equal(series.length, 6, "QIDO-RS finds what C-STORE stored");
        for (const f of FILES) {
          const sop = parseDataSet(await Deno.readFile(`${PYDICOM}/${f}`)).string("x00080018")!;
          const found =
            await (await fetch(`${ctx.origin}/dicomweb/instances?SOPInstanceUID=${sop}`)).json();
          assert.equal(found.length, 1, `${f} stored`);
        }
        // Sent again: the same answer as STOW-RS's, success (the same bytes).
        const again = await tool("storescu", [
          "-aet",
          "MODALITY",
          "-aec",
          "IMAGING_AI",
          "127.0.0.1",
          p,
          `${dir}/ct0.dcm`,
        ]);
        assert.equal(again.code, 0, again.out);

        // C-FIND at each level.
        const q = (level: string, ...keys: string[]) =>
          tool("findscu", [
            "-v",
            "-S",
            "-aet",
            "MODALITY",
            "-aec",
            "IMAGING_AI",
            "127.0.0.1",
            p,
            "-k",
            `QueryRetrieveLevel=${level}`,
            ...keys.flatMap((k) => ["-k", k]),
          ]);
        const studies = findAnswers(
          (await q(
            "STUDY",
            `StudyInstanceUID=${uid}`,
            "PatientName",
            "ModalitiesInStudy",
            "NumberOfStudyRelatedInstances",
          )).out,
        );
        assert.equal(studies.length, 1);
        assert.equal(studies[0]["0020,000d"], uid);
        assert.equal(studies[0]["0020,1208"], "6");
        const seriesAnswers = findAnswers(
          (await q("SERIES", `StudyInstanceUID=${uid}`, "SeriesInstanceUID", "Modality")).out,
        );
        assert.equal(seriesAnswers.length, 1);
        assert.equal(seriesAnswers[0]["0008,0060"], "CT");
        const images = findAnswers(
          (await q(
            "IMAGE",
            `StudyInstanceUID=${uid}`,
            `SeriesInstanceUID=${seriesAnswers[0]["0020,000e"]}`,
            "SOPInstanceUID",
            "InstanceNumber",
          )).out,
        );
        assert.equal(images.length, 6);
        const wildcard = findAnswers((await q("STUDY", "PatientName=*", "StudyInstanceUID")).out);
        assert.ok(wildcard.length >= 3, `studies of every stored file: ${wildcard.length}`);
        const patients = await tool("findscu", [
          "-v",
          "-P",
          "-aet",
          "MODALITY",
          "-aec",
          "IMAGING_AI",
          "127.0.0.1",
          p,
          "-k",
          "QueryRetrieveLevel=PATIENT",
          "-k",
          "PatientID",
          "-k",
          "PatientName",
          "-k",
          "NumberOfPatientRelatedStudies",
        ]);
        assert.ok(findAnswers(patients.out).length >= 2, patients.out);

        // C-GET: the study comes back on the same association.
        const got = await Deno.makeTempDir({ prefix: "dimse-get-" });
        const get = await tool("getscu", [
          "-S",
          "-aet",
          "MODALITY",
          "-aec",
          "IMAGING_AI",
          "-od",
          got,
          "127.0.0.1",
          p,
          "-k",
          "QueryRetrieveLevel=STUDY",
          "-k",
          `StudyInstanceUID=${uid}`,
        ]);
        assert.equal(get.code, 0, get.out);
        const gotFiles = [...Deno.readDirSync(got)];
        assert.equal(gotFiles.length, 6, get.out);
        const sops = new Set(study.instances.map((b) => parseDataSet(b).string("x00080018")));
        for (const f of gotFiles) {
          assert.ok(
            sops.has(parseDataSet(await Deno.readFile(`${got}/${f.name}`)).string("x00080018")),
          );
        }

        // C-MOVE to a DCMTK storescp known by its AE title.
        const moved = await Deno.makeTempDir({ prefix: "dimse-move-" });
        const scp = new Deno.Command("storescp", {
          args: ["-aet", "STORESCP", "-od", moved, String(moveTo)],
          stdout: "null",
          stderr: "null",
        }).spawn();
        try {
          await new Promise((r) => setTimeout(r, 500));
          const move = await tool("movescu", [
            "-S",
            "-aet",
            "MODALITY",
            "-aec",
            "IMAGING_AI",
            "-aem",
            "STORESCP",
            "127.0.0.1",
            p,
            "-k",
            "QueryRetrieveLevel=SERIES",
            "-k",
            `StudyInstanceUID=${uid}`,
            "-k",
            `SeriesInstanceUID=${seriesAnswers[0]["0020,000e"]}`,
          ]);
          assert.equal(move.code, 0, move.out);
          for (let i = 0; i < 50 && [...Deno.readDirSync(moved)].length < 6; i++) {
            await new Promise((r) => setTimeout(r, 100));
          }
          assert.equal([...Deno.readDirSync(moved)].length, 6);
          const unknown = await tool("movescu", [
            "-v",
            "-S",
            "-aet",
            "MODALITY",
            "-aec",
            "IMAGING_AI",
            "-aem",
            "NOBODY",
            "127.0.0.1",
            p,
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            `StudyInstanceUID=${uid}`,
          ]);
          assert.match(
            unknown.out,
            /MoveDestinationUnknown|Move Destination Unknown|a801/i,
            unknown.out,
          );
        } finally {
          scp.kill();
          await scp.status;
        }

        // Refused: the wrong called AE, a calling AE not on the list (below), each audited.
        const wrong = await tool("echoscu", [
          "-aet",
          "MODALITY",
          "-aec",
          "SOMEONE",
          "127.0.0.1",
          p,
        ]);
        assert.notEqual(wrong.code, 0);
        assert.match(wrong.out, /Called AE Title Not Recognized|rejected/i, wrong.out);
        await ctx.services.audit.flush();
        const audit = await (await fetch(`${ctx.base}/AuditEvent?_count=200`)).json();
        const dimse = (audit.entry ?? []).map((e: any) => e.resource).filter((e: any) =>
          e.type?.system === "http://dicom.nema.org/resources/ontology/DCM" &&
          ["110104", "110112", "110100"].includes(e.type.code)
        );
        assert.ok(dimse.some((e: any) => e.type.code === "110104"), "transfers audited");
        assert.ok(dimse.some((e: any) => e.type.code === "110112"), "queries audited");
        assert.ok(dimse.some((e: any) => e.outcome === "4"), "the refusal audited");
      }),
  });
}

Deno.test({
  name: `DIMSE refuses a calling AE that is not allowed${missing ? ` [skipped: ${missing}]` : ""}`,
  ignore: !!missing,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withDimse("pglite", async ({ port }) => {
      const ok = await tool("echoscu", [
        "-aet",
        "ORTHANC",
        "-aec",
        "IMAGING_AI",
        "127.0.0.1",
        String(port),
      ]);
      assert.equal(ok.code, 0, ok.out);
      const refused = await tool("echoscu", [
        "-aet",
        "STRANGER",
        "-aec",
        "IMAGING_AI",
        "127.0.0.1",
        String(port),
      ]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.out, /Calling AE Title Not Recognized|rejected/i, refused.out);
    }, "ORTHANC@127.0.0.1"),
});
