/**
 * @module Builds the Services object from a Config: the database (migrated) and the FHIR service.
 * Nothing here is a module-level singleton, so tests build as many as they like.
 */
import type { Config, ForwardingConfig } from "./platform/config.ts";
import { openDb } from "./db/db.ts";
import { migrate } from "./db/migrate.ts";
import { loadDefinitions } from "./fhir/definitions.ts";
import { createFhirService } from "./fhir/service.ts";
import { createFolderStore } from "./db/folder_store.ts";
import { createObjectCleanup } from "./db/object_cleanup.ts";
import { OBJECT_SWEEP_MIN_AGE_MS, scheduleObjectSweep } from "./dicom/sweep.ts";
import type { DicomContext } from "./dicom/context.ts";
import { syncStudyResources } from "./dicom/fhir_sync.ts";
import { createStudySync } from "./dicom/study_sync.ts";
import { type ObjectStore, withStoreFaults } from "./db/object_store.ts";
import { createS3Store } from "./db/s3_store.ts";
import { createDicomService } from "./dicom/service.ts";
import { createStudyStability } from "./dicom/stability.ts";
import { createChangeFeed } from "./fhir/change_feed.ts";
import {
  createSubscriptionService,
  type SubscriptionOptions,
} from "./fhir/subscriptions/service.ts";
import { createLiveEvents } from "./fhir/subscriptions/live_events.ts";
import { createBulkExport } from "./fhir/bulk/service.ts";
import { BULK_DATA_CAPABILITY, BULK_DATA_OPERATIONS } from "./fhir/bulk/model.ts";
import { createAnalysisService } from "./analysis/service.ts";
import { type InProcessWorker, startInProcessWorker } from "./sidecar/in_process.ts";
import { createLogger } from "./platform/log.ts";
import { createAuthService } from "./auth/service.ts";
import { createAuditLog } from "./audit/log.ts";
import { createRateLimiter } from "./ratelimit/limits.ts";
import { createRequestStats } from "./observability/stats.ts";
import type { Services } from "./routes/env.ts";
import { createForwarding } from "./dicom/forward/service.ts";
import { startDimseServer } from "./dicom/dimse/scp.ts";

export type { Services } from "./routes/env.ts";

export interface ServiceOverrides {
  /** A Postgres schema to use (tests use one each). */
  schema?: string;
  /** The read replica's schema (default: `schema`). */
  readSchema?: string;
  /** Subscription retry policy (defaults: fhir/subscriptions/service.ts). */
  subscriptions?: Partial<SubscriptionOptions>;
  /** DICOM forwarding's retry policy and destinations (defaults: the config). */
  forwarding?: Partial<ForwardingConfig>;
}

/** The one logger of the service and the sidecar (JSON lines on stderr). */
export type { Logger } from "./platform/log.ts";

export function createObjectStore(config: Readonly<Config>): ObjectStore {
  const o = config.objectStore;
  return withStoreFaults(
    o.s3Endpoint
      ? createS3Store({
        endpoint: o.s3Endpoint,
        bucket: o.s3Bucket,
        region: o.s3Region,
        accessKeyId: o.s3AccessKeyId,
        secretAccessKey: o.s3SecretAccessKey,
        forcePathStyle: o.s3ForcePathStyle,
        timeoutMs: o.s3TimeoutSeconds * 1000,
      })
      : createFolderStore(o.folder),
  );
}

export async function createServices(
  config: Readonly<Config>,
  overrides: ServiceOverrides = {},
): Promise<Services> {
  loadDefinitions();
  const db = await openDb({
    url: config.databaseUrl || undefined,
    dataDir: config.pgliteDir === "memory" ? undefined : config.pgliteDir,
    poolSize: config.databasePoolSize,
    prepare: config.databasePrepare,
    schema: overrides.schema,
  });
  await migrate(db);
  // A replica is migrated through its primary: never written here.
  const readDb = config.databaseReadUrl
    ? await openDb({
      url: config.databaseReadUrl,
      poolSize: config.databasePoolSize,
      prepare: config.databasePrepare,
      schema: overrides.readSchema ?? overrides.schema,
    })
    : undefined;
  const fhir = createFhirService({
    db,
    readDb,
    baseUrl: `${config.publicUrl}/fhir`,
    defaultCount: config.searchDefaultCount,
    maxCount: config.searchMaxCount,
    subscriptionEndpoints: [...config.subscriptionEndpoints],
    outboundPrivateAddresses: config.outboundPrivateAddresses,
    // Bulk Data's $export is served by routes/bulk.ts, outside the FHIR dispatch.
    declaredOperations: BULK_DATA_OPERATIONS,
    instantiates: [BULK_DATA_CAPABILITY],
  });
  const log = createLogger(config.logLevel, "api");
  const store = createObjectStore(config);
  await store.init();
  const stability = createStudyStability(db, config.dicom.stableSeconds, {
    onError: (e) => log("error", "study stability failed", { error: String(e) }),
  });
  const forwarding = createForwarding({
    db,
    store,
    config: { ...config.forwarding, ...overrides.forwarding },
    aeTitle: config.dimse.aeTitle,
    log,
  });
  const dicomDeps: DicomContext = {
    db,
    store,
    fhir: fhir.context,
    config: config.dicom,
    dicomwebBase: `${config.publicUrl}/dicomweb`,
    publicUrl: config.publicUrl,
    stability,
    cleanup: createObjectCleanup(store, {
      onError: (key, e) =>
        log("warn", "could not remove an unindexed object", { key, error: String(e) }),
    }),
    forwarding,
    studySync: createStudySync(db, (tx, study) => syncStudyResources(dicomDeps, tx, study), {
      intervalMs: config.dicom.imagingStudySyncMs,
      onError: (study, e) =>
        log("warn", "ImagingStudy rebuild failed; tried again", { study, error: String(e) }),
    }),
    log,
  };
  const dicom = await createDicomService(dicomDeps);
  const sweeper = scheduleObjectSweep({ db, store, log }, {
    everyHours: config.objectStore.sweepHours,
    olderThanMs: OBJECT_SWEEP_MIN_AGE_MS,
  });
  const changes = createChangeFeed(db, {
    intervalMs: config.changeFeedIntervalMs,
    onError: (e) => log("error", "change feed listener failed", { error: String(e) }),
  });
  const subscriptions = createSubscriptionService({
    db,
    fhir,
    changes,
    log,
    options: overrides.subscriptions,
  });
  const events = createLiveEvents({ db, fhir, changes, log });
  const bulk = createBulkExport({
    db,
    store,
    fhir,
    log,
    retentionHours: config.bulkExport.retentionHours,
    fileResources: config.bulkExport.fileResources,
  });
  const analysis = await createAnalysisService({ config, fhir, dicom, log, changes });
  const audit = createAuditLog(db, log, { enabled: config.auditEnabled });
  const limits = createRateLimiter({
    limits: { ...config.rateLimits, login: config.auth.loginRatePerMinute },
    redisUrl: config.inference.redisUrl || undefined,
    prefix: config.inference.redisKeyPrefix,
    log,
  });
  fhir.context.audit = true;
  const auth = createAuthService(db, config, { limiter: limits });
  await auth.ensureFirstAdmin(log);
  if (config.auth.enabled) {
    // A signing key from the start, so the published JWKS is never empty.
    await auth.ring.signingKey();
    await auth.idRing.signingKey();
    fhir.context.security = {
      token: auth.tokenUrl,
      revoke: `${new URL(config.publicUrl).origin}/auth/revoke`,
      authorize: `${new URL(config.publicUrl).origin}/auth/authorize`,
      introspect: `${new URL(config.publicUrl).origin}/auth/introspect`,
    };
  }
  if (!config.auth.enabled) {
    log(
      "warn",
      "AUTH=off: every request is served without authentication, as the service " +
        "itself; never run it so where patient data can be reached",
    );
  }
  // The DIMSE listener, when DIMSE_PORT is set (one per replica, behind a TCP balancer).
  const dimse = config.dimse.port === undefined
    ? undefined
    : await startDimseServer({ config: config.dimse, dicom, db, store, audit, log });
  let worker: InProcessWorker | undefined;
  return {
    config,
    db,
    fhir,
    store,
    dicom,
    forwarding,
    dimse,
    changes,
    subscriptions,
    events,
    bulk,
    analysis,
    async startWorker(appFetch) {
      worker ??= await startInProcessWorker({
        config,
        queue: analysis.queue,
        log,
        appFetch,
        token: () => auth.workerToken(),
      });
    },
    log,
    auth,
    audit,
    limits,
    stats: createRequestStats(),
    async close() {
      await worker?.stop();
      await audit.close();
      await limits.close();
      await analysis.close();
      events.close();
      await bulk.close();
      await subscriptions.close();
      changes.close();
      sweeper.close();
      await dimse?.close();
      await forwarding.close();
      dicom.close();
      await store.close();
      await readDb?.close();
      await db.close();
    },
  };
}
