/**
 * @module Administration: request statistics as charts (`/admin/stats`), the analysis queue (its
 * depth and dead letters from `/admin/queue`, and Tasks by status with the latest failures), the
 * installed models, accounts and registered clients.
 */
import { useState } from "preact/hooks";
import { fhirGet, getJson } from "../lib/api.ts";
import { type Bundle, type Json, resourcesOf } from "../lib/fhir_types.ts";
import { formatDate, formatMs, formatPercent } from "../lib/format.ts";
import { useAsync } from "../lib/hooks.ts";
import { loadModels } from "../lib/models.ts";
import { STATUS_TASKS } from "../lib/worklist_query.ts";
import { BarChart } from "../components/BarChart.tsx";
import { ErrorNote } from "../components/ErrorNote.tsx";
import { UsersPanel } from "../components/UsersPanel.tsx";

interface WindowStats {
  count: number;
  errors: number;
  clientErrors: number;
  errorRate: number;
  p50: number;
  p95: number;
  p99: number;
  maxMs: number;
}

interface Stats {
  generatedAt: string;
  windows: Record<"hour" | "day", { overall: WindowStats; routes: Record<string, WindowStats> }>;
}

async function queueCounts(signal: AbortSignal) {
  const out: Record<string, number> = {};
  await Promise.all(
    Object.entries(STATUS_TASKS).map(async ([state, statuses]) => {
      const b = await fhirGet<Bundle>(`Task?status=${statuses}&_summary=count`, signal);
      out[state] = b.total ?? 0;
    }),
  );
  const failed = await fhirGet<Bundle>(
    `Task?status=failed&_sort=-_lastUpdated&_count=10`,
    signal,
  );
  return { counts: out, failed: resourcesOf(failed, "Task") };
}

/** `/admin/queue`: the job queue itself (Redis Streams or in-process). */
interface QueueState {
  kind: "redis" | "in-process";
  depth: { stat: number; routine: number; pending: number; delayed: number; dead: number };
  deadLetters: { id: string; error: string; attempts: number; failedAt: string; job: Json }[];
}

export function ConsolePage() {
  const [range, setRange] = useState<"hour" | "day">("hour");
  const stats = useAsync((signal) => getJson<Stats>("/admin/stats", signal), []);
  const queue = useAsync((signal) => queueCounts(signal), []);
  const jobs = useAsync((signal) => getJson<QueueState>("/admin/queue", signal), []);
  const models = useAsync((signal) => loadModels(signal), []);
  const clients = useAsync(
    (signal) => getJson<Record<string, unknown>[]>("/auth/clients", signal),
    [],
  );
  const w = stats.data?.windows[range];
  const routes = Object.entries(w?.routes ?? {}).sort((a, b) => b[1].count - a[1].count).slice(
    0,
    12,
  );
  return (
    <section class="page console">
      <div class="page-head">
        <h1>Administration</h1>
        <button
          type="button"
          onClick={() => {
            stats.reload();
            queue.reload();
            jobs.reload();
          }}
        >
          Refresh
        </button>
      </div>
      <ErrorNote
        error={stats.error ?? queue.error ?? jobs.error ?? models.error ?? clients.error}
      />
      <section class="card">
        <div class="page-head">
          <h2>Requests</h2>
          <div role="group" aria-label="Time window">
            {(["hour", "day"] as const).map((r) => (
              <button
                key={r}
                type="button"
                aria-pressed={range === r}
                onClick={() => setRange(r)}
              >
                Last {r}
              </button>
            ))}
          </div>
        </div>
        {w && (
          <>
            <dl class="facts stats">
              <div>
                <dt>Requests</dt>
                <dd>{w.overall.count}</dd>
              </div>
              <div>
                <dt>Server errors</dt>
                <dd>{formatPercent(w.overall.errorRate)}</dd>
              </div>
              <div>
                <dt>Client errors</dt>
                <dd>{w.overall.clientErrors}</dd>
              </div>
              <div>
                <dt>p50</dt>
                <dd>{formatMs(w.overall.p50)}</dd>
              </div>
              <div>
                <dt>p95</dt>
                <dd>{formatMs(w.overall.p95)}</dd>
              </div>
              <div>
                <dt>p99</dt>
                <dd>{formatMs(w.overall.p99)}</dd>
              </div>
            </dl>
            <div class="charts">
              <BarChart
                title="Requests per route"
                rows={routes.map(([label, s]) => ({
                  label,
                  values: [s.count, s.clientErrors + s.errors],
                }))}
                series={[{ name: "requests", colour: "#5fb3ff" }, {
                  name: "errors",
                  colour: "#ff7a7a",
                }]}
              />
              <BarChart
                title="Latency per route"
                rows={routes.map(([label, s]) => ({ label, values: [s.p50, s.p95, s.p99] }))}
                series={[
                  { name: "p50", colour: "#7ee0a1" },
                  { name: "p95", colour: "#ffd166" },
                  { name: "p99", colour: "#ff8a3d" },
                ]}
                format={(v) => formatMs(v)}
              />
            </div>
          </>
        )}
      </section>
      <div class="two-col">
        <section class="card">
          <h2>Analysis queue</h2>
          {queue.data && (
            <dl class="facts stats" data-testid="queue">
              {Object.entries(queue.data.counts).map(([k, v]) => (
                <div key={k}>
                  <dt>{k}</dt>
                  <dd>{v}</dd>
                </div>
              ))}
            </dl>
          )}
          {jobs.data && (
            <>
              <h3>Jobs ({jobs.data.kind === "redis" ? "Redis Streams" : "in-process"})</h3>
              <dl class="facts stats" data-testid="queue-depth">
                {(["stat", "routine", "pending", "delayed", "dead"] as const).map((k) => (
                  <div key={k}>
                    <dt>{k === "pending" ? "in progress" : k === "dead" ? "dead letters" : k}</dt>
                    <dd>{jobs.data!.depth[k]}</dd>
                  </div>
                ))}
              </dl>
              {jobs.data.deadLetters.length > 0 && (
                <>
                  <h3>Dead letters</h3>
                  <ul class="failures" data-testid="dead-letters">
                    {jobs.data.deadLetters.map((d) => (
                      <li key={d.id}>
                        <span class="mono small">
                          {d.job?.imagingStudyId ? `ImagingStudy/${d.job.imagingStudyId}` : d.id}
                        </span>{" "}
                        <span class="muted small">
                          {formatDate(d.failedAt)} · {d.attempts} attempts
                        </span>
                        <p class="small">{d.error}</p>
                      </li>
                    ))}
                  </ul>
                </>
              )}
            </>
          )}
          <h3>Latest failures</h3>
          <ul class="failures">
            {(queue.data?.failed ?? []).map((t) => (
              <li key={t.id}>
                <span class="mono small">{t.focus?.reference}</span>{" "}
                <span class="muted small">{formatDate(t.lastModified ?? t.meta?.lastUpdated)}</span>
                <p class="small">{t.statusReason?.text ?? "(no reason given)"}</p>
              </li>
            ))}
            {queue.data && !queue.data.failed.length && <li class="muted">None.</li>}
          </ul>
        </section>
        <section class="card">
          <h2>Models</h2>
          <table class="grid">
            <thead>
              <tr>
                <th scope="col">Model</th>
                <th scope="col">Version</th>
                <th scope="col">For</th>
                <th scope="col">Threshold</th>
              </tr>
            </thead>
            <tbody>
              {(models.data ?? []).map((m) => (
                <tr key={m.deviceId}>
                  <td>
                    {m.displayName}
                    <div class="muted small">{m.notice}</div>
                  </td>
                  <td>{m.version}</td>
                  <td>{[m.modality, m.bodyPart].filter(Boolean).join(" ")}</td>
                  <td>{m.defaultThreshold ?? "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      </div>
      <UsersPanel />
      <section class="card">
        <h2>Registered clients</h2>
        <table class="grid">
          <thead>
            <tr>
              <th scope="col">Client</th>
              <th scope="col">Name</th>
              <th scope="col">Scopes</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {(clients.data ?? []).map((c) => (
              <tr key={String(c.clientId)}>
                <td class="mono">{String(c.clientId)}</td>
                <td>{String(c.name ?? "—")}</td>
                <td class="mono small">{String(c.scope ?? "")}</td>
                <td>{c.disabled ? "disabled" : "active"}</td>
              </tr>
            ))}
            {clients.data && !clients.data.length && (
              <tr>
                <td colSpan={4} class="empty">No clients registered.</td>
              </tr>
            )}
          </tbody>
        </table>
      </section>
    </section>
  );
}
