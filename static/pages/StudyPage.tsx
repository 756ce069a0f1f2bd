/**
 * @module The study viewer: the series' slices with the AI findings drawn on them (outlined from
 * the report's DICOM Segmentation, loaded once per report, else boxed), window
 * presets, tools, a slice slider; beside it the analysis (run it, its live status), the findings
 * table (a row jumps to the finding's centre slice) and the review of the selected finding.
 */
import { useEffect, useMemo, useState } from "preact/hooks";
import type { Resource } from "../lib/fhir_types.ts";
import type { Finding } from "../lib/findings.ts";
import { formatDate, humanName } from "../lib/format.ts";
import { useAsync, useLiveEvents } from "../lib/hooks.ts";
import { queryParams } from "../lib/router.ts";
import { SegContours, segmentationPath, segmentNumberOf } from "../lib/seg.ts";
import { loadSegmentation } from "../lib/seg_loader.ts";
import { sliceIndexMapper } from "../lib/series.ts";
import { SliceLoader } from "../lib/slice_loader.ts";
import { defaultSeries, loadAnalysis, loadSlices, loadStudyHead } from "../lib/study_data.ts";
import { taskState } from "../lib/study_rows.ts";
import { IDENTITY, type View } from "../lib/view_transform.ts";
import { PRESETS, type Window } from "../lib/window_level.ts";
import { AnalysisPanel } from "../components/AnalysisPanel.tsx";
import { ErrorNote } from "../components/ErrorNote.tsx";
import { FindingsTable } from "../components/FindingsTable.tsx";
import { LaunchApps } from "../components/LaunchApps.tsx";
import { Link } from "../components/Link.tsx";
import { ReviewControls } from "../components/ReviewControls.tsx";
import { type Overlay, type Tool, Viewport } from "../components/Viewport.tsx";

export function StudyPage({ id }: { id: string }) {
  const head = useAsync((signal) => loadStudyHead(id, signal), [id]);
  const analysis = useAsync((signal) => loadAnalysis(id, signal), [id]);
  const [live, setLive] = useState<Resource | undefined>();
  const [seriesUid, setSeriesUid] = useState<string>();
  const analysedUid = analysis.data?.decision?.seriesInstanceUid;
  const series = seriesUid ?? (head.data ? defaultSeries(head.data.study, analysedUid) : undefined);
  const studyUid = head.data?.studyUid;
  const slices = useAsync(
    (signal) => studyUid && series ? loadSlices(studyUid, series, signal) : Promise.resolve([]),
    [studyUid, series],
  );
  const loader = useMemo(
    () =>
      studyUid && series && slices.data?.length
        ? new SliceLoader(studyUid, series, slices.data)
        : undefined,
    [slices.data],
  );
  const [index, setIndex] = useState(0);
  const [window, setWindow] = useState<Window>(PRESETS.lung);
  const [tool, setTool] = useState<Tool>("window");
  const [view, setView] = useState<View>(IDENTITY);
  const [selected, setSelected] = useState<string>();
  const [showOverlays, setShowOverlays] = useState(true);

  useEffect(() => {
    // Start in the middle of the series, or on the finding the address names.
    if (!slices.data?.length) return;
    setIndex(Math.floor(slices.data.length / 2));
    setView(IDENTITY);
  }, [slices.data]);

  // The report's Segmentation (when it names one), once per report, on the shown series' slices.
  const segPath = segmentationPath(analysis.data?.report?.presentedForm);
  const seg = useAsync(
    (signal) => segPath ? loadSegmentation(segPath, signal) : Promise.resolve(undefined),
    [segPath],
  );
  const segData = seg.data?.path === segPath ? seg.data : undefined;
  const contours = useMemo(
    () => segData && slices.data?.length ? new SegContours(segData, slices.data) : undefined,
    [segData, slices.data],
  );
  const segState = !segPath
    ? "none"
    : seg.loading
    ? "loading"
    : seg.error || !segData
    ? "error"
    : contours?.segments.size
    ? "ready"
    : "elsewhere";

  const findings = analysis.data?.findings ?? [];
  const overlays = useMemo((): Overlay[] => {
    const list = slices.data ?? [];
    if (!list.length) return [];
    const observations = new Map((analysis.data?.observations ?? []).map((o) => [o.id, o]));
    return findings
      .filter((f) => !f.seriesInstanceUid || f.seriesInstanceUid === series)
      .filter((f) => f.box && f.centreVoxel)
      .map((f) => {
        const map = sliceIndexMapper(list, f.centreVoxel![2], f.centreSopInstanceUid);
        const a = map(f.box!.min[2]), b = map(f.box!.max[2]);
        const segment = segmentNumberOf(observations.get(f.id), f.number);
        return {
          finding: f,
          kMin: Math.min(a, b),
          kMax: Math.max(a, b),
          centreK: map(f.centreVoxel![2]),
          segment: contours?.segments.has(segment) ? segment : undefined,
        };
      });
  }, [findings, slices.data, series, contours]);

  const jump = (f: Finding) => {
    const o = overlays.find((x) => x.finding.id === f.id);
    setSelected(f.id);
    if (o) setIndex(Math.min((slices.data?.length ?? 1) - 1, Math.max(0, o.centreK)));
  };

  // The finding the address names, once: the overlays change again when the SEG arrives, and a
  // reader who scrolled meanwhile stays where they are.
  const [jumped, setJumped] = useState<string | undefined>();
  useEffect(() => {
    const wanted = queryParams().get("finding");
    const f = wanted && wanted !== jumped && findings.find((x) => x.id === wanted);
    if (f && overlays.length) {
      jump(f);
      setJumped(wanted);
    }
  }, [overlays]);

  const task = live ?? analysis.data?.tasks[0];
  useLiveEvents(`types=Task,DiagnosticReport&focus=ImagingStudy/${id}`, (e) => {
    if (e.type === "Task") {
      setLive((cur) => ({
        ...(cur?.id === e.id ? cur : analysis.data?.tasks.find((t) => t.id === e.id) ?? {}),
        resourceType: "Task",
        id: e.id,
        status: e.status,
        statusReason: e.statusReason,
      }));
      const s = taskState(e.status);
      if (s === "done" || s === "failed") analysis.reload();
    } else analysis.reload();
  });
  useEffect(() => {
    // Once the reloaded analysis knows the Task as well as the stream did, it speaks for it.
    const known = analysis.data?.tasks[0];
    if (live && known && known.id === live.id && known.status === live.status) {
      setLive(undefined);
    }
  }, [analysis.data]);

  const s = head.data?.study;
  const selectedFinding = findings.find((f) => f.id === selected);
  const observation = analysis.data?.observations.find((o) => o.id === selected);
  return (
    <section class="page study">
      <div class="page-head">
        <div>
          <h1>{s?.description ?? s?.series?.[0]?.description ?? "Study"}</h1>
          <p class="muted">
            {head.data?.patient && (
              <Link href={`/patients/${head.data.patient.id}`}>
                {humanName(head.data.patient.name)}
              </Link>
            )}
            {" · "}
            {formatDate(s?.started)} · {s?.numberOfInstances ?? "?"} images
          </p>
        </div>
        {analysis.data?.report && (
          <Link href={`/studies/${id}/report`} class="button">Open report</Link>
        )}
      </div>
      <ErrorNote error={head.error ?? slices.error ?? analysis.error} />
      <div class="study-layout">
        <div class="viewer-col">
          <div class="toolbar" role="toolbar" aria-label="Viewer tools">
            <div role="group" aria-label="Window presets">
              {Object.entries(PRESETS).map(([k, p]) => (
                <button
                  key={k}
                  type="button"
                  aria-pressed={window.center === p.center && window.width === p.width}
                  onClick={() => setWindow({ center: p.center, width: p.width })}
                  title={`${p.label} window (key ${p.key})`}
                >
                  {p.label}
                </button>
              ))}
            </div>
            <div role="group" aria-label="Drag tool">
              {(["window", "pan", "zoom"] as Tool[]).map((t) => (
                <button
                  key={t}
                  type="button"
                  aria-pressed={tool === t}
                  onClick={() => setTool(t)}
                >
                  {t === "window" ? "Window/level" : t === "pan" ? "Pan" : "Zoom"}
                </button>
              ))}
              <button type="button" onClick={() => setView(IDENTITY)} title="Reset view (key 0)">
                Reset
              </button>
            </div>
            <label class="check">
              <input
                type="checkbox"
                checked={showOverlays}
                onChange={(e) => setShowOverlays(e.currentTarget.checked)}
              />
              Show findings
            </label>
            {(s?.series?.length ?? 0) > 1 && (
              <label>
                Series
                <select value={series} onChange={(e) => setSeriesUid(e.currentTarget.value)}>
                  {s!.series.map((x: Resource) => (
                    <option key={x.uid} value={x.uid}>
                      {x.number ?? ""} {x.description ?? x.uid} ({x.numberOfInstances ?? "?"})
                    </option>
                  ))}
                </select>
              </label>
            )}
          </div>
          <div class="viewport-box" data-seg={segState}>
            {loader && slices.data
              ? (
                <Viewport
                  loader={loader}
                  slices={slices.data}
                  index={Math.min(index, slices.data.length - 1)}
                  onIndex={setIndex}
                  window={window}
                  onWindow={setWindow}
                  tool={tool}
                  overlays={overlays}
                  contours={contours}
                  showOverlays={showOverlays}
                  selected={selected}
                  onSelect={(fid) => setSelected(fid)}
                  view={view}
                  onView={setView}
                />
              )
              : (
                <p class="muted center">
                  {slices.loading || head.loading ? "Loading images…" : "No images."}
                </p>
              )}
          </div>
          {slices.data && slices.data.length > 1 && (
            <label class="slider">
              <span>Slice {index + 1} of {slices.data.length}</span>
              <input
                type="range"
                min={1}
                max={slices.data.length}
                value={index + 1}
                onInput={(e) => setIndex(Number(e.currentTarget.value) - 1)}
              />
            </label>
          )}
          {segState === "error" && (
            <p class="muted small" role="note">
              The findings' outlines (DICOM SEG) could not be loaded{seg.error
                ? `: ${seg.error}`
                : ""}; their boxes are shown.
            </p>
          )}
          <p class="muted small keys">
            Keys: ↑↓ or wheel scroll · PgUp/PgDn ±10 · Home/End · drag: window/level (Shift pan,
            Ctrl zoom) · + − zoom · 0 reset · 1 lung · 2 mediastinum · 3 bone
          </p>
        </div>
        <aside class="side-col">
          <AnalysisPanel
            studyId={id}
            task={task}
            findings={taskState(task?.status) === "done" ? findings.length : undefined}
            onStarted={(t) => setLive(t)}
          />
          <LaunchApps studyId={id} patientId={head.data?.patient?.id} />
          <section class="panel" aria-labelledby="findings-title">
            <h2 id="findings-title">Findings</h2>
            {analysis.data?.report
              ? (
                <FindingsTable
                  findings={findings}
                  reviews={analysis.data.reviews}
                  selected={selected}
                  onJump={jump}
                  sliceOf={(f) => {
                    const o = overlays.find((x) => x.finding.id === f.id);
                    return o ? o.centreK + 1 : undefined;
                  }}
                />
              )
              : <p class="muted">No report yet.</p>}
            {analysis.data?.report?.conclusion && (
              <p class="conclusion small">{analysis.data.report.conclusion}</p>
            )}
          </section>
          {selectedFinding && (
            <section class="panel">
              <ReviewControls
                finding={selectedFinding}
                observation={observation}
                reviews={analysis.data?.reviews.get(selectedFinding.id) ?? []}
                onSaved={() => analysis.reload()}
              />
            </section>
          )}
        </aside>
      </div>
    </section>
  );
}
