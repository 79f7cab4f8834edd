// What alerts look like outside: the API's (and socket.io's) JSON shape, the webhook bodies
// (gradguard JSON or a Slack incoming-webhook message), and the signature headers.
// docs/webhooks.md documents the receiving side.
import { createHmac } from "node:crypto";
import type { LiveAlert } from "../../common/live-contract.ts";

/** An alert as GET /api/v1/alerts returns it: the same shape socket.io sends. */
export type AlertView = LiveAlert;

/** The columns of an Alert row, plus its job's name. */
export interface AlertRow {
  id: bigint;
  jobId: string;
  rule: string;
  severity: "info" | "warning" | "critical";
  title: string;
  message: string;
  step: number | null;
  eventId: bigint | null;
  count: number;
  createdAt: Date;
  acknowledgedAt: Date | null;
  acknowledgedBy: string | null;
  job: { name: string };
}

export function toAlertView(row: AlertRow): AlertView {
  return {
    id: row.id.toString(),
    jobId: row.jobId,
    jobName: row.job.name,
    rule: row.rule,
    severity: row.severity,
    title: row.title,
    message: row.message,
    step: row.step,
    eventId: row.eventId?.toString() ?? null,
    count: row.count,
    createdAt: row.createdAt.toISOString(),
    acknowledgedAt: row.acknowledgedAt?.toISOString() ?? null,
    acknowledgedBy: row.acknowledgedBy,
  };
}

export type WebhookFormat = "json" | "slack";

const SEVERITY_MARK = { info: ":information_source:", warning: ":warning:", critical: ":rotating_light:" } as const;

/** The body sent for one delivery. The same bytes on every attempt: receivers may hash or dedupe on it. */
export function webhookBody(format: WebhookFormat, deliveryId: string, alert: AlertView): string {
  if (format === "json") return JSON.stringify({ type: "alert", deliveryId, alert });
  const where = alert.step === null ? "" : ` at step ${alert.step}`;
  return JSON.stringify({
    text: `${alert.severity.toUpperCase()}: ${alert.title}${where}. ${alert.message}`,
    blocks: [
      { type: "header", text: { type: "plain_text", text: alert.title.slice(0, 150) } },
      { type: "section", text: { type: "mrkdwn", text: `${SEVERITY_MARK[alert.severity]} *${alert.severity}* · \`${alert.rule}\`${where}\n${alert.message}` } },
      { type: "context", elements: [{ type: "mrkdwn", text: `job ${alert.jobName} (${alert.jobId}) · alert ${alert.id} · ${alert.createdAt}` }] },
    ],
  });
}

/** `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, as docs/webhooks.md verifies it. */
export function signature(secret: string, timestampSeconds: number, body: string): string {
  const digest = createHmac("sha256", secret).update(`${timestampSeconds}.${body}`).digest("hex");
  return `t=${timestampSeconds},v1=${digest}`;
}

/** The headers of one attempt. */
export function deliveryHeaders(secret: string, deliveryId: string, attempt: number, body: string, now: Date): Record<string, string> {
  return {
    "gradguard-delivery": deliveryId,
    "gradguard-attempt": String(attempt),
    "gradguard-signature": signature(secret, Math.floor(now.getTime() / 1000), body),
  };
}
