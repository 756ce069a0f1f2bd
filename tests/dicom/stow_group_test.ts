/**
 * Group commit of concurrent STOW-RS requests (`dicom/store.ts` groupWrite): requests of one
 * instance each, sent at once, are written together; when the database refuses one request's part
 * (a trigger here, as Postgres or the FHIR layer might), the others are still stored, the refused
 * part fails alone with 0x0110 and the reason, and no object is left without its row. Rounds run
 * concurrently: requests of new studies of the same patients in opposite orders deadlock in
 * Postgres, and the transaction it ends runs again, so every study is stored.
 */
import assert from "node:assert/strict";
import dcmjs from "dcmjs";
import { createApp } from "../../app.ts";
import { loadConfig } from "../../platform/config.ts";
import { encodeMultipartRelated } from "../../dicom/synth/stow.ts";
import { createServices } from "../../services.ts";
import { sphereStudy } from "../sidecar/_study.ts";
import { backendTest } from "../_harness.ts";

Deno.test("concurrent one-instance requests: a refused part fails alone, the rest are stored", async () => {
  const dir = await Deno.makeTempDir({ prefix: "objects-group-" });
  const services = await createServices(loadConfig({
    DATABASE_URL: "",
    PGLITE_DIR: "memory",
    OBJECT_DIR: dir,
    S3_ENDPOINT: "",
    LOG_LEVEL: "error",
    AUTH: "off",
    AUDIT: "off",
    INFERENCE_WORKER: "off",
    DICOM_STABLE_SECONDS: "3600",
  }));
  const app = createApp(services);
  try {
    await services.db.query(`
      CREATE FUNCTION refuse_some() RETURNS trigger AS $$
      BEGIN
        IF NEW.instance_number % 5 = 0 THEN RAISE EXCEPTION 'instance % refused', NEW.instance_number; END IF;
        RETURN NEW;
      END $$ LANGUAGE plpgsql`);
    await services.db.query(`CREATE TRIGGER refuse_some BEFORE INSERT ON dicom_instance
      FOR EACH ROW EXECUTE FUNCTION refuse_some()`);
    const study = sphereStudy({ seed: 91, rows: 16, cols: 16, slices: 20, spheres: [] });
    const send = async (instance: Uint8Array) => {
      const { contentType, body } = encodeMultipartRelated([instance]);
      const r = await app.request("/dicomweb/studies", {
        method: "POST",
        headers: { "Content-Type": contentType, Accept: "application/dicom+json" },
        body: new Uint8Array(await body.arrayBuffer()),
      });
      return { status: r.status, body: await r.json() };
    };
    // Instance numbers 1–20: 5, 10, 15 and 20 are refused.
    const answers = await Promise.all(study.instances.map(send));
    answers.forEach((a, i) => {
      if ((i + 1) % 5 === 0) {
        assert.equal(a.status, 409, `instance ${i + 1}`);
        const failed = a.body["00081198"].Value[0];
        assert.equal(failed["00081197"].Value[0], 0x0110);
      } else {
        assert.equal(a.status, 200, `instance ${i + 1}: ${JSON.stringify(a.body).slice(0, 300)}`);
      }
    });
    const uid = study.plan.study.studyInstanceUid;
    const qido = await app.request(`/dicomweb/studies/${uid}/instances`, {
      headers: { Accept: "application/dicom+json" },
    });
    assert.equal(((await qido.json()) as unknown[]).length, 16);
    const objects = await Array.fromAsync(services.store.list("dicom/"));
    assert.equal(objects.length, 16, "objects of refused parts were left behind");
    // The counts match the rows.
    const [row] = await services.db.query<{ n: number }>(
      `SELECT num_instances AS n FROM dicom_study WHERE study_uid = $1`,
      [uid],
    );
    assert.equal(Number(row.n), 16);
  } finally {
    await services.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

/** A one-instance CT study `i` of `patient` (4×4 pixels). */
function tinyStudy(root: string, i: number, patient: string): Uint8Array {
  const { DicomDict, DicomMetaDictionary } = dcmjs.data;
  const dataset = {
    SOPClassUID: "1.2.840.10008.5.1.4.1.1.2",
    SOPInstanceUID: `${root}.${i}.1.1`,
    StudyInstanceUID: `${root}.${i}`,
    SeriesInstanceUID: `${root}.${i}.1`,
    PatientID: patient,
    PatientName: `Group^${patient}`,
    StudyDate: "20240102",
    Modality: "CR",
    Rows: 4,
    Columns: 4,
    BitsAllocated: 16,
    BitsStored: 12,
    HighBit: 11,
    PixelRepresentation: 0,
    SamplesPerPixel: 1,
    PhotometricInterpretation: "MONOCHROME2",
    PixelData: new Uint16Array(16).buffer,
    _vrMap: { PixelData: "OW" },
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset({
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: dataset.SOPClassUID,
    MediaStorageSOPInstanceUID: dataset.SOPInstanceUID,
    TransferSyntaxUID: "1.2.840.10008.1.2.1",
    ImplementationClassUID: `${root}.0`,
  }));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  return new Uint8Array(dict.write());
}

backendTest(
  "concurrent requests of many new studies of the same patients, in opposite orders: every study stored, one Patient each",
  async (ctx) => {
    // Group rounds run concurrently (up to 4): each new study's first batch takes its study lock,
    // then its Patient's conditional-create lock. Requests that meet the same patients in opposite
    // orders can deadlock in Postgres; the loser's parts are retried alone, so all are stored.
    const root = `1.2.826.0.1.3680043.10.1071.9.${Date.now()}`;
    const patients = Array.from({ length: 6 }, (_, p) => `GRP${Date.now()}-${p}`);
    const requests = Array.from({ length: 4 }, (_, r) => {
      const order = r % 2 ? [...patients].reverse() : patients;
      // 4 studies per patient per request, the patients in this request's order.
      return order.flatMap((patient, k) =>
        Array.from({ length: 4 }, (_, j) => tinyStudy(root, r * 1000 + k * 10 + j, patient))
      );
    });
    const answers = await Promise.all(requests.map(async (instances) => {
      const { contentType, body } = encodeMultipartRelated(instances);
      const r = await fetch(`${ctx.origin}/dicomweb/studies`, {
        method: "POST",
        headers: { "Content-Type": contentType, Accept: "application/dicom+json" },
        body: new Uint8Array(await body.arrayBuffer()),
      });
      return { status: r.status, warning: r.headers.get("warning"), body: await r.json() };
    }));
    for (const a of answers) {
      assert.equal(a.status, 200, `${a.warning}`);
      assert.equal(a.body["00081199"].Value.length, 24);
    }
    for (const patient of patients) {
      const qido = await fetch(`${ctx.origin}/dicomweb/studies?PatientID=${patient}`, {
        headers: { Accept: "application/dicom+json" },
      });
      assert.equal(((await qido.json()) as unknown[]).length, 16, patient);
      const bundle = await (await ctx.fetch(`Patient?identifier=${encodeURIComponent(patient)}`))
        .json();
      assert.equal(bundle.entry?.length, 1, `one Patient for ${patient}`);
    }
    await ctx.services.dicom.deps.studySync.flush();
    const studies = await (await ctx.fetch(
      `ImagingStudy?subject.identifier=${encodeURIComponent(patients[0])}&_count=100`,
    )).json();
    assert.equal(studies.entry?.length, 16, "one ImagingStudy per study");
  },
);
