/**
 * @module DICOMweb as a real client sees it: `dicomweb-client` (the npm library of OHIF and
 * Slicer) against the server, on every backend. It stores real files (pydicom's CT_small and
 * MR_small) and a synthetic CT series, then searches, retrieves metadata, instances, frames and
 * bulk data, and compares what comes back with the files, read here with dicom-parser.
 *
 * dicomweb-client runs its requests on XMLHttpRequest, which Deno lacks: `xhr2` (npm, no
 * dependencies, XMLHttpRequest on node:http) stands in for it, for these tests only.
 */
import assert from "node:assert/strict";
import dicomParser from "dicom-parser";
import { api } from "dicomweb-client";
import XMLHttpRequestPolyfill from "xhr2";
import { generateStudy, type SynthStudy } from "../../dicom/synth/ct.ts";
import { type Backend, backendTest, type TestContext } from "../_harness.ts";
import { type DicomJsonBody, readTestFile, sequenceUids } from "./_dicom_helpers.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
g.XMLHttpRequest ??= XMLHttpRequestPolyfill;

/**
 * The calls used here, with the options they take. The library's types, generated from its JSDoc,
 * mark every option (`request`, `mediaTypes`, `byteRange`, `singlepart`…) as required.
 */
interface Client {
  storeInstances(o: { datasets: ArrayBuffer[] }): Promise<unknown>;
  searchForStudies(o: { queryParams?: Record<string, string> }): Promise<DicomJsonBody[]>;
  searchForSeries(
    o: { studyInstanceUID?: string; queryParams?: Record<string, string> },
  ): Promise<DicomJsonBody[]>;
  searchForInstances(o: {
    studyInstanceUID?: string;
    seriesInstanceUID?: string;
    queryParams?: Record<string, string>;
  }): Promise<DicomJsonBody[]>;
  retrieveStudyMetadata(o: { studyInstanceUID: string }): Promise<DicomJsonBody[]>;
  retrieveInstanceMetadata(o: InstanceOptions): Promise<DicomJsonBody[]>;
  retrieveInstance(o: InstanceOptions): Promise<ArrayBuffer>;
  retrieveSeries(
    o: { studyInstanceUID: string; seriesInstanceUID: string },
  ): Promise<ArrayBuffer[]>;
  retrieveInstanceFrames(o: InstanceOptions & { frameNumbers: string }): Promise<ArrayBuffer[]>;
  retrieveBulkData(o: { BulkDataURI: string }): Promise<ArrayBuffer[]>;
}
interface InstanceOptions {
  studyInstanceUID: string;
  seriesInstanceUID: string;
  sopInstanceUID: string;
}
type DataSet = dicomParser.DataSet;

interface KnownFile {
  bytes: Uint8Array;
  ds: DataSet;
  studyUid: string;
  seriesUid: string;
  sopUid: string;
}

function known(bytes: Uint8Array): KnownFile {
  const ds = dicomParser.parseDicom(bytes);
  const uid = (tag: string) => ds.string(tag)!.replace(/\0/g, "").trim();
  return {
    bytes,
    ds,
    studyUid: uid("x0020000d"),
    seriesUid: uid("x0020000e"),
    sopUid: uid("x00080018"),
  };
}

/** The value bytes of an element of a parsed file. */
function valueOf(f: KnownFile, tag: string): Uint8Array {
  const el = f.ds.elements[tag];
  return f.bytes.subarray(el.dataOffset, el.dataOffset + el.length);
}

/** What one backend stored at the start: the files, the synthetic study and the client. */
interface Fixture {
  client: Client;
  ct: KnownFile;
  mr: KnownFile;
  synth: SynthStudy;
  synthFiles: KnownFile[];
  /** The parsed store responses. */
  responses: DicomJsonBody[];
}

const fixtures = new Map<Backend, Promise<Fixture>>();

function fixture(ctx: TestContext): Promise<Fixture> {
  let f = fixtures.get(ctx.backend);
  if (!f) {
    f = setUp(ctx);
    fixtures.set(ctx.backend, f);
  }
  return f;
}

async function setUp(ctx: TestContext): Promise<Fixture> {
  const client = new api.DICOMwebClient({
    url: `${ctx.origin}/dicomweb`,
    verbose: false,
    singlepart: false,
  }) as unknown as Client;
  const ct = known(readTestFile("CT_small.dcm"));
  const mr = known(readTestFile("MR_small.dcm"));
  const synth = generateStudy({ seed: 7, slices: 4, rows: 64, cols: 64, lesions: 0 });
  const synthFiles = synth.instances.map(known);
  const responses: DicomJsonBody[] = [];
  for (const files of [[ct, mr], synthFiles]) {
    const answer = await client.storeInstances({
      datasets: files.map((f) => arrayBuffer(f.bytes)),
    });
    responses.push(typeof answer === "string" ? JSON.parse(answer) : answer);
  }
  return { client, ct, mr, synth, synthFiles, responses };
}

/** A copy of the bytes as an ArrayBuffer of their own (what the library takes and gives). */
function arrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer;
}

function bytesOf(data: ArrayBuffer | Uint8Array): Uint8Array {
  return data instanceof Uint8Array ? data : new Uint8Array(data);
}

/** The first value of an attribute of a DICOM JSON object (PN as its Alphabetic form). */
function first(json: DicomJsonBody, tag: string): unknown {
  const v = json?.[tag]?.Value?.[0];
  return v && typeof v === "object" && "Alphabetic" in v ? v.Alphabetic : v;
}

function text(f: KnownFile, tag: string): string {
  return f.ds.string(tag)!.replace(/\0/g, "").trim();
}

backendTest(
  "dicomweb-client storeInstances() stores real files and a synthetic series",
  async (ctx) => {
    const { ct, mr, synthFiles, responses } = await fixture(ctx);
    const [files, series] = responses;
    assert.deepEqual(sequenceUids(files, "00081199").sort(), [ct.sopUid, mr.sopUid].sort());
    assert.equal(files["00081198"], undefined, "no failed parts");
    assert.deepEqual(
      sequenceUids(series, "00081199").sort(),
      synthFiles.map((f) => f.sopUid).sort(),
    );
    // Each reference carries its retrieve URL, under this server's DICOMweb base.
    for (const item of [...files["00081199"].Value, ...series["00081199"].Value]) {
      const url = first(item, "00081190") as string;
      assert.ok(url.startsWith(`${ctx.origin}/dicomweb/studies/`), url);
      assert.ok(url.endsWith(`/instances/${first(item, "00081155")}`), url);
    }
    assert.equal(
      first(series, "00081190"),
      `${ctx.origin}/dicomweb/studies/${synthFiles[0].studyUid}`,
    );
  },
);

backendTest("dicomweb-client searchForStudies() finds a study by PatientID", async (ctx) => {
  const { client, ct, synth } = await fixture(ctx);
  const studies = await client.searchForStudies({
    queryParams: { PatientID: text(ct, "x00100020") },
  });
  assert.equal(studies.length, 1);
  const [study] = studies;
  assert.equal(first(study, "0020000D"), ct.studyUid);
  assert.equal(first(study, "00100020"), text(ct, "x00100020"));
  assert.equal(first(study, "00100010"), text(ct, "x00100010"));
  assert.equal(first(study, "00080020"), text(ct, "x00080020"));
  assert.deepEqual(study["00080061"].Value, ["CT"]);
  assert.equal(first(study, "00201206"), 1);
  assert.equal(first(study, "00201208"), 1);

  const synthetic = await client.searchForStudies({ queryParams: { PatientID: synth.patient.id } });
  assert.equal(synthetic.length, 1);
  assert.equal(first(synthetic[0], "0020000D"), synth.study.studyInstanceUid);
  assert.equal(first(synthetic[0], "00100010"), synth.patient.name);
  assert.equal(first(synthetic[0], "00080050"), synth.study.accessionNumber);
  assert.equal(first(synthetic[0], "00201208"), 4);

  assert.deepEqual(await client.searchForStudies({ queryParams: { PatientID: "NO-SUCH-ID" } }), []);
  // All three studies, with a wildcard on the name (case-insensitive PN matching).
  const all = await client.searchForStudies({ queryParams: { PatientName: "*" } });
  assert.equal(all.length, 3);
});

backendTest("dicomweb-client searchForSeries() lists a study's series", async (ctx) => {
  const { client, synth, mr } = await fixture(ctx);
  const series = await client.searchForSeries({ studyInstanceUID: synth.study.studyInstanceUid });
  assert.equal(series.length, 1);
  assert.equal(first(series[0], "0020000E"), synth.study.seriesInstanceUid);
  assert.equal(first(series[0], "00080060"), "CT");
  assert.equal(first(series[0], "00200011"), synth.study.seriesNumber);
  assert.equal(first(series[0], "0008103E"), synth.study.seriesDescription);
  assert.equal(first(series[0], "00201209"), 4);

  const all = await client.searchForSeries({ queryParams: { Modality: "MR" } });
  assert.deepEqual(all.map((s: DicomJsonBody) => first(s, "0020000E")), [mr.seriesUid]);
});

backendTest("dicomweb-client searchForInstances() lists a series' instances", async (ctx) => {
  const { client, synth } = await fixture(ctx);
  const instances = await client.searchForInstances({
    studyInstanceUID: synth.study.studyInstanceUid,
    seriesInstanceUID: synth.study.seriesInstanceUid,
  });
  assert.deepEqual(
    instances.map((i: DicomJsonBody) => first(i, "00080018")),
    synth.plan.sopInstanceUids,
  );
  assert.deepEqual(instances.map((i: DicomJsonBody) => first(i, "00200013")), [1, 2, 3, 4]);
  for (const i of instances) {
    assert.equal(first(i, "00080016"), "1.2.840.10008.5.1.4.1.1.2");
    assert.equal(first(i, "00280010"), 64);
    assert.equal(first(i, "00280011"), 64);
    assert.ok(
      (first(i, "00081190") as string).endsWith(
        `/studies/${synth.study.studyInstanceUid}/series/${synth.study.seriesInstanceUid}/instances/${
          first(i, "00080018")
        }`,
      ),
    );
  }
  const one = await client.searchForInstances({
    studyInstanceUID: synth.study.studyInstanceUid,
    queryParams: { InstanceNumber: "3" },
  });
  assert.deepEqual(one.map((i: DicomJsonBody) => first(i, "00080018")), [
    synth.plan.sopInstanceUids[2],
  ]);
});

backendTest(
  "dicomweb-client retrieveStudyMetadata() gives every instance's attributes",
  async (ctx) => {
    const { client, synth, synthFiles, ct } = await fixture(ctx);
    const metadata = await client.retrieveStudyMetadata({
      studyInstanceUID: synth.study.studyInstanceUid,
    });
    assert.equal(metadata.length, 4);
    const bySop = new Map(metadata.map((m: DicomJsonBody) => [first(m, "00080018"), m]));
    for (const f of synthFiles) {
      const m = bySop.get(f.sopUid) as DicomJsonBody;
      assert.ok(m, `metadata of ${f.sopUid}`);
      assert.equal(first(m, "00100020"), synth.patient.id);
      assert.equal(first(m, "00100010"), synth.patient.name);
      assert.equal(first(m, "0020000E"), synth.study.seriesInstanceUid);
      assert.equal(first(m, "00280010"), 64);
      assert.equal(first(m, "00281052"), Number(text(f, "x00281052")));
      assert.deepEqual(m["00200032"].Value, text(f, "x00200032").split("\\").map(Number));
      assert.equal(m["7FE00010"].Value, undefined, "pixel data is left out");
      assert.match(m["7FE00010"].BulkDataURI, /\/bulkdata\/7FE00010$/);
    }
    const [ctMeta] = await client.retrieveStudyMetadata({ studyInstanceUID: ct.studyUid });
    assert.equal(first(ctMeta, "00080018"), ct.sopUid);
    assert.equal(first(ctMeta, "00280010"), ct.ds.uint16("x00280010"));
    assert.equal(first(ctMeta, "00083002"), text(ct, "x00020010"));
  },
);

backendTest("dicomweb-client retrieveInstance() gives back the stored bytes", async (ctx) => {
  const { client, ct, mr, synthFiles } = await fixture(ctx);
  for (const f of [ct, mr, synthFiles[1]]) {
    const instance = await client.retrieveInstance({
      studyInstanceUID: f.studyUid,
      seriesInstanceUID: f.seriesUid,
      sopInstanceUID: f.sopUid,
    });
    const got = bytesOf(instance);
    assert.equal(got.length, f.bytes.length, `size of ${f.sopUid}`);
    assert.ok(got.every((b, i) => b === f.bytes[i]), `bytes of ${f.sopUid}`);
  }
});

backendTest(
  "dicomweb-client retrieveSeries() gives back every instance of a series",
  async (ctx) => {
    const { client, synth, synthFiles } = await fixture(ctx);
    const instances = await client.retrieveSeries({
      studyInstanceUID: synth.study.studyInstanceUid,
      seriesInstanceUID: synth.study.seriesInstanceUid,
    });
    assert.equal(instances.length, synthFiles.length);
    // In InstanceNumber order: the order they were generated and sent in.
    instances.forEach((instance, i) => {
      const got = bytesOf(instance);
      const sent = synthFiles[i].bytes;
      assert.equal(got.length, sent.length, `size of instance ${i + 1}`);
      assert.ok(got.every((b, j) => b === sent[j]), `bytes of instance ${i + 1}`);
    });
  },
);

backendTest("dicomweb-client retrieveInstanceFrames() cuts CT_small's frame out", async (ctx) => {
  const { client, ct } = await fixture(ctx);
  const frames = await client.retrieveInstanceFrames({
    studyInstanceUID: ct.studyUid,
    seriesInstanceUID: ct.seriesUid,
    sopInstanceUID: ct.sopUid,
    frameNumbers: "1",
  });
  assert.equal(frames.length, 1);
  const frame = bytesOf(frames[0]);
  const rows = ct.ds.uint16("x00280010")!, cols = ct.ds.uint16("x00280011")!;
  assert.equal(frame.length, rows * cols * 2);
  const pixels = valueOf(ct, "x7fe00010");
  assert.ok(frame.every((b, i) => b === pixels[i]), "the frame is the pixel data");
});

backendTest(
  "dicomweb-client retrieveBulkData() fetches a BulkDataURI of the metadata",
  async (ctx) => {
    const { client, ct, synthFiles } = await fixture(ctx);
    for (const f of [ct, synthFiles[0]]) {
      const [meta] = await client.retrieveInstanceMetadata({
        studyInstanceUID: f.studyUid,
        seriesInstanceUID: f.seriesUid,
        sopInstanceUID: f.sopUid,
      });
      const uri = meta["7FE00010"].BulkDataURI as string;
      assert.ok(uri.startsWith(`${ctx.origin}/dicomweb/studies/${f.studyUid}/`), uri);
      const parts = await client.retrieveBulkData({ BulkDataURI: uri });
      assert.equal(parts.length, 1);
      const got = bytesOf(parts[0]);
      const pixels = valueOf(f, "x7fe00010");
      assert.equal(got.length, pixels.length);
      assert.ok(got.every((b, i) => b === pixels[i]), `bulk data of ${f.sopUid}`);
    }
  },
);

backendTest("dicomweb-client rejects with the status for an unknown study", async (ctx) => {
  const { client } = await fixture(ctx);
  await assert.rejects(
    client.retrieveStudyMetadata({ studyInstanceUID: "1.2.3.4.5.6.7.8.9" }),
    (e: { status?: number }) => e.status === 404,
  );
});
