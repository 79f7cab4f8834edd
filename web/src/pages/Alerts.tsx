// Alerts: every alert, newest first, filtered by state and severity; acknowledge; open the job
// at the step the alert is about.
import { useState } from "preact/hooks";
import { acknowledge, useAlerts } from "../alerts.ts";
import type { ApiError } from "../api.ts";
import type { Alert } from "../lib/api-types.ts";
import { formatRelative, formatStep } from "../lib/format.ts";
import { Link, useLocation } from "../router.tsx";
import { canWrite, useSession } from "../session.ts";

export function AlertsPage() {
  const session = useSession();
  const url = useLocation();
  const jobId = url.searchParams.get("jobId");
  const [state, setState] = useState<"open" | "all">("open");
  const [severity, setSeverity] = useState<"" | Alert["severity"]>("");
  const [error, setError] = useState<string>();
  const query = new URLSearchParams({ ...(jobId ? { jobId } : {}), ...(state === "open" ? { acknowledged: "false" } : {}), ...(severity ? { severity } : {}) }).toString();
  const alerts = useAlerts(query ? `?${query}` : "");
  const ack = async (alert: Alert) => {
    setError(undefined);
    try {
      await acknowledge(alert);
    } catch (failure) {
      setError((failure as ApiError).message);
    }
    alerts.reload();
  };

  return (
    <section>
      <div class="page-head">
        <h1>Alerts</h1>
        <div class="toolbar">
          <select aria-label="State" value={state} onChange={(e) => setState(e.currentTarget.value as "open" | "all")}>
            <option value="open">unacknowledged</option>
            <option value="all">all</option>
          </select>
          <select aria-label="Severity" value={severity} onChange={(e) => setSeverity(e.currentTarget.value as Alert["severity"] | "")}>
            <option value="">any severity</option>
            <option value="critical">critical</option>
            <option value="warning">warning</option>
            <option value="info">info</option>
          </select>
          {jobId && <Link href="/alerts">All jobs</Link>}
        </div>
      </div>
      {error && <p class="error-line">{error}</p>}
      {alerts.error ? (
        <p class="error-line">{alerts.error.status === 404 ? "This server does not serve alerts yet (no /api/v1/alerts)." : `Could not load alerts: ${alerts.error.message}`}</p>
      ) : !alerts.data ? (
        <p class="muted">Loading alerts…</p>
      ) : alerts.data.items.length === 0 ? (
        <div class="empty-state">{state === "open" ? "No unacknowledged alerts. All quiet." : "No alerts yet."}</div>
      ) : (
        <ul class="alerts">
          {alerts.data.items.map((alert) => (
            <li key={alert.id} class={`card severity-${alert.severity}${alert.acknowledgedAt ? " acknowledged" : ""}`} data-alert-id={alert.id}>
              <div class="alert-main">
                <span class={`badge severity-badge-${alert.severity}`}>{alert.severity}</span>
                <strong>{alert.title}</strong>
                <span class="muted" title={alert.createdAt}>
                  {formatRelative(alert.createdAt)}
                </span>
              </div>
              <p>{alert.message}</p>
              <div class="alert-actions">
                <Link href={`/jobs/${alert.jobId}${alert.step !== null ? `?step=${alert.step}` : ""}`}>
                  {alert.jobName}
                  {alert.step !== null ? ` at step ${formatStep(alert.step)}` : ""}
                </Link>
                <span class="muted">rule {alert.rule}</span>
                {alert.acknowledgedAt ? (
                  <span class="muted">acknowledged {formatRelative(alert.acknowledgedAt)}</span>
                ) : (
                  canWrite(session) && (
                    <button type="button" onClick={() => ack(alert)}>
                      Acknowledge
                    </button>
                  )
                )}
              </div>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
