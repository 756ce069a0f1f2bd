/**
 * @module A stored instance's bytes as a dicom-parser DataSet, with deflated data sets inflated
 * (fflate) and implicit-VR attributes typed from the dcmjs dictionary (so their sequences parse).
 */
import dicomParser, { type DataSet } from "dicom-parser";
import { inflateSync } from "fflate";
import { dictionaryVr } from "./dicom_json.ts";

const OPTIONS = {
  inflater(bytes: Uint8Array, position: number): Uint8Array {
    const inflated = inflateSync(bytes.subarray(position));
    const full = new Uint8Array(position + inflated.length);
    full.set(bytes.subarray(0, position));
    full.set(inflated, position);
    return full;
  },
  vrCallback: (tag: string) => dictionaryVr(tag.slice(1).toUpperCase()),
} as unknown as dicomParser.ParseDicomOptions;

/** Parses a Part 10 file; throws what dicom-parser throws (a string or an object) on bad input. */
export function parseDataSet(bytes: Uint8Array): DataSet {
  return dicomParser.parseDicom(bytes, OPTIONS);
}
