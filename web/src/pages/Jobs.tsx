// Jobs: every job with its status, backend, step, loss, a gradient-norm sparkline and badges for
// interventions and unacknowledged alerts; filter, sort, select for compare, cancel.
import { useEffect, useMemo, useState } from "preact/hooks";
import { useAlerts } from "../alerts.ts";
import { type ApiError, api, useApi } from "../api.ts";
import { ConfirmButton } from "../components/ConfirmButton.tsx";
import { Sparkline } from "../components/Sparkline.tsx";
import { StatusBadge } from "../components/StatusBadge.tsx";
import { liveSocket, useLiveState } from "../live.ts";
import type { Job, StepsResponse } from "../lib/api-types.ts";
import { formatRelative, formatStep, formatValue } from "../lib/format.ts";
import { filterJobs, isActive, type JobFilter, type SortKey, sortJobs } from "../lib/jobs-table.ts";
import { ACTION_LABELS, lastValue, sparklineData, worstAction } from "../lib/series.ts";
import { Link, navigate } from "../router.tsx";
import { canWrite, useSession } from "../session.ts";

const SPARK_REFRESH_MS = 3000;

export function JobsPage() {
  const session = useSession();
  const live = useLiveState();
  const jobs = useApi<{ items: Job[] }>("/jobs?limit=200", live === "live" ? 15_000 : 3000);
  const alerts = useAlerts("?acknowledged=false");
  const [filter, setFilter] = useState<JobFilter>({ text: "", status: "all" });
  const [sort, setSort] = useState<{ key: SortKey; descending: boolean }>({ key: "created", descending: true });
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [actionError, setActionError] = useState<string>();
  const sparks = useSparklines(jobs.data?.items);

  const { reload } = jobs;
  useEffect(() => {
    // Status changes arrive live; the list itself is re-read on each (it is one small request).
    const socket = liveSocket(session.token);
    socket.on("job:status", reload);
    socket.on("connect", () => socket.emit("jobs:watch", () => {}));
    if (socket.connected) socket.emit("jobs:watch", () => {});
    return () => {
      socket.off("job:status", reload);
      socket.emit("jobs:unwatch", () => {});
    };
  }, [session.token, reload]);

  const alertCounts = useMemo(() => {
    const counts = new Map<string, number>();
    for (const alert of alerts.data?.items ?? []) counts.set(alert.jobId, (counts.get(alert.jobId) ?? 0) + 1);
    return counts;
  }, [alerts.data]);

  const rows = useMemo(() => sortJobs(filterJobs(jobs.data?.items ?? [], filter), sort.key, sort.descending), [jobs.data, filter, sort]);

  const sortBy = (key: SortKey) => setSort((s) => ({ key, descending: s.key === key ? !s.descending : key !== "name" }));
  const header = (key: SortKey, label: string) => (
    <th aria-sort={sort.key === key ? (sort.descending ? "descending" : "ascending") : undefined}>
      <button type="button" class="sort" onClick={() => sortBy(key)}>
        {label} {sort.key === key ? (sort.descending ? "▾" : "▴") : ""}
      </button>
    </th>
  );
  const toggle = (id: string) =>
    setSelected((s) => {
      const next = new Set(s);
      if (!next.delete(id)) next.add(id);
      return next;
    });
  const cancel = async (job: Job) => {
    setActionError(undefined);
    try {
      await api(`/jobs/${job.id}/cancel`, { method: "POST", body: {} });
      reload();
    } catch (error) {
      setActionError(`Cancelling ${job.name}: ${(error as ApiError).message}`);
    }
  };

  return (
    <section>
      <div class="page-head">
        <h1>Jobs</h1>
        <div class="toolbar">
          <input type="search" placeholder="Filter by name or id" aria-label="Filter by name or id" value={filter.text} onInput={(e) => setFilter({ ...filter, text: e.currentTarget.value })} />
          <select aria-label="Status" value={filter.status} onChange={(e) => setFilter({ ...filter, status: e.currentTarget.value as JobFilter["status"] })}>
            <option value="all">all statuses</option>
            <option value="active">running or queued</option>
            {["running", "queued", "succeeded", "diverged", "failed", "cancelled"].map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
          <button type="button" disabled={selected.size < 2} onClick={() => navigate(`/compare?jobs=${[...selected].join(",")}`)}>
            Compare {selected.size > 0 ? `(${selected.size})` : ""}
          </button>
          {canWrite(session) && (
            <Link href="/new" class="button primary">
              New job
            </Link>
          )}
        </div>
      </div>
      {jobs.error && <p class="error-line">Could not load the jobs: {jobs.error.message}</p>}
      {actionError && <p class="error-line">{actionError}</p>}
      {jobs.loading && !jobs.data ? (
        <p class="muted">Loading jobs…</p>
      ) : rows.length === 0 ? (
        <div class="empty-state">
          <p>{jobs.data?.items.length ? "No job matches the filter." : "No jobs yet."}</p>
          {!jobs.data?.items.length && canWrite(session) && <Link href="/new">Submit the first one — the exploding-RNN demo is a preset.</Link>}
        </div>
      ) : (
        <div class="table-wrap">
          <table class="jobs">
            <thead>
              <tr>
                <th>
                  <span class="sr-only">Select</span>
                </th>
                {header("name", "Name")}
                {header("status", "Status")}
                <th class="hide-narrow">Backend</th>
                {header("step", "Step")}
                <th>Loss</th>
                <th>Gradient norm</th>
                <th>Flags</th>
                {header("created", "Created")}
                <th>
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((job) => {
                const spark = sparks.get(job.id);
                const action = worstAction(spark?.action);
                const alertCount = alertCounts.get(job.id) ?? 0;
                const totalSteps = typeof job.spec.steps === "number" ? job.spec.steps : undefined;
                return (
                  <tr key={job.id} data-job-id={job.id}>
                    <td>
                      <input type="checkbox" aria-label={`Select ${job.name} for compare`} checked={selected.has(job.id)} onChange={() => toggle(job.id)} />
                    </td>
                    <td class="name">
                      <Link href={`/jobs/${job.id}`}>{job.name}</Link>
                      <div class="muted mono">{job.id.slice(0, 8)}</div>
                    </td>
                    <td>
                      <StatusBadge job={job} />
                    </td>
                    <td class="hide-narrow">{job.backend ?? "—"}</td>
                    <td class="num">
                      {formatStep(job.lastStep)}
                      {totalSteps !== undefined && <span class="muted"> / {formatStep(totalSteps)}</span>}
                    </td>
                    <td class="num">{formatValue(spark ? lastValue(spark.loss ?? []) : null)}</td>
                    <td class="spark-cell">{spark ? <Sparkline data={sparklineData(spark)} label={`gradient norm of ${job.name}`} /> : <span class="muted">—</span>}</td>
                    <td class="flags">
                      {action && <span class={`badge action-${action}`} title="The most severe watchdog intervention">
                          {ACTION_LABELS[action] ?? action}
                        </span>}
                      {alertCount > 0 && (
                        <Link href={`/alerts?jobId=${job.id}`} class="badge alert-badge" title="Unacknowledged alerts">
                          {alertCount} alert{alertCount > 1 ? "s" : ""}
                        </Link>
                      )}
                    </td>
                    <td title={job.createdAt}>{formatRelative(job.createdAt)}</td>
                    <td>
                      {canWrite(session) && isActive(job) && (
                        <ConfirmButton label="Cancel" question={`Cancel ${job.name}? Training stops and the job ends as cancelled.`} onConfirm={() => cancel(job)} />
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

/** Per job, a 60-point summary of its steps; finished jobs are read once, active ones refreshed. */
function useSparklines(jobs: Job[] | undefined): Map<string, StepsResponse> {
  const [sparks, setSparks] = useState(new Map<string, StepsResponse>());
  useEffect(() => {
    if (!jobs) return;
    let stopped = false;
    const load = async (list: Job[]) => {
      const answers = await Promise.all(
        list.map((job) =>
          job.lastStep === null
            ? undefined
            : api<StepsResponse>(`/jobs/${job.id}/steps?maxPoints=60&fields=gradNorm,loss,action`).then(
                (body) => body,
                () => undefined,
              ),
        ),
      );
      if (stopped) return;
      setSparks((old) => {
        const next = new Map(old);
        list.forEach((job, i) => {
          const body = answers[i];
          if (body) next.set(job.id, body);
        });
        return next;
      });
    };
    void load(jobs.filter((job) => !sparks.has(job.id) || isActive(job)));
    const timer = setInterval(() => void load(jobs.filter(isActive)), SPARK_REFRESH_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
    // Re-run when the list changes, not when the sparklines it loaded arrive.
  }, [jobs]);
  return sparks;
}
