// Sends the webhook outbox (AlertDelivery rows): at least once, with a delivery id that stays
// the same on every attempt. A due row is claimed by moving its nextAttemptAt past the attempt's
// timeout (FOR UPDATE SKIP LOCKED: instances never claim the same row), so a server that dies
// mid-attempt leaves it to be taken over, not lost. Each attempt is logged in DeliveryAttempt.
import type { AlertsConfig } from "../../common/config.ts";
import type { Logger } from "../../common/logger.ts";
import type { PrismaClient } from "../../prisma/client.ts";
import { CoalescedTask } from "../live/coalesced-task.ts";
import { postWebhook } from "./outbound.ts";
import { type AlertRow, deliveryHeaders, toAlertView, type WebhookFormat, webhookBody } from "./payloads.ts";

/** Deliveries sent at once by one instance. */
const CLAIM = 16;
/** Back-off never waits longer than this between two attempts (ms). */
const MAX_DELAY_MS = 3_600_000;

export type DispatchSettings = Pick<AlertsConfig, "webhookAllowPrivate" | "webhookTimeoutMs" | "webhookRetryMs" | "webhookMaxAgeMs">;

/**
 * The wait before attempt `attempt + 1`: "full jitter" (uniform between 0 and the exponential
 * cap), which spreads retries of many deliveries that failed together.
 */
export function retryDelayMs(attempt: number, baseMs: number, random = Math.random): number {
  return Math.floor(random() * Math.min(MAX_DELAY_MS, baseMs * 2 ** (attempt - 1)));
}

/** A claimed delivery with everything its attempt needs (one round trip: each is latency). */
interface Claimed {
  id: string;
  attempts: number;
  createdAt: Date;
  alert: AlertRow;
  url: string;
  secret: string;
  format: WebhookFormat;
}

export class WebhookDispatcher {
  private readonly task: CoalescedTask;
  private current: Promise<unknown> = Promise.resolve();
  private readonly retryTimers = new Set<NodeJS.Timeout>();

  constructor(private readonly options: { prisma: PrismaClient; settings: DispatchSettings; log: Logger }) {
    this.task = new CoalescedTask(
      async () => {
        this.current = this.sendDue();
        if (((await this.current) as number) === CLAIM) this.task.request();
      },
      (error) => options.log.error({ err: error }, "webhook dispatch failed; due deliveries are retried on the next pass"),
    );
  }

  /** Sends what is due now. */
  wake(): void {
    this.task.request();
  }

  async stop(): Promise<void> {
    this.task.stop();
    for (const timer of this.retryTimers) clearTimeout(timer);
    await this.current.catch(() => {});
  }

  /** Claims and sends up to CLAIM due deliveries; returns how many were claimed. */
  async sendDue(): Promise<number> {
    const { prisma, settings } = this.options;
    const leaseMs = settings.webhookTimeoutMs + 5_000;
    const claimed = await prisma.$queryRaw<(Omit<Claimed, "alert"> & Omit<AlertRow, "job" | "createdAt"> & { jobName: string; alertCreatedAt: Date; alertId: bigint })[]>`
      UPDATE "AlertDelivery" d SET attempts = d.attempts + 1, "nextAttemptAt" = now() + ${leaseMs} * interval '1 millisecond'
      FROM (SELECT id FROM "AlertDelivery" WHERE status = 'pending' AND "nextAttemptAt" <= now()
            ORDER BY "nextAttemptAt" LIMIT ${CLAIM} FOR UPDATE SKIP LOCKED) due, "Alert" a, "Job" j, "Webhook" w
      WHERE d.id = due.id AND a.id = d."alertId" AND j.id = a."jobId" AND w.id = d."webhookId"
      RETURNING d.id::text AS id, d.attempts, d."createdAt", w.url, w.secret, w.format::text AS format,
        a.id AS "alertId", a."jobId"::text AS "jobId", j.name AS "jobName", a.rule, a.severity::text AS severity, a.title, a.message,
        a.step, a."eventId", a.count, a."createdAt" AS "alertCreatedAt", a."acknowledgedAt", a."acknowledgedBy"`;
    await Promise.all(
      claimed.map(({ id, attempts, createdAt, url, secret, format, alertId, jobName, alertCreatedAt, ...alert }) =>
        this.attempt({ id, attempts, createdAt, url, secret, format, alert: { ...alert, id: alertId, createdAt: alertCreatedAt, job: { name: jobName } } }),
      ),
    );
    return claimed.length;
  }

  private async attempt(delivery: Claimed): Promise<void> {
    const { prisma, settings, log } = this.options;
    const body = webhookBody(delivery.format, delivery.id, toAlertView(delivery.alert));
    const result = await postWebhook({
      url: delivery.url,
      body,
      headers: deliveryHeaders(delivery.secret, delivery.id, delivery.attempts, body, new Date()),
      timeoutMs: settings.webhookTimeoutMs,
      allowPrivate: settings.webhookAllowPrivate,
    });
    const ok = result.statusCode !== undefined && result.statusCode >= 200 && result.statusCode < 300;
    const error = ok ? null : (result.error ?? `the receiver answered ${result.statusCode}`);
    // An address that became private is refused again on every attempt: give up now.
    const refused = result.error?.startsWith("EPRIVATEADDRESS") || result.error?.endsWith("is a private address");
    const delay = retryDelayMs(delivery.attempts, settings.webhookRetryMs);
    const tooOld = Date.now() + delay - delivery.createdAt.getTime() > settings.webhookMaxAgeMs;
    const status = ok ? "delivered" : refused || tooOld ? "failed" : "pending";
    try {
      await prisma.$transaction([
        prisma.deliveryAttempt.create({
          data: { deliveryId: delivery.id, attempt: delivery.attempts, statusCode: result.statusCode ?? null, error, durationMs: result.durationMs },
        }),
        // Only while this attempt still holds the claim: a taken-over row is the new holder's.
        prisma.alertDelivery.updateMany({
          where: { id: delivery.id, attempts: delivery.attempts, status: "pending" },
          data: status === "pending" ? { nextAttemptAt: new Date(Date.now() + delay) } : { status, finishedAt: new Date() },
        }),
      ]);
    } catch (recordError) {
      log.warn({ err: recordError, deliveryId: delivery.id }, "could not record a webhook attempt (deleted meanwhile?)");
      return;
    }
    if (status === "pending") {
      log.info({ deliveryId: delivery.id, attempt: delivery.attempts, error, retryInMs: delay }, "webhook delivery failed; will retry");
      const timer = setTimeout(() => {
        this.retryTimers.delete(timer);
        this.wake();
      }, delay);
      timer.unref();
      this.retryTimers.add(timer);
    } else if (status === "failed") {
      log.warn({ deliveryId: delivery.id, attempts: delivery.attempts, error }, "webhook delivery given up");
    }
  }
}
