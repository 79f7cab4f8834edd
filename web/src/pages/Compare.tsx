// Compare: two or more jobs overlaid on one chart (e.g. the same spec with and without the
// watchdog), one metric at a time, each job's overview downsampled like the job page's.
import { useEffect, useMemo, useState } from "preact/hooks";
import { type ApiError, api, useApi } from "../api.ts";
import { baseOptions, PALETTE, STEP_SERIES, valueSeries } from "../components/charts.ts";
import { UPlotChart } from "../components/UPlotChart.tsx";
import type { Job, StepsResponse } from "../lib/api-types.ts";
import { formatValue } from "../lib/format.ts";
import { alignSeries, lastValue } from "../lib/series.ts";
import { navigate } from "../router.tsx";
import { OVERVIEW_POINTS } from "../job-stream.ts";

const METRICS = {
  gradNorm: { label: "Gradient norm", log: true },
  loss: { label: "Loss", log: false },
  lr: { label: "Learning rate", log: true },
} as const;
type Metric = keyof typeof METRICS;

export function ComparePage({ ids }: { ids: string[] }) {
  const jobs = useApi<{ items: Job[] }>("/jobs?limit=200");
  const [metric, setMetric] = useState<Metric>("gradNorm");
  const [steps, setSteps] = useState(new Map<string, StepsResponse>());
  const [error, setError] = useState<string>();

  useEffect(() => {
    let stopped = false;
    Promise.all(ids.map((id) => api<StepsResponse>(`/jobs/${id}/steps?maxPoints=${OVERVIEW_POINTS}&fields=gradNorm,loss,lr`))).then(
      (bodies) => !stopped && setSteps(new Map(bodies.map((body) => [body.jobId, body]))),
      (failure: ApiError) => !stopped && setError(failure.message),
    );
    return () => {
      stopped = true;
    };
  }, [ids.join(",")]);

  const names = new Map((jobs.data?.items ?? []).map((job) => [job.id, job.name]));
  const loaded = ids.filter((id) => steps.has(id));
  const data = useMemo(
    () =>
      alignSeries(
        loaded.map((id) => {
          const body = steps.get(id) as StepsResponse;
          const values = body[metric] ?? [];
          return { label: id, step: body.step, values: METRICS[metric].log ? values.map((v) => (v !== null && v > 0 ? v : null)) : values };
        }),
      ),
    [steps, metric, loaded.join(",")],
  );
  const toggle = (id: string) => navigate(`/compare?jobs=${(ids.includes(id) ? ids.filter((x) => x !== id) : [...ids, id]).join(",")}`);

  return (
    <section>
      <div class="page-head">
        <h1>Compare</h1>
        <div class="toolbar">
          <label class="inline">
            Metric{" "}
            <select value={metric} onChange={(e) => setMetric(e.currentTarget.value as Metric)}>
              {Object.entries(METRICS).map(([key, m]) => (
                <option key={key} value={key}>
                  {m.label}
                </option>
              ))}
            </select>
          </label>
        </div>
      </div>
      <div class="compare">
        <div class="card compare-picker">
          <h2>Jobs</h2>
          {jobs.loading && !jobs.data && <p class="muted">Loading…</p>}
          {jobs.data?.items.length === 0 && <p class="muted">No jobs yet.</p>}
          <ul>
            {jobs.data?.items.map((job) => (
              <li key={job.id}>
                <label class="inline">
                  <input type="checkbox" checked={ids.includes(job.id)} onChange={() => toggle(job.id)} /> {job.name} <span class="muted mono">{job.id.slice(0, 8)}</span>
                </label>
              </li>
            ))}
          </ul>
        </div>
        <div class="card compare-chart">
          {error && <p class="error-line">{error}</p>}
          {ids.length < 2 ? (
            <p class="empty-state">Pick two or more jobs to overlay them.</p>
          ) : loaded.length < ids.length ? (
            <p class="muted">Loading steps…</p>
          ) : (
            <>
              <UPlotChart
                key={`${metric}-${loaded.join(",")}`}
                options={{
                  ...baseOptions(METRICS[metric].label, METRICS[metric].log),
                  series: [STEP_SERIES, ...loaded.map((id, i) => valueSeries(names.get(id) ?? id.slice(0, 8), PALETTE[i % PALETTE.length] as string))],
                }}
                data={data}
                height={360}
                label={`${METRICS[metric].label} of ${loaded.length} jobs`}
              />
              <table class="compare-summary">
                <thead>
                  <tr>
                    <th>Job</th>
                    <th>Last {METRICS[metric].label.toLowerCase()}</th>
                    <th>Max</th>
                  </tr>
                </thead>
                <tbody>
                  {loaded.map((id, i) => {
                    const values = (steps.get(id) as StepsResponse)[metric] ?? [];
                    const finite = values.filter((v): v is number => v !== null && Number.isFinite(v));
                    return (
                      <tr key={id}>
                        <td>
                          <span class="swatch" style={{ background: PALETTE[i % PALETTE.length] }} /> {names.get(id) ?? id}
                        </td>
                        <td class="num">{formatValue(lastValue(values))}</td>
                        <td class="num">{formatValue(finite.length ? Math.max(...finite) : null)}</td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </>
          )}
        </div>
      </div>
    </section>
  );
}
