// Alerts as the pages see them: GET /api/v1/alerts, refreshed by the live `alert` event (or
// polled while the live channel is down), and acknowledged with POST /alerts/:id/ack.
import { useEffect } from "preact/hooks";
import { api, useApi } from "./api.ts";
import { liveSocket, useLiveState } from "./live.ts";
import type { Alert } from "./lib/api-types.ts";
import { useSession } from "./session.ts";

const POLL_MS = 5000;

/** Alerts matching `query` (e.g. "?jobId=…&acknowledged=false"); `reload` after acknowledging. */
export function useAlerts(query = "") {
  const { token } = useSession();
  const live = useLiveState();
  const resource = useApi<{ items: Alert[] }>(`/alerts${query}`, live === "live" ? undefined : POLL_MS);
  const { reload } = resource;
  useEffect(() => {
    const socket = liveSocket(token);
    socket.on("alert", reload);
    return () => {
      socket.off("alert", reload);
    };
  }, [token, reload]);
  return resource;
}

export function acknowledge(alert: Alert): Promise<Alert> {
  return api<Alert>(`/alerts/${alert.id}/ack`, { method: "POST", body: {} });
}
