/**
 * @module A DICOMweb destination for the forwarding tests: a STOW-RS endpoint on a free port that
 * records each request (path, Authorization, the SOP Instance UIDs of its parts) and answers as
 * the test scripts it, like a PACS that is down, refuses, or takes the instances.
 */
import { parseMediaType, readMultipart } from "../../dicom/codec/multipart.ts";
import { parseDataSet } from "../../dicom/codec/dataset.ts";

export interface Received {
  method: string;
  path: string;
  authorization: string | null;
  contentType: string;
  sopUids: string[];
}

export interface Destination {
  /** The DICOMweb root to configure. */
  url: string;
  received: Received[];
  /** How the next requests are answered (default: stored, 200 with a ReferencedSOPSequence). */
  answer: (r: Received) => Response;
  close(): Promise<void>;
}

/** The DICOM JSON a STOW-RS answers: the stored and the failed SOP Instance UIDs. */
export function stowAnswer(stored: string[], failed: [sop: string, reason: number][] = []) {
  const item = (sop: string) => ({ "00081155": { vr: "UI", Value: [sop] } });
  return {
    ...(stored.length ? { "00081199": { vr: "SQ", Value: stored.map(item) } } : {}),
    ...(failed.length
      ? {
        "00081198": {
          vr: "SQ",
          Value: failed.map(([sop, reason]) => ({
            ...item(sop),
            "00081197": { vr: "US", Value: [reason] },
          })),
        },
      }
      : {}),
  };
}

export function startDestination(): Destination {
  const received: Received[] = [];
  const d: Destination = {
    url: "",
    received,
    answer: (r) => Response.json(stowAnswer(r.sopUids)),
    close: async () => await server.shutdown(),
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const contentType = req.headers.get("content-type") ?? "";
    const sopUids: string[] = [];
    const boundary = parseMediaType(contentType).params.boundary;
    if (req.body && boundary) {
      const limits = { maxPartBytes: 2 ** 28, maxTotalBytes: 2 ** 30 };
      for await (const part of readMultipart(req.body, boundary, limits)) {
        sopUids.push(parseDataSet(part.body).string("x00080018") ?? "?");
      }
    }
    const r: Received = {
      method: req.method,
      path: new URL(req.url).pathname,
      authorization: req.headers.get("authorization"),
      contentType,
      sopUids,
    };
    received.push(r);
    return d.answer(r);
  });
  d.url = `http://127.0.0.1:${server.addr.port}/dicom-web`;
  return d;
}
