/**
 * @module Installed models as FHIR Devices: each `sidecar/models/<name>/manifest.json` becomes a
 * Device (identifier `urn:imaging-ai:model|<name>@<version>`, type `ai-model`) that reports and
 * Observations point at. Pure: read by the API (to register them and check `$analyze` requests)
 * and by the sidecar; reading the ONNX file is the sidecar's business.
 */
import type { Device } from "@medplum/fhirtypes";

export const MODEL_SYSTEM = "urn:imaging-ai:model";
export const DEVICE_TYPE_SYSTEM = "urn:imaging-ai:device-type";
/** Codes of this service for measurements no standard code fits. */
export const MEASURE_SYSTEM = "urn:imaging-ai:measure";

/** The fields of a manifest the API needs; the sidecar reads the rest. */
export interface ModelSummary {
  name: string;
  version: string;
  displayName: string;
  manufacturer: string;
  intendedUse: string;
  notice: string;
  modality?: string;
  bodyPart?: string;
  defaultThreshold: number;
}

/** The models in `dir` (one folder each with a manifest.json); folders without one are skipped. */
export async function readModelSummaries(dir: string): Promise<ModelSummary[]> {
  const out: ModelSummary[] = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = [...Deno.readDirSync(dir)].filter((e) => e.isDirectory);
  } catch {
    return out;
  }
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(await Deno.readTextFile(`${dir}/${e.name}/manifest.json`));
    } catch {
      continue;
    }
    const str = (k: string, fallback = "") =>
      typeof raw[k] === "string" ? raw[k] as string : fallback;
    out.push({
      name: str("name", e.name),
      version: str("version", "0.0.0"),
      displayName: str("displayName", e.name),
      manufacturer: str("manufacturer", "imaging-ai (this service)"),
      intendedUse: str("intendedUse"),
      notice: str("notice", "Not for clinical use."),
      modality: str("modality") || undefined,
      bodyPart: str("bodyPart") || undefined,
      defaultThreshold: typeof raw.defaultThreshold === "number" ? raw.defaultThreshold : 0.55,
    });
  }
  return out;
}

export function modelIdentifier(m: { name: string; version: string }): string {
  return `${m.name}@${m.version}`;
}

/** The Device that stands for a model. */
export function modelDevice(m: ModelSummary): Device {
  return {
    resourceType: "Device",
    identifier: [{ system: MODEL_SYSTEM, value: modelIdentifier(m) }],
    status: "active",
    manufacturer: m.manufacturer,
    deviceName: [
      { name: m.displayName, type: "user-friendly-name" },
      { name: m.name, type: "model-name" },
    ],
    modelNumber: m.name,
    type: {
      coding: [{ system: DEVICE_TYPE_SYSTEM, code: "ai-model", display: "AI inference model" }],
      text: "AI inference model",
    },
    version: [{ value: m.version }],
    safety: [{ text: m.notice }],
    ...(m.intendedUse ? { note: [{ text: `Intended use: ${m.intendedUse}` }] } : {}),
    property: [
      ...(m.modality ? [{ type: { text: "modality" }, valueCode: [{ text: m.modality }] }] : []),
      ...(m.bodyPart ? [{ type: { text: "body part" }, valueCode: [{ text: m.bodyPart }] }] : []),
      {
        type: { text: "default threshold" },
        valueQuantity: [{
          value: m.defaultThreshold,
          system: "http://unitsofmeasure.org",
          code: "1",
        }],
      },
    ],
  };
}
