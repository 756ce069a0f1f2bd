/** @module The installed AI models, read from their FHIR Devices. */
import { fhirGet } from "./api.ts";
import { type Bundle, type Json, resourcesOf } from "./fhir_types.ts";

export interface Model {
  name: string;
  displayName: string;
  version?: string;
  defaultThreshold?: number;
  notice?: string;
  intendedUse?: string;
  modality?: string;
  bodyPart?: string;
  deviceId?: string;
  status?: string;
}

/** A model Device as the UI shows it. */
export function modelOf(d: Json): Model {
  const prop = (t: string) => (d.property ?? []).find((p: Json) => p.type?.text === t);
  return {
    name: d.modelNumber ??
      d.deviceName?.find((n: Json) => n.type === "model-name")?.name ?? d.id,
    displayName: d.deviceName?.find((n: Json) => n.type === "user-friendly-name")?.name ??
      d.modelNumber ?? "Model",
    version: d.version?.[0]?.value,
    defaultThreshold: prop("default threshold")?.valueQuantity?.[0]?.value,
    notice: d.safety?.[0]?.text,
    intendedUse: d.note?.[0]?.text?.replace(/^Intended use:\s*/, ""),
    modality: prop("modality")?.valueCode?.[0]?.text,
    bodyPart: prop("body part")?.valueCode?.[0]?.text,
    deviceId: d.id,
    status: d.status,
  };
}

/** `GET /fhir/Device?type=urn:imaging-ai:device-type|ai-model`. */
export async function loadModels(signal?: AbortSignal): Promise<Model[]> {
  const bundle = await fhirGet<Bundle>(
    `Device?type=${encodeURIComponent("urn:imaging-ai:device-type|ai-model")}&_count=100`,
    signal,
  );
  return resourcesOf(bundle, "Device").map(modelOf);
}
