/**
 * @module HTTP for DICOMweb at /dicomweb (PS3.18): STOW-RS (multipart/related or a single
 * application/dicom body), WADO-RS (instances, metadata, frames, bulk data), QIDO-RS
 * (studies, series, instances) and DELETE of a study, series or instance (administrators, as
 * Google Cloud Healthcare and Azure DICOM services offer). Media types are negotiated here; the
 * work is in `dicom/`.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import type { AppEnv } from "./env.ts";
import { compartmentFor, requireAccess, requireAdmin } from "../auth/access.ts";
import { describeDeletion, type DicomDeletion } from "../dicom/delete.ts";
import { studyOfPatient } from "../db/dicom_repo.ts";
import { DicomwebError } from "../dicom/errors.ts";
import { newBoundary, parseMediaType, writeMultipart } from "../dicom/codec/multipart.ts";
import type { OutgoingPart } from "../dicom/codec/multipart.ts";
import type { QidoLevel } from "../dicom/qido.ts";
import type { StowResult } from "../dicom/stow.ts";
import { RETRY_AFTER_SECONDS } from "../db/unavailable.ts";
import { renderedRoutes } from "./dicomweb_rendered.ts";
import { archiveRoutes } from "./dicomweb_archive.ts";
import type { Services } from "./env.ts";

const DICOM_JSON = "application/dicom+json";
const UID = "[0-9.]{1,64}";

export function dicomwebRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const dicom = services.dicom;

  // STOW-RS
  const stow = async (c: Context<AppEnv>, study?: string) => {
    acceptJson(c);
    const length = Number(c.req.header("content-length") ?? NaN);
    if (length > services.config.dicom.maxRequestBytes) {
      throw new DicomwebError(
        413,
        `The body is ${length} bytes; the limit is ${services.config.dicom.maxRequestBytes}`,
      );
    }
    const contentType = c.req.header("content-type") ?? "";
    let media;
    try {
      media = parseMediaType(contentType);
    } catch {
      throw new DicomwebError(415, `Unsupported Content-Type "${contentType}"`);
    }
    const body = c.req.raw.body;
    if (!body) throw new DicomwebError(400, "The request has no body");
    let result: StowResult;
    if (media.type === "multipart/related") {
      const type = media.params.type?.toLowerCase();
      if (type && type !== "application/dicom") {
        throw new DicomwebError(
          415,
          `multipart/related of ${type} is not supported; send application/dicom parts`,
        );
      }
      if (!media.params.boundary) {
        throw new DicomwebError(400, "multipart/related needs a boundary parameter");
      }
      result = await dicom.stowMultipart(body, media.params.boundary, study);
    } else if (media.type === "application/zip" || media.type === "application/x-zip-compressed") {
      result = await dicom.stowZip(body, study);
    } else if (media.type === "application/dicom") {
      result = await dicom.stowSingle(body, study);
    } else {
      throw new DicomwebError(
        415,
        `Unsupported Content-Type "${media.type}": send multipart/related; type="application/dicom" or application/dicom`,
      );
    }
    const headers: Record<string, string> = { "Content-Type": DICOM_JSON };
    const warning = warningHeader(result.notes);
    if (warning) headers["Warning"] = warning;
    if (result.status === 503 || result.status === 507) {
      headers["Retry-After"] = String(RETRY_AFTER_SECONDS);
    }
    return c.body(JSON.stringify(result.body), result.status, headers);
  };
  // DICOMweb is ImagingStudy access: QIDO-RS searches, WADO-RS reads, STOW-RS creates, DELETE
  // (admins only) deletes. A token bound to a patient reads and searches that patient's studies
  // only, and never writes here.
  app.use("*", async (c, next) => {
    const method = c.req.method.toUpperCase();
    const path = c.req.path;
    const caller = c.get("caller");
    if (method === "POST") requireAccess(caller, "ImagingStudy", "create");
    else if (method === "DELETE") {
      // Deletion removes images for good: administrators only (with the delete scope).
      requireAdmin(caller);
      requireAccess(caller, "ImagingStudy", "delete");
    } else {
      const patient = compartmentFor(caller, "ImagingStudy", searching(path) ? "search" : "read");
      const study = /\/studies\/([^/]+)/.exec(path)?.[1];
      if (patient !== undefined && study && !(await studyOfPatient(services.db, study, patient))) {
        throw new DicomwebError(404, `Study ${study} not found`);
      }
    }
    await next();
  });
  app.post("/studies", (c) => stow(c));
  app.post(`/studies/:study{${UID}}`, (c) => stow(c, c.req.param("study")));

  // QIDO-RS
  const search = async (
    c: Context<AppEnv>,
    level: QidoLevel,
    studyUid?: string,
    seriesUid?: string,
  ) => {
    acceptJson(c);
    const url = new URL(c.req.url);
    const { results, warnings } = await dicom.qido({
      level,
      studyUid,
      seriesUid,
      params: url.searchParams,
      patient: compartmentFor(c.get("caller"), "ImagingStudy", "search"),
    });
    const headers: Record<string, string> = { "Content-Type": DICOM_JSON };
    const warning = warningHeader(warnings);
    if (warning) headers["Warning"] = warning;
    return c.body(JSON.stringify(results), 200, headers);
  };
  app.get("/studies", (c) => search(c, "study"));
  app.get("/series", (c) => search(c, "series"));
  app.get("/instances", (c) => search(c, "instance"));
  app.get(`/studies/:study{${UID}}/series`, (c) => search(c, "series", c.req.param("study")));
  app.get(`/studies/:study{${UID}}/instances`, (c) => search(c, "instance", c.req.param("study")));
  app.get(
    `/studies/:study{${UID}}/series/:series{${UID}}/instances`,
    (c) => search(c, "instance", c.req.param("study"), c.req.param("series")),
  );

  // WADO-RS
  const target = (c: Context<AppEnv>) => ({
    studyUid: c.req.param("study")!,
    seriesUid: c.req.param("series"),
    sopUid: c.req.param("instance"),
  });
  const instanceTarget = (c: Context<AppEnv>) => ({
    studyUid: c.req.param("study")!,
    seriesUid: c.req.param("series")!,
    sopUid: c.req.param("instance")!,
  });
  const retrieve = async (c: Context<AppEnv>) => {
    const t = target(c);
    const { single, syntaxes } = acceptDicom(c, !!t.sopUid);
    const rows = await dicom.instances(t);
    const other = syntaxes && rows.find((r) => !syntaxes.has(r.transfer_syntax));
    if (other) {
      throw new DicomwebError(
        406,
        `Instance ${other.sop_uid} is stored in transfer syntax ${other.transfer_syntax} and is served as stored; ask for transfer-syntax=* or that syntax`,
      );
    }
    if (single) {
      const bytes = await dicom.deps.store.get(rows[0].object_key);
      if (!bytes) {
        throw new DicomwebError(404, `The bytes of instance ${rows[0].sop_uid} are missing`);
      }
      return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
        "Content-Type": `application/dicom; transfer-syntax=${rows[0].transfer_syntax}`,
      });
    }
    // Every object is checked before the status is sent: some missing is a 206 of the others,
    // with the missing SOP Instance UIDs in Warning headers; all missing is a 404.
    const { present, missing } = await dicom.storedInstances(t, rows);
    if (!missing.length) return multipart(c, dicom.instanceParts(rows), "application/dicom");
    const warning = warningHeader([
      `${missing.length} of ${rows.length} instances are missing from the object store and not in this response`,
      ...missing.map((r) => `Instance ${r.sop_uid} is missing from the object store`),
    ]);
    return multipart(c, dicom.instanceParts(present), "application/dicom", 206, {
      Warning: warning!,
    });
  };
  const metadata = async (c: Context<AppEnv>) => {
    acceptJson(c);
    return c.body(await dicom.metadata(target(c)), 200, { "Content-Type": DICOM_JSON });
  };
  const inst = `/studies/:study{${UID}}/series/:series{${UID}}/instances/:instance{${UID}}`;
  // ZIP downloads, de-identified ones and $deidentify (first: Accept: application/zip wins).
  archiveRoutes(app, services, {
    study: `/studies/:study{${UID}}`,
    series: `/studies/:study{${UID}}/series/:series{${UID}}`,
  });
  app.get(`/studies/:study{${UID}}`, retrieve);
  app.get(`/studies/:study{${UID}}/series/:series{${UID}}`, retrieve);
  app.get(inst, retrieve);
  app.get(`/studies/:study{${UID}}/metadata`, metadata);
  app.get(`/studies/:study{${UID}}/series/:series{${UID}}/metadata`, metadata);
  app.get(`${inst}/metadata`, metadata);
  app.get(`${inst}/frames/:frames`, async (c) => {
    const numbers = c.req.param("frames").split(",").map((s) => s.trim());
    if (!numbers.every((n) => /^\d+$/.test(n))) {
      throw new DicomwebError(
        400,
        `Frame numbers must be positive integers: "${c.req.param("frames")}"`,
      );
    }
    const { parts, type } = await dicom.frames(
      instanceTarget(c),
      numbers.map(Number),
    );
    return multipart(c, iterate(parts), type);
  });
  app.get(`${inst}/bulkdata/*`, async (c) => {
    const path = new URL(c.req.url).pathname.replace(/^.*\/bulkdata\//, "").split("/").filter(
      Boolean,
    );
    const bytes = await dicom.bulkData(instanceTarget(c), path);
    return multipart(
      c,
      iterate([{ contentType: "application/octet-stream", body: bytes }]),
      "application/octet-stream",
    );
  });
  // Rendered and thumbnail resources of studies, series, instances and frames.
  renderedRoutes(app, dicom, {
    study: `/studies/:study{${UID}}`,
    series: `/studies/:study{${UID}}/series/:series{${UID}}`,
    instance: inst,
  });
  // Deletion of a study, series or instance (admins): the index, then the objects; 204 or 404.
  const remove = async (c: Context<AppEnv>) => {
    const deletion = await dicom.delete({
      studyUid: c.req.param("study")!,
      seriesUid: c.req.param("series"),
      sopUid: c.req.param("instance"),
    });
    recordDeletion(services, c, deletion);
    return c.body(null, 204);
  };
  app.delete(`/studies/:study{${UID}}`, remove);
  app.delete(`/studies/:study{${UID}}/series/:series{${UID}}`, remove);
  app.delete(`/studies/:study{${UID}}/series/:series{${UID}}/instances/:instance{${UID}}`, remove);
  app.all("/*", () => {
    throw new DicomwebError(404, "No such DICOMweb resource");
  });
  return app;
}

/**
 * The AuditEvent of a deletion of DICOM data, besides the request's own: what went (the
 * ImagingStudy, the instances, the derived resources, where copies had been sent), by whom.
 */
export function recordDeletion(
  services: Services,
  c: Context<AppEnv>,
  deletion: DicomDeletion,
  why?: string,
): void {
  const caller = c.get("caller");
  const { studyUid, seriesUid, sopUid } = deletion.target;
  services.audit.record({
    kind: "rest",
    subtype: "delete",
    action: "D",
    status: 200,
    agent: { kind: caller.kind, id: caller.sub, name: caller.name ?? caller.clientId },
    entity: deletion.imagingStudy ?? "ImagingStudy",
    query: new URLSearchParams({
      StudyInstanceUID: studyUid,
      ...(seriesUid ? { SeriesInstanceUID: seriesUid } : {}),
      ...(sopUid ? { SOPInstanceUID: sopUid } : {}),
    }).toString(),
    patient: deletion.patient,
    requestId: c.get("requestId"),
    description: describeDeletion(deletion, why),
  });
}

async function* iterate(parts: OutgoingPart[]): AsyncGenerator<OutgoingPart> {
  yield* parts;
}

function multipart(
  c: Context<AppEnv>,
  parts: AsyncIterable<OutgoingPart>,
  type: string,
  status: 200 | 206 = 200,
  headers: Record<string, string> = {},
): Response {
  const boundary = newBoundary();
  return c.body(writeMultipart(parts, boundary), status, {
    ...headers,
    "Content-Type": `multipart/related; type="${type}"; boundary=${boundary}`,
  });
}

/** Accept for JSON answers: application/dicom+json, application/json or anything. */
/** QIDO-RS paths (a search) as opposed to WADO-RS ones (a read). */
function searching(path: string): boolean {
  return /\/(studies|series|instances)$/.test(path);
}

function acceptJson(c: Context<AppEnv>): void {
  const accept = c.req.header("accept");
  if (!accept) return;
  const ok = accept.split(",").some((r) => {
    const t = r.split(";")[0].trim().toLowerCase();
    return ["application/dicom+json", "application/json", "*/*", "application/*"].includes(t);
  });
  if (!ok) {
    throw new DicomwebError(
      406,
      `Cannot answer with ${accept}; this server speaks application/dicom+json`,
    );
  }
}

/**
 * Accept for instance retrieval: multipart/related; type="application/dicom", or a bare
 * application/dicom for one instance. Instances are served as stored, so a transfer-syntax
 * parameter other than `*` narrows what is acceptable (`syntaxes`; null means any).
 */
function acceptDicom(
  c: Context<AppEnv>,
  instance: boolean,
): { single: boolean; syntaxes: Set<string> | null } {
  const accept = c.req.header("accept");
  if (!accept) return { single: false, syntaxes: null };
  let multipartOk = false;
  let single = false;
  let syntaxes: Set<string> | null = new Set();
  for (const range of accept.split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/)) {
    let media;
    try {
      media = parseMediaType(range);
    } catch {
      continue;
    }
    const dicomRange = media.type === "*/*" || media.type === "multipart/*" ||
      (media.type === "multipart/related" &&
        (!media.params.type || media.params.type === "application/dicom")) ||
      (media.type === "application/dicom" && instance);
    if (!dicomRange) continue;
    if (media.type === "application/dicom") single = true;
    else multipartOk = true;
    const ts = media.params["transfer-syntax"];
    if (!ts || ts === "*") syntaxes = null;
    else syntaxes?.add(ts);
  }
  if (!multipartOk && !single) {
    throw new DicomwebError(
      406,
      `Cannot answer with ${accept}: instances are multipart/related; type="application/dicom"`,
    );
  }
  return { single: single && !multipartOk, syntaxes };
}

function warningHeader(notes: string[]): string | undefined {
  if (!notes.length) return undefined;
  // A header value must be a ByteString: notes quote client input (values of the instances, query
  // keys), so anything but printable ASCII becomes `?` rather than a 500 after the work is done.
  const shown = notes.slice(0, 20).map((n) =>
    `299 - "${n.replace(/[\r\n"\\]/g, " ").replace(/[^\x20-\x7e]/g, "?").slice(0, 300)}"`
  );
  if (notes.length > 20) shown.push(`299 - "and ${notes.length - 20} more"`);
  return shown.join(", ");
}
