// Turns job events into stored alerts, never losing one: each pass takes a batch from
// AlertInbox (filled by a trigger in the event writer's transaction) and, in ONE transaction,
// stores the alerts, their webhook outbox rows and the rules' new state, and empties those
// inbox rows. A crash before the commit leaves the inbox as it was; the next pass redoes it.
// The state row is locked for the pass (SKIP LOCKED), so with several server instances one
// evaluates and the others skip.
import type { Logger } from "../../common/logger.ts";
import type { Prisma, PrismaClient } from "../../prisma/client.ts";
import { CoalescedTask } from "../live/coalesced-task.ts";
import { type AlertRow, type AlertView, toAlertView } from "./payloads.ts";
import { checkSilence, emptyState, evaluateEvents, type JobEvent, type NewAlert, pruneState, type RuleSettings, type RulesState, type RunningJob } from "./rules.ts";

/** Events per transaction; a backlog (after a restart) is worked off in passes of this size. */
const BATCH = 500;
/** How often running jobs are checked for silence (ms). */
const SILENCE_CHECK_MS = 1_000;

export interface EvaluatorOptions {
  prisma: PrismaClient;
  settings: RuleSettings;
  log: Logger;
  /** Called after each commit that raised alerts, with them (socket.io, the webhook dispatcher). */
  onRaised(alerts: AlertView[]): void;
}

export interface PassResult {
  /** False when another instance held the lock. */
  evaluated: boolean;
  events: number;
  raised: AlertView[];
}

export class AlertEvaluator {
  private readonly task: CoalescedTask;
  /** The pass in flight, awaited by stop() so none uses the database after it closes. */
  private current: Promise<unknown> = Promise.resolve();
  /** When this instance last ran the silence check (database time, ms). */
  private silenceCheckedAt = 0;

  constructor(private readonly options: EvaluatorOptions) {
    this.task = new CoalescedTask(
      async () => {
        this.current = this.runPass();
        const pass = (await this.current) as PassResult;
        if (pass.events === BATCH) this.task.request();
      },
      (error) => options.log.error({ err: error }, "alert evaluation failed; its events stay in the inbox for the next pass"),
    );
  }

  /** Asks for a pass; asked again while one runs, it runs once more after it. */
  wake(): void {
    this.task.request();
  }

  async stop(): Promise<void> {
    this.task.stop();
    await this.current.catch(() => {});
  }

  /** One transaction: inbox batch (and, at most once a second, running jobs) → alerts, outbox rows, state. */
  async runPass(): Promise<PassResult> {
    const { prisma, settings } = this.options;
    const result = await prisma.$transaction(async (tx) => {
      const [locked] = await tx.$queryRaw<{ state: Partial<RulesState>; now: Date }[]>`
        SELECT state, now() AS now FROM "AlertEvaluator" WHERE id = 1 FOR UPDATE SKIP LOCKED`;
      if (!locked) return { evaluated: false, events: 0, raised: [] as AlertView[] };
      const now = locked.now.getTime();
      const before = { ...emptyState(), ...locked.state };

      const events = await tx.$queryRaw<(Omit<JobEvent, "at"> & { createdAt: Date })[]>`
        SELECT e.id::text AS id, e."jobId"::text AS "jobId", j.name AS "jobName", e.step, e.kind, e.message, e."createdAt"
        FROM "AlertInbox" i JOIN "Event" e ON e.id = i."eventId" JOIN "Job" j ON j.id = e."jobId"
        ORDER BY e.id LIMIT ${BATCH}`;
      let evaluation = evaluateEvents(
        events.map(({ createdAt, ...event }) => ({ ...event, at: createdAt.getTime() })),
        before,
        settings,
      );
      // Silence is measured in seconds: a pass woken by an event skips this query (latency).
      if (events.length === 0 || now - this.silenceCheckedAt >= SILENCE_CHECK_MS) {
        this.silenceCheckedAt = now;
        const running = await tx.$queryRaw<RunningJob[]>`
          SELECT id::text AS "jobId", name AS "jobName", "lastStep", paused FROM "Job" WHERE status = 'running'`;
        const fromSilence = checkSilence(running, evaluation.state, now, settings);
        for (const [id, n] of evaluation.repeats) fromSilence.repeats.set(id, (fromSilence.repeats.get(id) ?? 0) + n);
        evaluation = { raised: [...evaluation.raised, ...fromSilence.raised], repeats: fromSilence.repeats, state: fromSilence.state };
      }
      const state = pruneState(evaluation.state, now, settings);
      const stored = await storeAlerts(tx, evaluation.raised, state);
      // An idle pass (no event, no job moved) changes nothing: no write.
      if (events.length > 0 || JSON.stringify(state) !== JSON.stringify(before)) {
        const repeats = [...evaluation.repeats];
        await tx.$executeRaw`
          WITH evaluated AS (DELETE FROM "AlertInbox" WHERE "eventId" = ANY(${events.map((e) => e.id)}::bigint[])),
               repeated AS (UPDATE "Alert" a SET count = a.count + r.n
                            FROM unnest(${repeats.map(([id]) => id)}::bigint[], ${repeats.map(([, n]) => n)}::int[]) AS r(id, n) WHERE a.id = r.id)
          UPDATE "AlertEvaluator" SET state = ${JSON.stringify(state)}::jsonb, "updatedAt" = now() WHERE id = 1`;
      }
      return { evaluated: true, events: events.length, raised: stored };
    });
    if (result.raised.length > 0) this.options.onRaised(result.raised);
    return result;
  }
}

/**
 * Inserts the alerts and, in the same statement, one outbox row per webhook whose filter they
 * match; records their ids in `state.open`. One statement: each round trip is latency.
 */
async function storeAlerts(tx: Prisma.TransactionClient, raised: NewAlert[], state: RulesState): Promise<AlertView[]> {
  if (raised.length === 0) return [];
  const rows = await tx.$queryRaw<Omit<AlertRow, "job">[]>`
    WITH stored AS (
      INSERT INTO "Alert" ("jobId", rule, severity, title, message, step, "eventId", count)
      SELECT * FROM unnest(${raised.map((a) => a.jobId)}::uuid[], ${raised.map((a) => a.rule)}::text[],
                           ${raised.map((a) => a.severity)}::"EventSeverity"[], ${raised.map((a) => a.title)}::text[],
                           ${raised.map((a) => a.message)}::text[], ${raised.map((a) => a.step)}::int[],
                           ${raised.map((a) => a.eventId)}::bigint[], ${raised.map((a) => a.count)}::int[])
      RETURNING *
    ), outbox AS (
      INSERT INTO "AlertDelivery" ("alertId", "webhookId")
      SELECT s.id, w.id FROM stored s JOIN "Webhook" w
        ON (COALESCE(cardinality(w.rules), 0) = 0 OR s.rule = ANY(w.rules))
       AND (COALESCE(cardinality(w.severities), 0) = 0 OR s.severity = ANY(w.severities))
    )
    SELECT id, "jobId"::text AS "jobId", rule, severity::text AS severity, title, message, step, "eventId", count,
           "createdAt", "acknowledgedAt", "acknowledgedBy"
    FROM stored ORDER BY id`;
  // Ids are drawn in the order of the unnest rows, so row i is raised[i]; the key ties it to the
  // state entry it opened.
  return rows.map((row, i) => {
    const alert = raised[i] as NewAlert;
    const open = state.open[alert.key];
    if (open) open.alertId = row.id.toString();
    return toAlertView({ ...row, job: { name: alert.jobName } });
  });
}
