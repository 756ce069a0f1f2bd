/**
 * @module The findings of a DiagnosticReport as a table: one row per finding Observation (volume,
 * probability, diameter, centre, bounding box, body site), for the JSON and XLSX exports, with the
 * report's result files: the NIfTI masks, the JSON summary, and the DICOM SEG and SR stored into
 * the study.
 */
import type { DiagnosticReport, Observation } from "@medplum/fhirtypes";
import { MEASURE_SYSTEM } from "../queue/model_devices.ts";
import type { FhirContext } from "../fhir/context.ts";
import { interact } from "../fhir/interaction.ts";

export interface FindingRow {
  finding: number;
  observation: string;
  code: string;
  volumeMm3?: number;
  probability?: number;
  longestDiameterMm?: number;
  centreXmm?: number;
  centreYmm?: number;
  centreZmm?: number;
  centreVoxelI?: number;
  centreVoxelJ?: number;
  centreVoxelK?: number;
  boundingBox?: string;
  bodySite?: string;
  centreSopInstanceUid?: string;
}

export interface FindingsExport {
  report: {
    id: string;
    status: string;
    issued?: string;
    conclusion?: string;
    imagingStudy?: string;
    subject?: string;
    /** The report's `presentedForm`: what each file is, its media type, where it is. */
    files: { title: string; contentType: string; url: string; size?: number }[];
  };
  findings: FindingRow[];
}

/** Reads the report and its result Observations; 404/410 as for a read. */
export async function findingsOf(ctx: FhirContext, reportId: string): Promise<FindingsExport> {
  const report =
    (await interact(ctx, { method: "GET", path: ["DiagnosticReport", reportId], query: [] }))
      .body as DiagnosticReport;
  const found = await interact(ctx, {
    method: "GET",
    path: ["DiagnosticReport"],
    query: [["_id", reportId], ["_include", "DiagnosticReport:result"], ["_count", "1"]],
  });
  const observations = ((found.body as { entry?: { resource: Observation }[] }).entry ?? [])
    .map((e) => e.resource)
    .filter((r): r is Observation => r.resourceType === "Observation" && !!r.valueQuantity);
  const order = new Map((report.result ?? []).map((r, i) => [r.reference, i]));
  observations.sort((a, b) =>
    (order.get(`Observation/${a.id}`) ?? 0) - (order.get(`Observation/${b.id}`) ?? 0)
  );
  return {
    report: {
      id: report.id!,
      status: report.status,
      issued: report.issued,
      conclusion: report.conclusion,
      imagingStudy: report.imagingStudy?.[0]?.reference,
      subject: report.subject?.reference,
      files: (report.presentedForm ?? []).filter((a) => a.url).map((a) => ({
        title: a.title ?? "",
        contentType: a.contentType ?? "",
        url: a.url!,
        ...(a.size !== undefined ? { size: Number(a.size) } : {}),
      })),
    },
    findings: observations.map((o, i) => row(o, i + 1)),
  };
}

function row(o: Observation, n: number): FindingRow {
  const c = (code: string) =>
    o.component?.find((x) =>
      x.code.coding?.some((k) => k.system === MEASURE_SYSTEM && k.code === code)
    );
  const num = (code: string) => c(code)?.valueQuantity?.value ?? c(code)?.valueInteger;
  return {
    finding: n,
    observation: `Observation/${o.id}`,
    code: o.code.text ?? o.code.coding?.[0]?.display ?? "",
    volumeMm3: o.valueQuantity?.value,
    probability: num("probability"),
    longestDiameterMm: num("longest-diameter"),
    centreXmm: num("centre-x"),
    centreYmm: num("centre-y"),
    centreZmm: num("centre-z"),
    centreVoxelI: num("centre-voxel-i"),
    centreVoxelJ: num("centre-voxel-j"),
    centreVoxelK: num("centre-voxel-k"),
    boundingBox: c("bounding-box")?.valueString,
    bodySite: o.bodySite?.coding?.[0]?.display ?? o.bodySite?.text,
    centreSopInstanceUid: c("centre-sop-instance-uid")?.valueString,
  };
}

const COLUMNS: [keyof FindingRow, string][] = [
  ["finding", "Finding"],
  ["code", "Finding type"],
  ["volumeMm3", "Volume (mm³)"],
  ["longestDiameterMm", "Longest diameter (mm)"],
  ["probability", "Probability"],
  ["bodySite", "Body site"],
  ["centreXmm", "Centre x (mm)"],
  ["centreYmm", "Centre y (mm)"],
  ["centreZmm", "Centre z (mm)"],
  ["centreVoxelI", "Voxel i"],
  ["centreVoxelJ", "Voxel j"],
  ["centreVoxelK", "Slice k"],
  ["boundingBox", "Bounding box"],
  ["centreSopInstanceUid", "Centre slice SOP Instance UID"],
  ["observation", "FHIR Observation"],
];

/** The export as an XLSX workbook (write-excel-file): a findings sheet and a report sheet. */
export async function findingsXlsx(data: FindingsExport): Promise<Uint8Array> {
  const { default: writeXlsxFile } = await import("write-excel-file/node");
  const header = COLUMNS.map(([, title]) => ({ value: title, fontWeight: "bold" as const }));
  const rows = data.findings.map((f) => COLUMNS.map(([key]) => ({ value: f[key] ?? undefined })));
  const r = data.report;
  const about = [
    ["Report", `DiagnosticReport/${r.id}`],
    ["Status", r.status],
    ["Issued", r.issued ?? ""],
    ["Study", r.imagingStudy ?? ""],
    ["Patient", r.subject ?? ""],
    ["Conclusion", r.conclusion ?? ""],
    ...r.files.map((f) => [f.title || f.contentType, f.url]),
  ].map(([k, v]) => [{ value: k, fontWeight: "bold" as const }, { value: v }]);
  const buffer = await writeXlsxFile(
    [
      { data: [header, ...rows], sheet: "Findings" },
      { data: about, sheet: "Report" },
    ],
  ).toBuffer();
  return new Uint8Array(buffer);
}
