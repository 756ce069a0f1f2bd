/**
 * @module The DIMSE listener (PS3.7, PS3.8) for modalities and PACS that do not speak DICOMweb,
 * on dcmjs-dimse (the maintained DIMSE library for JavaScript; it runs under Deno's Node
 * compatibility): C-ECHO; C-STORE into the same ingest as STOW-RS (dedupe, ImagingStudy,
 * stability, rules, forwarding); C-FIND at patient, study, series and image level (Study and
 * Patient Root); C-GET (sub-operations on the same association) and C-MOVE to the AEs of
 * DIMSE_MOVE_DESTINATIONS.
 *
 * An association is accepted only when it calls our AE title from an allowed peer (AE title and
 * host), while fewer than DIMSE_MAX_ASSOCIATIONS are open; it is aborted when idle past
 * DIMSE_TIMEOUT_SECONDS. Each association is audited when it ends (who, from where, what).
 */
import dimse from "dcmjs-dimse";
import type { Socket } from "node:net";
import { Writable } from "node:stream";
import type { DimseConfig } from "../../platform/config.ts";
import type { Logger } from "../../platform/log.ts";
import type { DicomService } from "../service.ts";
import type { ObjectStore } from "../../db/object_store.ts";
import type { Db } from "../../db/db.ts";
import { part10FromDataset } from "../codec/part10.ts";
import {
  find,
  instancesNamed,
  PATIENT_ROOT_FIND,
  PATIENT_ROOT_GET,
  PATIENT_ROOT_MOVE,
  QueryError,
  STUDY_ROOT_FIND,
  STUDY_ROOT_GET,
  STUDY_ROOT_MOVE,
} from "./query.ts";
import { type Retrieval, sendByCGet, sendByCMove } from "./retrieve.ts";

// deno-lint-ignore no-explicit-any
const d = dimse as any;
const { Server, Scp, Dataset } = d;
const { CEchoResponse, CFindResponse, CStoreResponse, CGetResponse, CMoveResponse } = d.responses;
const { Status, PresentationContextResult, RejectResult, RejectSource, RejectReason } = d.constants;
d.log.setLevel("silent");

/** What the audit trail takes of an association (audit/log.ts's AuditRecord, kind dimse). */
interface AuditRecord {
  kind: "dimse";
  subtype: string;
  action: "E";
  status: number;
  agent: { kind: "client"; id: string; name?: string };
  address?: string;
  entity?: string;
  description?: string;
}

export interface DimseDeps {
  config: DimseConfig;
  dicom: DicomService;
  db: Db;
  store: ObjectStore;
  audit: { record(e: AuditRecord): void };
  log: Logger;
}

export interface DimseServer {
  port: number;
  /** Associations open now. */
  readonly open: number;
  close(): Promise<void>;
}

const VERIFICATION = "1.2.840.10008.1.1";
const QUERY_RETRIEVE = new Set([
  STUDY_ROOT_FIND,
  PATIENT_ROOT_FIND,
  STUDY_ROOT_GET,
  PATIENT_ROOT_GET,
  STUDY_ROOT_MOVE,
  PATIENT_ROOT_MOVE,
]);
/** Transfer syntaxes taken as sent; compressed ones are stored as they come (as STOW-RS does). */
const IMPLICIT_LE = "1.2.840.10008.1.2";
const EXPLICIT_LE = "1.2.840.10008.1.2.1";
/** Storage SOP Classes start so (PS3.4 B.5); retired or private ones too. */
const STORAGE_PREFIX = "1.2.840.10008.5.1.4.1.1.";

/** Whether the peer (`ae` calling from `host`) is on the allow-list. */
export function peerAllowed(config: DimseConfig, ae: string, host: string): boolean {
  const bare = host.replace(/^::ffff:/, "");
  return config.allowedPeers.some((p) =>
    (p.aeTitle === "*" || p.aeTitle === ae) && (p.host === "*" || p.host === bare)
  );
}

/** Counts what one association did, for its audit record. */
interface Activity {
  stored: number;
  failed: number;
  found: number;
  sent: number;
  studies: Set<string>;
}

export function startDimseServer(deps: DimseDeps): Promise<DimseServer> {
  const { config, log } = deps;
  let open = 0;
  const sockets = new Set<Socket>();

  class ImagingScp extends Scp {
    private peer: { ae: string; host: string } = { ae: "", host: "" };
    private activity: Activity = { stored: 0, failed: 0, found: 0, sent: 0, studies: new Set() };
    private counted = false;

    constructor(socket: Socket, opts: Record<string, unknown>) {
      super(socket, {
        ...opts,
        associationTimeout: config.timeoutMs,
        pduTimeout: config.timeoutMs,
      });
      this.peer.host = socket.remoteAddress ?? "";
      sockets.add(socket);
      socket.on("close", () => {
        sockets.delete(socket);
        if (this.counted) {
          open--;
          this.counted = false;
          this.audit();
        }
      });
    }

    associationRequested(association: {
      getCallingAeTitle(): string;
      getCalledAeTitle(): string;
      getPresentationContexts(): { id: number }[];
      getPresentationContext(id: number): {
        getAbstractSyntaxUid(): string;
        getTransferSyntaxUids(): string[];
        setResult(result: number, ts?: string): void;
      };
    }) {
      const calling = association.getCallingAeTitle().trim();
      const called = association.getCalledAeTitle().trim();
      this.peer.ae = calling;
      const reject = (result: number, reason: number, why: string) => {
        log("warn", "DIMSE association refused", { calling, called, host: this.peer.host, why });
        deps.audit.record(this.record(403, "association", `refused: ${why}`));
        this.sendAssociationReject(result, RejectSource.ServiceUser, reason);
      };
      if (called !== config.aeTitle) {
        return reject(RejectResult.Permanent, RejectReason.CalledAeNotRecognized, "called AE");
      }
      if (!peerAllowed(config, calling, this.peer.host)) {
        return reject(RejectResult.Permanent, RejectReason.CallingAeNotRecognized, "not allowed");
      }
      if (open >= config.maxAssociations) {
        return reject(RejectResult.Transient, RejectReason.LocalLimitExceeded, "too many");
      }
      open++;
      this.counted = true;
      for (const { id } of association.getPresentationContexts()) {
        const context = association.getPresentationContext(id);
        const abstract = context.getAbstractSyntaxUid();
        const syntaxes = context.getTransferSyntaxUids();
        if (abstract === VERIFICATION || QUERY_RETRIEVE.has(abstract)) {
          const ts = syntaxes.find((t) => t === EXPLICIT_LE) ??
            syntaxes.find((t) => t === IMPLICIT_LE);
          if (ts) context.setResult(PresentationContextResult.Accept, ts);
          else context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
        } else if (abstract.startsWith(STORAGE_PREFIX)) {
          // Stored as sent, in the syntax the sender put first (its preference: a modality that
          // proposes JPEG 2000 first holds its images so).
          context.setResult(PresentationContextResult.Accept, syntaxes[0]);
        } else {
          context.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
        }
      }
      this.sendAssociationAccept();
    }

    associationReleaseRequested() {
      this.sendAssociationReleaseResponse();
    }

    cEchoRequest(request: unknown, callback: (r: unknown) => void) {
      const response = CEchoResponse.fromRequest(request);
      response.setStatus(Status.Success);
      callback(response);
    }

    /** The dataset's bytes as sent, kept whole (not parsed here: the ingest parses them). */
    createStoreWritableStream() {
      const chunks: Uint8Array[] = [];
      return Object.assign(
        new Writable({
          write(chunk: Uint8Array, _encoding, done) {
            chunks.push(new Uint8Array(chunk));
            done();
          },
        }),
        { chunks },
      );
    }

    createDatasetFromStoreWritableStream(
      writable: { chunks: Uint8Array[] },
      context: { getAcceptedTransferSyntaxUid(): string },
      callback: (dataset: unknown) => void,
    ) {
      callback({ raw: writable.chunks, transferSyntaxUid: context.getAcceptedTransferSyntaxUid() });
    }

    cStoreRequest(request: StoreRequest, callback: (r: unknown) => void) {
      const response = CStoreResponse.fromRequest(request);
      this.store(request).then(
        ({ status, comment }) => {
          response.setStatus(status);
          if (comment) response.setErrorComment?.(comment.slice(0, 64));
          callback(response);
        },
        (e) => {
          log("error", "C-STORE failed", { error: String(e) });
          response.setStatus(0xa700); // Out of Resources
          callback(response);
        },
      );
    }

    private async store(request: StoreRequest): Promise<{ status: number; comment?: string }> {
      const { raw, transferSyntaxUid } = request.getDataset();
      const bytes = part10FromDataset(raw, {
        sopClassUid: request.getAffectedSopClassUid(),
        sopInstanceUid: request.getAffectedSopInstanceUid(),
        transferSyntaxUid,
        sourceAeTitle: this.peer.ae,
      });
      const result = await deps.dicom.stowSingle(ReadableStream.from([bytes]));
      const outcome = result.outcomes[0];
      if (outcome?.studyUid) this.activity.studies.add(outcome.studyUid);
      if (!outcome || outcome.status === "failed") {
        this.activity.failed++;
        // STOW-RS's failure reasons are C-STORE's statuses (PS3.4 B.2.3).
        return { status: outcome?.failureReason ?? 0xa700, comment: outcome?.reason };
      }
      this.activity.stored++;
      return { status: outcome.warnings.length ? 0xb000 : Status.Success };
    }

    cFindRequest(request: QueryRequest, callback: (r: unknown[]) => void) {
      const sopClass = request.getAffectedSopClassUid();
      const identifier = request.getDataset()?.getElements() ?? {};
      find(deps.dicom, sopClass, identifier, config.aeTitle).then(
        (matches) => {
          this.activity.found += matches.length;
          const responses = matches.map((m) => {
            const r = CFindResponse.fromRequest(request);
            r.setDataset(new Dataset(m));
            r.setStatus(Status.Pending);
            return r;
          });
          const done = CFindResponse.fromRequest(request);
          done.setStatus(Status.Success);
          callback([...responses, done]);
        },
        (e) => callback([this.failure(CFindResponse, request, e)]),
      );
    }

    cGetRequest(request: QueryRequest, callback: (r: unknown[]) => void) {
      this.retrieve(
        request,
        CGetResponse,
        (sopUids) => sendByCGet(deps, sopUids, (requests) => this.sendRequests(requests)),
      ).then(callback);
    }

    cMoveRequest(request: QueryRequest, callback: (r: unknown[]) => void) {
      const destination = String(request.getCommandDataset().getElement("MoveDestination") ?? "")
        .trim();
      const to = config.moveDestinations.find((m) => m.aeTitle === destination);
      if (!to) {
        const r = CMoveResponse.fromRequest(request);
        r.setStatus(0xa801); // Move Destination Unknown
        return callback([r]);
      }
      this.retrieve(
        request,
        CMoveResponse,
        (sopUids) => sendByCMove(deps, sopUids, to, config.aeTitle),
      ).then(callback);
    }

    private async retrieve(
      request: QueryRequest,
      kind: typeof CGetResponse,
      send: (sopUids: string[]) => Promise<Retrieval>,
    ): Promise<unknown[]> {
      try {
        const identifier = request.getDataset()?.getElements() ?? {};
        const sopUids = await instancesNamed(deps.dicom, identifier);
        const done = await send(sopUids);
        this.activity.sent += done.completed;
        const r = kind.fromRequest(request);
        r.setCompleted(done.completed);
        r.setFailures(done.failed);
        r.setWarnings(done.warnings);
        r.setRemaining(0);
        // Some sub-operations failed: a warning; all of them: a failure (PS3.4 C.4.2.1.5).
        r.setStatus(
          done.failed === 0 ? Status.Success : done.completed + done.warnings ? 0xb000 : 0xa702,
        );
        return [r];
      } catch (e) {
        return [this.failure(kind, request, e)];
      }
    }

    private failure(kind: typeof CFindResponse, request: unknown, e: unknown) {
      const r = kind.fromRequest(request);
      if (e instanceof QueryError) {
        r.setStatus(e.status);
        r.setErrorComment?.(e.message.slice(0, 64));
      } else {
        log("error", "DIMSE query failed", { error: String(e) });
        r.setStatus(0xa700);
      }
      return r;
    }

    private record(status: number, subtype: string, description: string): AuditRecord {
      return {
        kind: "dimse",
        subtype,
        action: "E",
        status,
        agent: { kind: "client", id: `ae:${this.peer.ae}`, name: this.peer.ae },
        address: this.peer.host,
        description,
      };
    }

    private audit() {
      const a = this.activity;
      const what = a.stored || a.sent ? "transfer" : a.found ? "query" : "association";
      const studies = [...a.studies].slice(0, 20);
      deps.audit.record({
        ...this.record(
          a.failed ? 207 : 200,
          what,
          `DIMSE association from ${this.peer.ae}@` +
            `${this.peer.host}: ${a.stored} stored, ${a.failed} refused, ${a.found} found, ` +
            `${a.sent} sent${studies.length ? `; studies ${studies.join(", ")}` : ""}`,
        ),
        entity: studies.length === 1 ? `ImagingStudy?identifier=urn:oid:${studies[0]}` : undefined,
      });
    }
  }

  const server = new Server(ImagingScp);
  server.on(
    "networkError",
    (e: unknown) => log("warn", "DIMSE network error", { error: String(e) }),
  );
  const port = config.port ?? 0;
  server.listen(port);
  if (!config.allowedPeers.length) {
    log(
      "warn",
      "DIMSE listener has no allowed peers (DIMSE_ALLOWED_PEERS): every association is refused",
    );
  }
  log("info", "DIMSE listening", { port, aeTitle: config.aeTitle });
  return Promise.resolve({
    port,
    get open() {
      return open;
    },
    close() {
      for (const s of sockets) s.destroy();
      server.close();
      return Promise.resolve();
    },
  });
}

interface StoreRequest {
  getDataset(): { raw: Uint8Array[]; transferSyntaxUid: string };
  getAffectedSopClassUid(): string;
  getAffectedSopInstanceUid(): string;
}

interface QueryRequest {
  getAffectedSopClassUid(): string;
  getDataset(): { getElements(): Record<string, unknown> } | undefined;
  getCommandDataset(): { getElement(name: string): unknown };
}
