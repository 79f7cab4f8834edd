// New alerts as toasts (and a browser notification when the user allowed them): from the live
// `alert` event, or, while the live channel is down, from alerts that appear between two polls.
import { useEffect, useRef, useState } from "preact/hooks";
import { useAlerts } from "../alerts.ts";
import type { Alert } from "../lib/api-types.ts";
import { formatStep } from "../lib/format.ts";
import { Link } from "../router.tsx";

const SHOW_MS = 12_000;

export function AlertToasts() {
  const { data } = useAlerts("?acknowledged=false");
  const seen = useRef<Set<string> | null>(null);
  const [toasts, setToasts] = useState<Alert[]>([]);

  useEffect(() => {
    if (!data) return;
    // The first answer is the backlog: it is on the Alerts page, not worth a toast each.
    if (seen.current === null) {
      seen.current = new Set(data.items.map((a) => a.id));
      return;
    }
    const fresh = data.items.filter((a) => !seen.current?.has(a.id));
    if (fresh.length === 0) return;
    for (const alert of fresh) {
      seen.current.add(alert.id);
      if ("Notification" in window && Notification.permission === "granted") new Notification(alert.title, { body: alert.message, tag: alert.id });
    }
    setToasts((list) => [...fresh, ...list].slice(0, 4));
  }, [data]);

  useEffect(() => {
    if (toasts.length === 0) return;
    const timer = setTimeout(() => setToasts((list) => list.slice(0, -1)), SHOW_MS);
    return () => clearTimeout(timer);
  }, [toasts]);

  return (
    <div class="toasts" aria-live="polite">
      {toasts.map((alert) => (
        <div key={alert.id} class={`toast severity-${alert.severity}`} role="status">
          <strong>{alert.title}</strong>
          <span>
            {alert.jobName}
            {alert.step !== null ? ` · step ${formatStep(alert.step)}` : ""}
          </span>
          <Link href={`/jobs/${alert.jobId}${alert.step !== null ? `?step=${alert.step}` : ""}`}>Open job</Link>
          <button type="button" class="link-button" aria-label="Dismiss" onClick={() => setToasts((list) => list.filter((a) => a.id !== alert.id))}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
