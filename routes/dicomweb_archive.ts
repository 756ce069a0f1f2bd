/**
 * @module HTTP for study and series downloads as ZIP and for de-identification, under /dicomweb
 * (the access middleware of `dicomweb.ts` applies: WADO-RS read access, patient-bound tokens their
 * own studies only; POST needs ImagingStudy create):
 * - `GET /studies/{s}[/series/{se}]` with `Accept: application/zip`, or `GET …/archive`: the
 *   instances as a streamed ZIP (`dicom/archive.ts`), `manifest.json` last; 206 with Warning
 *   headers when some objects are missing.
 * - `?deidentify=basic`: each instance de-identified (PS3.15 Basic Application Level
 *   Confidentiality Profile, Retain Longitudinal Temporal Information with Modified Dates and
 *   Clean Descriptors Options); instances at risk of burned-in text are counted in
 *   `X-Burned-In-Flagged` / `X-Burned-In-Excluded`, named in Warning headers and the manifest, and
 *   left out unless `burnedInAnnotation=include`.
 * - `POST /studies/{s}/$deidentify[?burnedInAnnotation=include]`: a de-identified copy stored as a
 *   new study; answers its Study Instance UID and the report (`dicom/deidentify.ts`).
 * Every download and copy is also audited as an export (AuditEvent type DCM 110106).
 */
import type { Context, Hono, Next } from "hono";
import type { AppEnv, Services } from "./env.ts";
import { requireAccess } from "../auth/access.ts";
import { readStudy } from "../db/dicom_repo.ts";
import { type ArchivePlan, archiveStream, planArchive } from "../dicom/archive.ts";
import { createDeidSession, EXPORT_OPTIONS } from "../dicom/codec/deid.ts";
import { parseMediaType } from "../dicom/codec/multipart.ts";
import { deidentifyCopy } from "../dicom/deidentify.ts";
import { DicomwebError } from "../dicom/errors.ts";

const ZIP_TYPES = ["application/zip", "application/x-zip-compressed"];
/** CID 7050 codes of what `deidentify=basic` applies. */
const METHOD = "basic; codes=113100,113107,113105";

export function archiveRoutes(
  app: Hono<AppEnv>,
  services: Services,
  paths: { study: string; series: string },
): void {
  const deps = services.dicom.deps;

  const download = async (c: Context<AppEnv>) => {
    const { deidentify, includeBurnedIn } = exportParams(c);
    const target = { studyUid: c.req.param("study")!, seriesUid: c.req.param("series") };
    const session = deidentify ? createDeidSession(EXPORT_OPTIONS) : undefined;
    const plan = await planArchive(
      deps,
      target,
      session ? { session, includeBurnedIn } : undefined,
    );
    const headers = archiveHeaders(plan);
    await audit(services, c, plan, deidentify);
    return c.body(archiveStream(deps, plan), plan.missing.length ? 206 : 200, headers);
  };

  // WADO-RS retrieve: application/zip here, anything else to the multipart route after this one.
  const retrieve = (c: Context<AppEnv>, next: Next) => {
    if (wantsZip(c.req.header("accept"))) return download(c);
    if (new URL(c.req.url).searchParams.has("deidentify")) {
      throw new DicomwebError(
        406,
        "deidentify is offered for downloads as application/zip (Accept: application/zip, or …/archive)",
      );
    }
    return next();
  };
  app.get(paths.study, retrieve);
  app.get(paths.series, retrieve);
  const archive = (c: Context<AppEnv>) => {
    const accept = c.req.header("accept");
    if (accept && !acceptsZip(accept)) {
      throw new DicomwebError(406, `Cannot answer with ${accept}; an archive is application/zip`);
    }
    return download(c);
  };
  app.get(`${paths.study}/archive`, archive);
  app.get(`${paths.series}/archive`, archive);

  const copy = async (c: Context<AppEnv>) => {
    // The middleware asked for create (POST); a copy reads the source too.
    requireAccess(c.get("caller"), "ImagingStudy", "read");
    const accept = c.req.header("accept");
    if (accept && !/application\/(dicom\+)?json|\*\/\*|application\/\*/i.test(accept)) {
      throw new DicomwebError(406, `Cannot answer with ${accept}; the report is application/json`);
    }
    const { includeBurnedIn } = exportParams(c, true);
    const studyUid = c.req.param("study")!;
    const report = await deidentifyCopy(
      deps,
      (body, boundary, study) => services.dicom.stowMultipart(body, boundary, study),
      studyUid,
      { includeBurnedIn },
    );
    const study = await readStudy(services.db, studyUid);
    const caller = c.get("caller");
    services.audit.record({
      kind: "export",
      subtype: "dicom-deidentify",
      action: "C",
      status: report.status,
      agent: { kind: caller.kind, id: caller.sub, name: caller.name ?? caller.clientId },
      entity: study?.imaging_study_id ? `ImagingStudy/${study.imaging_study_id}` : "ImagingStudy",
      query: new URLSearchParams({ StudyInstanceUID: studyUid, deidentify: "basic" }).toString(),
      patient: study?.patient_ref ?? undefined,
      requestId: c.get("requestId"),
      description:
        `De-identified copy (PS3.15 ${METHOD}) stored as study ${report.studyInstanceUid}: ${report.stored} instances, ${report.flagged.length} flagged for burned-in annotation, ${report.refused.length} refused`,
    });
    return c.json(report, report.status === 200 || report.status === 202 ? report.status : 409);
  };
  // `$` would be a regular-expression anchor in the router's pattern: matched as a parameter.
  app.post(`${paths.study}/:operation{\\$deidentify}`, copy);
}

/** `deidentify` and `burnedInAnnotation`, checked: 400 for anything else. */
function exportParams(
  c: Context<AppEnv>,
  alwaysDeid = false,
): { deidentify: boolean; includeBurnedIn: boolean } {
  const q = new URL(c.req.url).searchParams;
  const deid = q.get("deidentify");
  if (deid !== null && deid !== "basic") {
    throw new DicomwebError(
      400,
      `deidentify=${deid} is not offered: deidentify=basic applies the PS3.15 Basic Application Level Confidentiality Profile with the Retain Longitudinal Temporal Information with Modified Dates and Clean Descriptors Options`,
    );
  }
  const burned = q.get("burnedInAnnotation");
  if (burned !== null && burned !== "include" && burned !== "exclude") {
    throw new DicomwebError(400, `burnedInAnnotation must be include or exclude, not "${burned}"`);
  }
  const deidentify = alwaysDeid || deid === "basic";
  if (burned !== null && !deidentify) {
    throw new DicomwebError(
      400,
      "burnedInAnnotation applies to de-identified exports (deidentify=basic)",
    );
  }
  return { deidentify, includeBurnedIn: burned === "include" };
}

function ranges(accept: string): string[] {
  return accept.split(",").flatMap((r) => {
    try {
      const m = parseMediaType(r);
      return m.params.q === "0" ? [] : [m.type];
    } catch {
      return [];
    }
  });
}

/** A WADO-RS Accept that asks for a ZIP before any multipart or DICOM media type. */
function wantsZip(accept: string | undefined): boolean {
  for (const type of ranges(accept ?? "")) {
    if (ZIP_TYPES.includes(type)) return true;
    if (type.startsWith("multipart/") || type === "application/dicom" || type === "*/*") {
      return false;
    }
  }
  return false;
}

function acceptsZip(accept: string): boolean {
  return ranges(accept).some((t) => ZIP_TYPES.includes(t) || t === "*/*" || t === "application/*");
}

function archiveHeaders(plan: ArchivePlan): Record<string, string> {
  const session = plan.session;
  const study = session ? session.keys.uid(plan.target.studyUid) : plan.target.studyUid;
  const series = plan.target.seriesUid &&
    (session ? session.keys.uid(plan.target.seriesUid) : plan.target.seriesUid);
  const headers: Record<string, string> = {
    "Content-Type": "application/zip",
    "Content-Disposition": `attachment; filename="${series ?? study}${
      session ? "-deidentified" : ""
    }.zip"`,
    "X-Archive-Instances": String(plan.rows.length),
  };
  const notes: string[] = [];
  if (plan.missing.length) {
    notes.push(
      `${plan.missing.length} instances are missing from the object store and not in this archive`,
      ...plan.missing.map((r) => `Instance ${r.sop_uid} is missing from the object store`),
    );
  }
  if (session) {
    headers["X-Deidentification"] = METHOD;
    headers["X-Burned-In-Flagged"] = String(plan.flagged.length);
    headers["X-Burned-In-Excluded"] = String(plan.flagged.filter((f) => !f.included).length);
    for (const f of plan.flagged) {
      notes.push(
        `Instance ${f.row.sop_uid} flagged: ${f.reason}; ${
          f.included
            ? "included (burnedInAnnotation=include)"
            : "left out (burnedInAnnotation=include includes it)"
        }`,
      );
    }
  }
  if (notes.length) headers["Warning"] = warning(notes);
  return headers;
}

function warning(notes: string[]): string {
  const shown = notes.slice(0, 20).map((n) =>
    `299 - "${n.replace(/[\r\n"\\]/g, " ").replace(/[^\x20-\x7e]/g, "?").slice(0, 300)}"`
  );
  if (notes.length > 20) shown.push(`299 - "and ${notes.length - 20} more"`);
  return shown.join(", ");
}

async function audit(
  services: Services,
  c: Context<AppEnv>,
  plan: ArchivePlan,
  deidentify: boolean,
): Promise<void> {
  const study = await readStudy(services.db, plan.target.studyUid);
  const caller = c.get("caller");
  const excluded = plan.flagged.filter((f) => !f.included).length;
  services.audit.record({
    kind: "export",
    subtype: deidentify ? "dicom-zip-deidentified" : "dicom-zip",
    action: "R",
    status: plan.missing.length ? 206 : 200,
    agent: { kind: caller.kind, id: caller.sub, name: caller.name ?? caller.clientId },
    entity: study?.imaging_study_id ? `ImagingStudy/${study.imaging_study_id}` : "ImagingStudy",
    query: new URLSearchParams({
      StudyInstanceUID: plan.target.studyUid,
      ...(plan.target.seriesUid ? { SeriesInstanceUID: plan.target.seriesUid } : {}),
      ...(deidentify ? { deidentify: "basic" } : {}),
    }).toString(),
    patient: study?.patient_ref ?? undefined,
    requestId: c.get("requestId"),
    description: `DICOM ${plan.target.seriesUid ? "series" : "study"} download as ZIP${
      deidentify ? ` de-identified (PS3.15 ${METHOD})` : ""
    }: ${plan.rows.length} instances, ${plan.bytes} bytes${
      deidentify
        ? `, ${plan.flagged.length} flagged for burned-in annotation, ${excluded} left out`
        : ""
    }`,
  });
}
