/**
 * @module What every route is given: the Hono environment (request id, caller) and the services
 * the composition root (`services.ts`) builds. Routes import this, never `app.ts` or `services.ts`.
 */
import type { Caller } from "../auth/access.ts";
import type { AuditLog } from "../audit/log.ts";
import type { AuthService } from "../auth/service.ts";
import type { AnalysisService } from "../analysis/service.ts";
import type { Db } from "../db/db.ts";
import type { ObjectStore } from "../db/object_store.ts";
import type { Forwarding } from "../dicom/forward/service.ts";
import type { DimseServer } from "../dicom/dimse/scp.ts";
import type { DicomService } from "../dicom/service.ts";
import type { BulkExportService } from "../fhir/bulk/service.ts";
import type { ChangeFeed } from "../fhir/change_feed.ts";
import type { FhirService } from "../fhir/service.ts";
import type { LiveEvents } from "../fhir/subscriptions/live_events.ts";
import type { SubscriptionService } from "../fhir/subscriptions/service.ts";
import type { RequestStats } from "../observability/stats.ts";
import type { Config } from "../platform/config.ts";
import type { Logger } from "../platform/log.ts";
import type { RateLimiter } from "../ratelimit/limits.ts";

export type AppEnv = { Variables: { requestId: string; caller: Caller } };

export interface Services {
  config: Readonly<Config>;
  db: Db;
  fhir: FhirService;
  store: ObjectStore;
  dicom: DicomService;
  /** Stored instances sent on to the DICOM destinations (DICOM_DESTINATIONS), with retries. */
  forwarding: Forwarding;
  /** The DIMSE listener (DIMSE_PORT), when configured. */
  dimse?: DimseServer;
  /** Every committed resource version, in order (SSE, Subscriptions, analysis rules). */
  changes: ChangeFeed;
  /** FHIR R4 Subscriptions (rest-hook): activation, matching, notification with retries. */
  subscriptions: SubscriptionService;
  /** Live updates for `GET /events` (Server-Sent Events). */
  events: LiveEvents;
  /** FHIR Bulk Data `$export`: kick-off, status, files, cancel; its jobs run in the background. */
  bulk: BulkExportService;
  /** The AI pipeline's API side: queue, models as Devices, `$analyze`, rules. */
  analysis: AnalysisService;
  /**
   * Starts the in-process analysis worker when the config asks for it (the embedded default);
   * `appFetch` is the app's own fetch, so the worker calls the API without the network.
   */
  startWorker(appFetch: (request: Request) => Response | Promise<Response>): Promise<void>;
  log: Logger;
  /** Accounts, clients, tokens and the bearer-token check (AUTH). */
  auth: AuthService;
  /** The audit trail: AuditEvents written in batches (AUDIT, default on). */
  audit: AuditLog;
  /** Rate limits per caller and route class (Redis when REDIS_URL is set, else in memory). */
  limits: RateLimiter;
  /** Request counts, errors and latencies per route class (/admin/stats, /metrics). */
  stats: RequestStats;
  close(): Promise<void>;
}
