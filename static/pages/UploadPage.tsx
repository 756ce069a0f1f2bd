/**
 * @module Upload DICOM files, a folder of them, or a ZIP: each file is one STOW-RS request whose
 * bytes sent are shown as they go (per file and overall), then its per-instance results (stored,
 * stored with warnings, refused with the reason) and a link to each study it went into.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { fhirGet } from "../lib/api.ts";
import { type Bundle, resourcesOf } from "../lib/fhir_types.ts";
import { formatBytes } from "../lib/format.ts";
import type { InstanceResult } from "../lib/stow_result.ts";
import {
  eachLimited,
  filesOfDrop,
  type UploadItem,
  uploadOne,
  type UploadOutcome,
  wanted,
} from "../lib/upload.ts";
import { canWrite } from "../lib/session.ts";
import { Link } from "../components/Link.tsx";
import { ProgressBar } from "../components/ProgressBar.tsx";

interface Row {
  item: UploadItem;
  sent: number;
  outcome?: UploadOutcome;
}

/** The ImagingStudy id of a Study Instance UID, once the upload has created it. */
async function studyIdOf(uid: string): Promise<string | undefined> {
  const q = encodeURIComponent(`urn:dicom:uid|urn:oid:${uid}`);
  const bundle = await fhirGet<Bundle>(`ImagingStudy?identifier=${q}&_elements=id`);
  return resourcesOf(bundle, "ImagingStudy")[0]?.id;
}

export function UploadPage() {
  const [rows, setRows] = useState<Row[]>([]);
  const [busy, setBusy] = useState(false);
  const [over, setOver] = useState(false);
  const [studies, setStudies] = useState<Map<string, string | undefined>>(new Map());
  const folderInput = useRef<HTMLInputElement>(null);
  useEffect(() => {
    folderInput.current?.setAttribute("webkitdirectory", "");
  }, []);

  const start = async (items: UploadItem[]) => {
    const list = items.filter(wanted);
    if (!list.length || busy) return;
    const fresh: Row[] = list.map((item) => ({ item, sent: 0 }));
    setRows(fresh);
    setStudies(new Map());
    setBusy(true);
    const update = (i: number, patch: Partial<Row>) => {
      fresh[i] = { ...fresh[i], ...patch };
      setRows([...fresh]);
    };
    const uids = new Set<string>();
    await eachLimited(list, 3, async (item, i) => {
      const outcome = await uploadOne(item, (p) => update(i, { sent: p.sent }));
      update(i, { outcome, sent: outcome.status ? item.file.size : fresh[i].sent });
      for (const uid of outcome.summary?.studyUids ?? []) uids.add(uid);
    });
    const found = new Map<string, string | undefined>();
    for (const uid of uids) found.set(uid, await studyIdOf(uid).catch(() => undefined));
    setStudies(found);
    setBusy(false);
  };

  const total = rows.reduce((n, r) => n + r.item.file.size, 0);
  const sent = rows.reduce((n, r) => n + r.sent, 0);
  const done = rows.filter((r) => r.outcome).length;
  const instances = rows.flatMap((r) => r.outcome?.summary?.instances ?? []);
  const count = (o: InstanceResult["outcome"]) => instances.filter((x) => x.outcome === o).length;

  if (!canWrite.value) {
    return (
      <section class="page">
        <h1>Upload</h1>
        <p class="muted">Your account may read studies but not add them.</p>
      </section>
    );
  }
  return (
    <section class="page upload">
      <h1>Upload studies</h1>
      <div
        class={`dropzone ${over ? "over" : ""}`}
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={async (e) => {
          e.preventDefault();
          setOver(false);
          if (e.dataTransfer) start(await filesOfDrop(e.dataTransfer));
        }}
      >
        <p>Drop DICOM files, a folder of them, or a ZIP here</p>
        <div class="pickers">
          <label class="button">
            Choose files…
            <input
              type="file"
              multiple
              class="sr-only"
              data-testid="file-input"
              accept=".dcm,.zip,application/dicom,application/zip,*/*"
              onChange={(e) => {
                const files = [...(e.currentTarget.files ?? [])];
                start(files.map((file) => ({ file, path: file.name })));
                e.currentTarget.value = "";
              }}
            />
          </label>
          <label class="button">
            Choose a folder…
            <input
              ref={folderInput}
              type="file"
              multiple
              class="sr-only"
              onChange={(e) => {
                const files = [...(e.currentTarget.files ?? [])];
                start(files.map((file) => ({ file, path: file.webkitRelativePath || file.name })));
                e.currentTarget.value = "";
              }}
            />
          </label>
        </div>
      </div>
      {rows.length > 0 && (
        <div class="card">
          <h2>
            {busy ? "Uploading" : "Uploaded"} {done} of {rows.length} files · {formatBytes(sent)} of
            {" "}
            {formatBytes(total)}
          </h2>
          <ProgressBar value={sent} max={total} label="Overall upload progress" />
          <p class="summary" data-testid="upload-summary" aria-live="polite">
            {count("stored")} stored · {count("warning")} stored with warnings · {count("refused")}
            {" "}
            refused
            {rows.some((r) => r.outcome?.error) && " · some files failed"}
          </p>
          {studies.size > 0 && (
            <ul class="study-links">
              {[...studies].map(([uid, sid]) => (
                <li key={uid}>
                  {sid
                    ? <Link href={`/studies/${sid}`}>Open study {uid}</Link>
                    : <span class="muted">Study {uid} (not found)</span>}
                </li>
              ))}
            </ul>
          )}
          <ul class="files">
            {rows.map((r, i) => (
              <li key={i} class="file">
                <div class="file-head">
                  <span class="mono">{r.item.path}</span>
                  <span class="muted small">{formatBytes(r.item.file.size)}</span>
                </div>
                <ProgressBar
                  value={r.sent}
                  max={r.item.file.size}
                  label={`Upload of ${r.item.path}`}
                  state={r.outcome?.error
                    ? "error"
                    : r.outcome?.summary?.instances.some((x) => x.outcome === "refused")
                    ? "warn"
                    : r.outcome
                    ? "ok"
                    : undefined}
                />
                {r.outcome?.error && <p class="error small">{r.outcome.error}</p>}
                {r.outcome?.summary && (
                  <details>
                    <summary>
                      {r.outcome.summary.instances.length} instance
                      {r.outcome.summary.instances.length === 1 ? "" : "s"}
                    </summary>
                    <ul class="instances">
                      {r.outcome.summary.instances.map((x) => (
                        <li key={x.sopInstanceUid} class={x.outcome}>
                          <span class={`badge ${x.outcome}`}>{x.outcome}</span>{" "}
                          <span class="mono small">{x.sopInstanceUid}</span>
                          {x.reason && <span class="small">: {x.reason}</span>}
                        </li>
                      ))}
                    </ul>
                  </details>
                )}
              </li>
            ))}
          </ul>
        </div>
      )}
    </section>
  );
}
