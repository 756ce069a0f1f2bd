/** @module What the DICOM layer needs from its caller: database, object store, FHIR, settings. */
import type { DicomConfig } from "../platform/config.ts";
import type { Db } from "../db/db.ts";
import type { ObjectCleanup } from "../db/object_cleanup.ts";
import type { ObjectStore } from "../db/object_store.ts";
import type { FhirContext } from "../fhir/context.ts";
import type { StudyStability } from "./stability.ts";
import type { StudySync } from "./study_sync.ts";
import type { Forwarding } from "./forward/service.ts";

export interface DicomContext {
  db: Db;
  store: ObjectStore;
  fhir: FhirContext;
  config: DicomConfig;
  /** The DICOMweb base URL as clients see it, e.g. https://imaging.example.org/dicomweb */
  dicomwebBase: string;
  /** The service's public origin, e.g. https://imaging.example.org */
  publicUrl: string;
  stability: StudyStability;
  /** Removes, in the background, objects a failed upload left and the store would not delete. */
  cleanup: ObjectCleanup;
  /** Brings a study's ImagingStudy up to date with the index, coalesced. */
  studySync: StudySync;
  /** Queues what a STOW stored for the DICOM destinations that want it (DICOM_DESTINATIONS). */
  forwarding?: Pick<Forwarding, "queue">;
  log(
    level: "debug" | "info" | "warn" | "error",
    message: string,
    data?: Record<string, unknown>,
  ): void;
}
