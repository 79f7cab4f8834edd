// One job: live charts (global gradient norm on a log scale with the clip threshold and the
// interventions, loss, learning rate, per-layer heatmap), the events timeline, its alerts, and
// the live commands. Dragging across a chart zooms into that range at full detail.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { acknowledge, useAlerts } from "../alerts.ts";
import type { ApiError } from "../api.ts";
import { baseOptions, STEP_SERIES, valueSeries } from "../components/charts.ts";
import { ConfirmButton } from "../components/ConfirmButton.tsx";
import { Heatmap } from "../components/Heatmap.tsx";
import { markerPlugin } from "../components/marker-plugin.ts";
import { StatusBadge } from "../components/StatusBadge.tsx";
import { UPlotChart } from "../components/UPlotChart.tsx";
import { loadRange, useCommands, useJobStream } from "../job-stream.ts";
import type { Alert, Command, Job, JobEvent } from "../lib/api-types.ts";
import { formatDuration, formatRelative, formatStep, formatValue } from "../lib/format.ts";
import { isActive } from "../lib/jobs-table.ts";
import { eventEvidence, eventMarkers, type Marker, markerStyle } from "../lib/markers.ts";
import { gradNormData, lastValue, lossData, lrData, type StepTable } from "../lib/series.ts";
import { canWrite, useSession } from "../session.ts";

/** Steps shown either side of a step opened from an alert or the timeline. */
const FOCUS_RADIUS = 100;

export function JobPage({ jobId, focusStep }: { jobId: string; focusStep?: number }) {
  const stream = useJobStream(jobId);
  const [zoom, setZoom] = useState<{ from: number; to: number; table?: StepTable; error?: string }>();
  const markers = useMemo(() => eventMarkers(stream.events), [stream.events]);

  const zoomTo = (from: number, to: number) => {
    setZoom({ from, to });
    loadRange(jobId, from, to).then(
      (table) => setZoom((z) => (z && z.from === from && z.to === to ? { ...z, table } : z)),
      (error: ApiError) => setZoom({ from, to, error: error.message }),
    );
  };
  // Once, for the step in the address (a link from an alert).
  useEffect(() => {
    if (focusStep !== undefined) zoomTo(Math.max(0, focusStep - FOCUS_RADIUS), focusStep + FOCUS_RADIUS);
  }, []);

  const { job } = stream;
  if (stream.loading && !job) return <p class="muted">Loading the job…</p>;
  if (!job) return <p class="error-line">Could not load job {jobId}: {stream.error?.message ?? "unknown error"}</p>;
  const table = zoom?.table ?? stream.table;

  return (
    <section class="job">
      <JobHeader job={job} table={stream.table} />
      {stream.error && <p class="error-line">Updating failed: {stream.error.message} (retrying)</p>}
      {job.error && <p class={`job-error status-${job.status}`}>{job.error}</p>}
      <Controls job={job} />
      <div class="zoom-bar">
        {zoom ? (
          <>
            <span>
              Zoomed to steps {formatStep(zoom.from)}–{formatStep(zoom.to)}
              {zoom.table ? (zoom.table.bucketSize > 1 ? ` (buckets of ${zoom.table.bucketSize} steps)` : " at full detail") : " — loading…"}
              {zoom.error && <span class="field-error"> {zoom.error}</span>}
            </span>
            <button type="button" onClick={() => setZoom(undefined)}>
              Reset zoom
            </button>
          </>
        ) : (
          <span class="muted">
            {stream.table.bucketSize > 1 ? `Overview in buckets of ${stream.table.bucketSize} steps (min–max band). ` : ""}Drag across a chart to zoom in at full detail.
          </span>
        )}
      </div>
      {table.step.length === 0 ? (
        <div class="empty-state">{isActive(job) ? "Waiting for the first steps…" : "This job recorded no steps."}</div>
      ) : (
        <Charts key={zoom ? `${zoom.from}-${zoom.to}` : "overview"} table={table} markers={markers} onZoom={zoomTo} />
      )}
      <div class="columns">
        <EventsTimeline events={stream.events} onFocus={(step) => zoomTo(Math.max(0, step - FOCUS_RADIUS), step + FOCUS_RADIUS)} />
        <JobAlerts jobId={jobId} onFocus={(step) => zoomTo(Math.max(0, step - FOCUS_RADIUS), step + FOCUS_RADIUS)} />
      </div>
    </section>
  );
}

function JobHeader({ job, table }: { job: Job; table: StepTable }) {
  const total = typeof job.spec.steps === "number" ? job.spec.steps : undefined;
  const elapsed = job.startedAt ? (job.finishedAt ? Date.parse(job.finishedAt) : Date.now()) - Date.parse(job.startedAt) : null;
  return (
    <div class="page-head job-head">
      <div>
        <h1>{job.name}</h1>
        <div class="muted mono">{job.id}</div>
      </div>
      <dl class="facts">
        <div>
          <dt>Status</dt>
          <dd>
            <StatusBadge job={job} />
          </dd>
        </div>
        <div>
          <dt>Step</dt>
          <dd class="num" data-testid="job-step">
            {formatStep(table.step.at(-1) ?? job.lastStep)}
            {total !== undefined && <span class="muted"> / {formatStep(total)}</span>}
          </dd>
        </div>
        <div>
          <dt>Grad norm</dt>
          <dd class="num">{formatValue(lastValue(table.gradNorm))}</dd>
        </div>
        <div>
          <dt>Loss</dt>
          <dd class="num">{formatValue(lastValue(table.loss))}</dd>
        </div>
        <div>
          <dt>LR</dt>
          <dd class="num">{formatValue(lastValue(table.lr))}</dd>
        </div>
        <div>
          <dt>Backend</dt>
          <dd>{job.backend ?? "—"}</dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd title={job.startedAt ?? ""}>
            {formatRelative(job.startedAt)} {elapsed !== null && <span class="muted">({formatDuration(elapsed)})</span>}
          </dd>
        </div>
      </dl>
    </div>
  );
}

function Charts({ table, markers, onZoom }: { table: StepTable; markers: Marker[]; onZoom: (from: number, to: number) => void }) {
  const markersRef = useRef(markers);
  markersRef.current = markers;
  const [hover, setHover] = useState<{ marker: Marker; left: number }>();
  const lastHover = useRef<Marker | undefined>(undefined);

  const normOptions = useMemo(
    () => ({
      ...baseOptions("gradient norm", true, "job"),
      series: [
        STEP_SERIES,
        valueSeries("norm", "#4c8bf5"),
        valueSeries("bucket max", "rgba(76,139,245,0.35)", { width: 1 }),
        valueSeries("bucket min", "rgba(76,139,245,0.35)", { width: 1 }),
        valueSeries("after mitigation", "#3fb68b", { width: 1.25 }),
        valueSeries("clip threshold", "#e8a33d", { dash: [6, 4], width: 1.5, spanGaps: false }),
      ],
      bands: [{ series: [2, 3] as [number, number], fill: "rgba(76,139,245,0.12)" }],
      plugins: [
        markerPlugin(
          () => markersRef.current,
          (marker, left) => {
            if (marker === lastHover.current) return;
            lastHover.current = marker;
            setHover(marker ? { marker, left } : undefined);
          },
        ),
      ],
    }),
    [],
  );
  const lossOptions = useMemo(
    () => ({
      ...baseOptions("loss", false, "job"),
      series: [STEP_SERIES, valueSeries("train", "#b36ae2"), valueSeries("bucket max", "rgba(179,106,226,0.3)", { width: 1 }), valueSeries("validation", "#2bb0c9", { points: { show: true, size: 5 } })],
      plugins: [markerPlugin(() => markersRef.current.filter((m) => m.style.major), () => {})],
    }),
    [],
  );
  const lrOptions = useMemo(
    () => ({ ...baseOptions("learning rate", true, "job"), series: [STEP_SERIES, valueSeries("lr", "#3fb68b", { paths: undefined })] }),
    [],
  );

  return (
    <div class="charts">
      <figure class="card chart-card wide" data-testid="norm-chart" data-points={table.step.length} data-markers={markers.length}>
        <figcaption>Global gradient norm (log scale) · interventions marked</figcaption>
        <div class="chart-holder">
          <UPlotChart options={normOptions} data={gradNormData(table)} height={280} onSelect={onZoom} redrawKey={markers} label="global gradient norm" />
          {hover && <MarkerCard marker={hover.marker} left={hover.left} />}
        </div>
      </figure>
      <figure class="card chart-card">
        <figcaption>Loss (train and validation)</figcaption>
        <UPlotChart options={lossOptions} data={lossData(table)} height={200} onSelect={onZoom} redrawKey={markers} label="loss" />
      </figure>
      <figure class="card chart-card">
        <figcaption>Learning rate</figcaption>
        <UPlotChart options={lrOptions} data={lrData(table)} height={200} onSelect={onZoom} label="learning rate" />
      </figure>
      <figure class="card chart-card wide">
        <figcaption>Per-layer gradient norms (layers × steps)</figcaption>
        <Heatmap table={table} />
      </figure>
    </div>
  );
}

function MarkerCard({ marker, left }: { marker: Marker; left: number }) {
  return (
    <div class="marker-card" style={{ left: `${Math.round(left) + 70}px` }} data-testid="marker-card">
      <div class="marker-card-step">step {formatStep(marker.step)}</div>
      {marker.events.slice(0, 4).map((event) => (
        <div key={event.id} class="marker-event">
          <div>
            <span class="swatch" style={{ background: markerStyle(event).color }} /> <strong>{markerStyle(event).label}</strong>
          </div>
          <div class="muted">{event.message}</div>
          <table class="evidence">
            <tbody>
              {eventEvidence(event).map((row) => (
                <tr key={row.label}>
                  <th>{row.label}</th>
                  <td>{row.value}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </div>
  );
}

const COMMANDS = {
  lowerLr: "Lower LR",
  setClip: "Set clip",
  pause: "Pause",
  resume: "Resume",
  checkpoint: "Checkpoint",
  stop: "Stop",
};

function Controls({ job }: { job: Job }) {
  const session = useSession();
  const { commands, send } = useCommands(job.id);
  const [factor, setFactor] = useState("0.5");
  const [clip, setClip] = useState("1");
  const [error, setError] = useState<string>();
  if (!canWrite(session) || job.kind === "external") return null;
  const run = (command: Record<string, unknown>) => async () => {
    setError(undefined);
    try {
      await send(command);
    } catch (failure) {
      setError((failure as ApiError).message);
    }
  };
  const active = isActive(job);
  return (
    <div class="card controls">
      <div class="control-buttons">
        <ConfirmButton label={COMMANDS.lowerLr} disabled={!active} question={`Multiply the learning rate of ${job.name} by this factor from its next step on:`} onConfirm={run({ type: "scaleLearningRate", factor: Number(factor) })}>
          <label>
            Factor <input type="number" step="any" min="0" value={factor} onInput={(e) => setFactor(e.currentTarget.value)} aria-label="learning rate factor" />
          </label>
        </ConfirmButton>
        <ConfirmButton label={COMMANDS.setClip} disabled={!active} question={`Clip the global gradient norm of ${job.name} to this value (on top of the watchdog):`} onConfirm={run({ type: "setClipThreshold", maxNorm: Number(clip) })}>
          <label>
            Max norm <input type="number" step="any" min="0" value={clip} onInput={(e) => setClip(e.currentTarget.value)} aria-label="clip threshold" />
          </label>
        </ConfirmButton>
        {job.paused ? (
          <ConfirmButton label={COMMANDS.resume} disabled={!active} question={`Resume training ${job.name}?`} onConfirm={run({ type: "resume" })} />
        ) : (
          <ConfirmButton label={COMMANDS.pause} disabled={!active} question={`Pause ${job.name} before its next step? It keeps its worker.`} onConfirm={run({ type: "pause" })} />
        )}
        <ConfirmButton label={COMMANDS.checkpoint} disabled={!active} question={`Take a checkpoint of ${job.name} at its next step?`} onConfirm={run({ type: "checkpoint" })} />
        <ConfirmButton label={COMMANDS.stop} danger disabled={!active} question={`Stop ${job.name} at its next step? It ends as cancelled; its checkpoints are kept.`} onConfirm={run({ type: "stop" })} />
        {!active && <span class="muted">The job has ended: it takes no more commands.</span>}
      </div>
      {error && <p class="field-error">{error}</p>}
      {commands.length > 0 && (
        <ul class="commands" aria-label="commands sent">
          {commands
            .slice(-5)
            .reverse()
            .map((command) => (
              <CommandLine key={command.id} command={command} />
            ))}
        </ul>
      )}
    </div>
  );
}

function CommandLine({ command }: { command: Command }) {
  const { type, ...args } = command.command;
  const argText = Object.entries(args)
    .map(([key, value]) => `${key} ${typeof value === "number" ? formatValue(value) : String(value)}`)
    .join(", ");
  return (
    <li class={`command command-${command.status}`} data-status={command.status}>
      <code>{type}</code> {argText}{" "}
      {command.status === "pending" && <span class="muted">waiting for the trainer…</span>}
      {command.status === "applied" && <span class="ok">✓ applied before step {formatStep(command.appliedStep)}</span>}
      {command.status === "rejected" && <span class="field-error">rejected: {command.error}</span>}
      <span class="muted"> · {formatRelative(command.createdAt)}</span>
    </li>
  );
}

function EventsTimeline({ events, onFocus }: { events: JobEvent[]; onFocus: (step: number) => void }) {
  const [showClips, setShowClips] = useState(false);
  const shown = useMemo(() => events.filter((e) => showClips || e.kind !== "clip").slice(-200).reverse(), [events, showClips]);
  const clips = events.length - events.filter((e) => e.kind !== "clip").length;
  return (
    <div class="card timeline">
      <div class="card-head">
        <h2>Events</h2>
        <label class="inline">
          <input type="checkbox" checked={showClips} onChange={(e) => setShowClips(e.currentTarget.checked)} /> show clips ({clips})
        </label>
      </div>
      {shown.length === 0 ? (
        <p class="muted">{events.length === 0 ? "No interventions: the watchdog has not had to act." : "Only clips so far; tick “show clips”."}</p>
      ) : (
        <ol class="events">
          {shown.map((event) => (
            <li key={event.id} class={`severity-${event.severity}`}>
              <button type="button" class="link-button step-link" onClick={() => onFocus(event.step)} title="Zoom the charts to this step">
                step {formatStep(event.step)}
              </button>
              <span class="badge" style={{ borderColor: markerStyle(event).color, color: markerStyle(event).color }}>
                {markerStyle(event).label}
              </span>
              <span class="event-message">{event.message}</span>
              <span class="muted" title={event.createdAt}>
                {formatRelative(event.createdAt)}
              </span>
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

function JobAlerts({ jobId, onFocus }: { jobId: string; onFocus: (step: number) => void }) {
  const session = useSession();
  const alerts = useAlerts(`?jobId=${jobId}`);
  const ack = async (alert: Alert) => {
    await acknowledge(alert).catch(() => {});
    alerts.reload();
  };
  return (
    <div class="card job-alerts">
      <div class="card-head">
        <h2>Alerts</h2>
      </div>
      {alerts.error ? (
        <p class="muted">{alerts.error.status === 404 ? "This server has no alerts API yet." : `Could not load alerts: ${alerts.error.message}`}</p>
      ) : !alerts.data ? (
        <p class="muted">Loading…</p>
      ) : alerts.data.items.length === 0 ? (
        <p class="muted">No alerts for this job.</p>
      ) : (
        <ul class="alerts compact">
          {alerts.data.items.map((alert) => (
            <li key={alert.id} class={`severity-${alert.severity}${alert.acknowledgedAt ? " acknowledged" : ""}`}>
              <strong>{alert.title}</strong>
              {alert.step !== null && (
                <button type="button" class="link-button step-link" onClick={() => onFocus(alert.step as number)}>
                  step {formatStep(alert.step)}
                </button>
              )}
              <span class="muted">{formatRelative(alert.createdAt)}</span>
              {alert.acknowledgedAt ? (
                <span class="muted">acknowledged</span>
              ) : (
                canWrite(session) && (
                  <button type="button" onClick={() => ack(alert)}>
                    Acknowledge
                  </button>
                )
              )}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

