/**
 * Group commit of concurrent STOW-RS requests (`dicom/store.ts` groupWrite): requests of one
 * instance each, sent at once, are written together; when the database refuses one request's part
 * (a trigger here, as Postgres or the FHIR layer might), the others are still stored, the refused
 * part fails alone with 0x0110 and the reason, and no object is left without its row.
 */
import assert from "node:assert/strict";
import { createApp } from "../../app.ts";
import { loadConfig } from "../../config.ts";
import { encodeMultipartRelated } from "../../dicom/synth/stow.ts";
import { createServices } from "../../services.ts";
import { sphereStudy } from "../inference/_study.ts";

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
