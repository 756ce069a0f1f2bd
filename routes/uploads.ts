/**
 * @module HTTP for uploads that are not DICOMweb: a NIfTI volume (`.nii` or `.nii.gz`) for a
 * Patient (`POST /uploads/nifti?patient=Patient/{id}`), answered with the FHIR resources that
 * describe it, and the stored file (`GET /uploads/nifti/{id}`).
 */
import { Hono } from "hono";
import type { AppEnv } from "./env.ts";
import { requireAccess } from "../auth/access.ts";
import { readBounded } from "../platform/body.ts";
import { HttpError } from "../platform/http_error.ts";
import type { Services } from "./env.ts";
import { FHIR_JSON } from "./fhir.ts";

export function uploadRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  // A NIfTI volume becomes an ImagingStudy-like record (DocumentReference + ImagingStudy).
  app.post("/nifti", async (c) => {
    requireAccess(c.get("caller"), "ImagingStudy", "create");
    const q = new URL(c.req.url).searchParams;
    const patient = q.get("patient");
    if (!patient) {
      throw new HttpError(400, "The patient query parameter (Patient/{id}) is required");
    }
    const type = (c.req.header("content-type") ?? "application/octet-stream").split(";")[0].trim();
    if (type.startsWith("multipart/") || type.includes("json") || type.startsWith("text/")) {
      throw new HttpError(415, `Send the .nii or .nii.gz file itself as the body, not ${type}`);
    }
    const bytes = await readBounded(c.req.raw, services.config.dicom.maxInstanceBytes, "The file");
    const volume = await services.dicom.uploadNifti({
      bytes,
      patient,
      filename: q.get("filename") ?? undefined,
      modality: q.get("modality") ?? undefined,
      description: q.get("description") ?? undefined,
    });
    const body = {
      resourceType: "Bundle",
      type: "collection",
      entry: [volume.imagingStudy, volume.documentReference].map((r) => ({
        fullUrl: `${services.config.publicUrl}/fhir/${r.resourceType}/${r.id}`,
        resource: r,
      })),
    };
    return c.body(JSON.stringify(body), 201, {
      "Content-Type": FHIR_JSON,
      Location:
        `${services.config.publicUrl}/fhir/DocumentReference/${volume.documentReference.id}`,
    });
  });
  app.get("/nifti/:id{[0-9a-f-]{36}}", async (c) => {
    requireAccess(c.get("caller"), "ImagingStudy", "read");
    const file = await services.dicom.niftiFile(c.req.param("id"));
    if (!file) throw new HttpError(404, `No NIfTI volume ${c.req.param("id")}`);
    return c.body(file.body, 200, {
      "Content-Type": file.contentType,
      "Content-Length": String(file.size),
      "Content-Disposition": `attachment; filename="${file.filename}"`,
    });
  });
  // Result files of an analysis (segmentation mask, JSON summary), written by the sidecar before
  // it files its report, keyed by the job's idempotency key: the same PUT again is a no-op.
  const result = "/results/:key{[0-9a-f]{64}}/:name{[A-Za-z0-9][A-Za-z0-9._-]{0,63}}";
  // Result files belong to the report they are filed with.
  app.put(result, async (c) => {
    requireAccess(c.get("caller"), "DiagnosticReport", "create");
    const bytes = await readBounded(c.req.raw, services.config.dicom.maxInstanceBytes, "The file");
    const { key, name } = c.req.param();
    await services.store.put(`results/${key}/${name}`, bytes, {
      contentType: resultType(name),
    });
    const url = `${services.config.publicUrl}/uploads/results/${key}/${name}`;
    return c.json({ url, size: bytes.length }, 201, { Location: url });
  });
  app.get(result, async (c) => {
    requireAccess(c.get("caller"), "DiagnosticReport", "read");
    const { key, name } = c.req.param();
    const body = await services.store.getStream(`results/${key}/${name}`);
    if (!body) throw new HttpError(404, `No result file ${key}/${name}`);
    return c.body(body, 200, { "Content-Type": resultType(name) });
  });
  return app;
}

function resultType(name: string): string {
  if (name.endsWith(".nii.gz") || name.endsWith(".gz")) return "application/gzip";
  if (name.endsWith(".json")) return "application/json";
  if (name.endsWith(".xlsx")) {
    return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
  }
  return "application/octet-stream";
}
