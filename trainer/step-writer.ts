// Batches step rows (and the events between them) into Postgres without ever blocking the
// training step: `push` only buffers; flushes run in the background, one multi-row INSERT
// each, idempotent on (jobId, step), so a retried flush never duplicates a row. If the
// database is unreachable the rows wait in memory and are retried; past `maxBuffered` the
// oldest are dropped and that is logged as an error.
import type { Logger } from "../common/logger.ts";
import { Prisma, type PrismaClient, prepared } from "../prisma/client.ts";
import type { StepRecord, TrainingEvent } from "./train-loop.ts";

/** Longest a row waits in the buffer before a flush, unless flushIntervalMs says otherwise. */
export const DEFAULT_FLUSH_INTERVAL_MS = 200;

export interface StepWriterOptions {
  /** Rows per INSERT, and the buffer size that triggers a flush; default 256. */
  batchSize?: number;
  /** Longest a row waits in the buffer before a flush, in ms; default 200. */
  flushIntervalMs?: number;
  /** Rows kept while the database is unreachable; default 200,000. */
  maxBuffered?: number;
  /** First retry delay after a failed flush, in ms, doubling up to 5 s; default 100. */
  retryDelayMs?: number;
}

export class StepWriter {
  private buffer: StepRecord[] = [];
  /** Events wait for the row of their step, so a reader never sees an event ahead of its step. */
  private events: TrainingEvent[] = [];
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closing = false;
  /** The last step known to be in the database. */
  private writtenThrough = -1;
  private dropped = 0;
  private readonly batchSize: number;
  private readonly flushIntervalMs: number;
  private readonly maxBuffered: number;
  private readonly retryDelayMs: number;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly jobId: string,
    private readonly log: Logger,
    options: StepWriterOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 256;
    this.flushIntervalMs = options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS;
    this.maxBuffered = options.maxBuffered ?? 200_000;
    this.retryDelayMs = options.retryDelayMs ?? 100;
  }

  /**
   * Resolves once every row up to `step` is in the database (rows are written in step order).
   * A checkpoint waits for this before it is saved: a job resumed from it must find every
   * earlier step already stored.
   */
  async drain(step: number): Promise<void> {
    while (this.writtenThrough < step && this.buffer.some((row) => row.step <= step)) {
      this.startFlush();
      await this.flushing;
    }
  }

  /** Rows dropped because the buffer overflowed while the database was unreachable. */
  get droppedRows(): number {
    return this.dropped;
  }

  pushEvent(event: TrainingEvent): void {
    this.events.push(event);
  }

  push(record: StepRecord): void {
    this.buffer.push(record);
    if (this.buffer.length > this.maxBuffered) {
      const excess = this.buffer.length - this.maxBuffered;
      this.buffer.splice(0, excess);
      this.dropped += excess;
      this.log.error({ dropped: this.dropped, maxBuffered: this.maxBuffered }, "step buffer full while the database is unreachable: oldest rows dropped");
    }
    if (this.buffer.length >= this.batchSize) this.startFlush();
    else this.timer ??= setTimeout(() => this.startFlush(), this.flushIntervalMs);
  }

  /** Writes every buffered row, retrying until done or `deadlineMs` passes (then throws). */
  async close(deadlineMs = 30_000): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    // Events after the last step (a command applied just before stopping) go out with the end.
    this.closing = true;
    while (this.buffer.length > 0 || this.events.length > 0 || this.flushing) {
      if (Date.now() > deadline) throw new Error(`could not write ${this.buffer.length} step rows before the deadline`);
      this.startFlush();
      await this.flushing;
    }
    clearTimeout(this.timer);
  }

  private startFlush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.flushing || (this.buffer.length === 0 && !(this.closing && this.events.length > 0))) return;
    this.flushing = this.flushOnce().finally(() => {
      this.flushing = undefined;
      if (this.buffer.length >= this.batchSize) this.startFlush();
      else if (this.buffer.length > 0) this.timer ??= setTimeout(() => this.startFlush(), this.flushIntervalMs);
    });
  }

  private async flushOnce(): Promise<void> {
    const rows = this.buffer.slice(0, this.batchSize);
    const lastStep = rows.at(-1)?.step ?? -1;
    const events = this.closing && this.buffer.length === rows.length ? this.events : this.events.filter((event) => event.step <= lastStep);
    try {
      await insertSteps(this.prisma, this.jobId, rows, events);
      this.events = this.events.filter((event) => !events.includes(event));
      // Not splice(0, n): an overflow during the write may already have dropped some of them.
      this.writtenThrough = Math.max(this.writtenThrough, lastStep);
      const written = new Set(rows);
      this.buffer = this.buffer.filter((row) => !written.has(row));
      if (this.failures > 0) this.log.info({ afterFailures: this.failures }, "step writes resumed");
      this.failures = 0;
    } catch (error) {
      this.failures++;
      const delay = Math.min(5_000, this.retryDelayMs * 2 ** (this.failures - 1));
      this.log.warn({ err: error, buffered: this.buffer.length, retryInMs: delay }, "writing steps failed; will retry");
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/**
 * Stores rows and events in ONE statement (data-modifying CTEs), so a flush is a single round
 * trip and atomic without BEGIN/COMMIT: each column travels as one array literal and unnest()
 * turns them back into rows. layerNorms are literals inside a text[] ("{0.1,NaN}") because
 * unnest flattens 2-D arrays.
 */
export async function insertSteps(prisma: PrismaClient, jobId: string, rows: StepRecord[], events: TrainingEvent[] = []): Promise<void> {
  if (rows.length === 0 && events.length === 0) return;
  await prisma.$executeRaw(stepsStatement(jobId, rows, events));
}

/** The statement of insertSteps, inside a transaction the caller holds. */
export async function writeSteps(tx: Prisma.TransactionClient, jobId: string, rows: StepRecord[], events: TrainingEvent[] = []): Promise<void> {
  if (rows.length === 0 && events.length === 0) return;
  await tx.$executeRaw(stepsStatement(jobId, rows, events));
}

function stepsStatement(jobId: string, rows: StepRecord[], events: TrainingEvent[]): Prisma.Sql {
  const lastStep = rows.reduce((max, row) => Math.max(max, row.step), -1);
  return prepared(Prisma.sql`
    WITH steps AS (${insertStepsSql(jobId, rows)}), events AS (${insertEventsSql(jobId, events)})
    UPDATE "Job" SET "lastStep" = GREATEST(COALESCE("lastStep", -1), ${lastStep}::int) WHERE "id" = ${jobId}::uuid AND ${rows.length > 0}`);
}

/**
 * INSERT of step rows, idempotent on (jobId, step); a data-modifying CTE for a bigger statement
 * (server/routes/runs.ts stores an external run's batch in one). `when` makes the insert
 * conditional, e.g. on another CTE having updated a row.
 */
export function insertStepsSql(jobId: string, rows: StepRecord[], when: Prisma.Sql = Prisma.sql`TRUE`): Prisma.Sql {
  // Each column is one array literal built here: passed as a JS array, pg would escape each
  // element of each column (a 256-row flush took 2.8 ms of Node CPU that way, 1.8 ms now).
  // Numbers need no quoting; text elements are JSON-quoted, which escapes " and \ as array
  // literals do.
  const literal = (items: string[]) => `{${items.join(",")}}`;
  const floats = (pick: (row: StepRecord) => number | null) => literal(rows.map((row) => floatText(pick(row)) ?? "NULL"));
  return Prisma.sql`
    INSERT INTO "Step" ("jobId", "step", "loss", "gradNorm", "layerNorms", "lr", "nonFinite", "stepMs",
                        "weightNorm", "updateRatio", "gradNormAfter", "clipCoef", "action", "valLoss")
    SELECT ${jobId}::uuid, t.step, t.loss, t.grad_norm, t.layer_norms::float8[], t.lr, t.non_finite, t.step_ms,
           t.weight_norm, t.update_ratio, t.grad_norm_after, t.clip_coef, t.action, t.val_loss
    FROM unnest(
      ${literal(rows.map((r) => String(r.step)))}::int[],
      ${floats((r) => r.loss)}::float8[],
      ${floats((r) => r.gradNorm)}::float8[],
      ${literal(rows.map((r) => JSON.stringify(literal(r.layerNorms.map((norm) => floatText(norm))))))}::text[],
      ${floats((r) => r.lr)}::float8[],
      ${literal(rows.map((r) => (r.nonFinite ? "t" : "f")))}::bool[],
      ${floats((r) => r.stepMs)}::float8[],
      ${floats((r) => r.weightNorm)}::float8[],
      ${floats((r) => r.updateRatio)}::float8[],
      ${floats((r) => r.gradNormAfter)}::float8[],
      ${floats((r) => r.clipCoef)}::float8[],
      ${literal(rows.map((r) => JSON.stringify(r.action)))}::text[],
      ${floats((r) => r.valLoss)}::float8[]
    ) AS t(step, loss, grad_norm, layer_norms, lr, non_finite, step_ms, weight_norm, update_ratio, grad_norm_after, clip_coef, action, val_loss)
    WHERE ${when}
    ON CONFLICT ("jobId", "step") DO NOTHING`;
}

/**
 * INSERT of events, idempotent like the steps: an event is identified by its step, kind and
 * message. Ids follow the order of `events` (readers list events by id): ORDER BY, because the
 * anti-join may reorder rows (PostgreSQL 16+ can hash the new rows for it, as generic plans of
 * the prepared flush do). The stored events it compares with are bounded to the batch's steps,
 * so that no plan reads all of a long job's events.
 */
export function insertEventsSql(jobId: string, events: TrainingEvent[], when: Prisma.Sql = Prisma.sql`TRUE`): Prisma.Sql {
  const steps = events.map((e) => e.step);
  const [first, last] = steps.length > 0 ? [Math.min(...steps), Math.max(...steps)] : [0, -1];
  return Prisma.sql`
    INSERT INTO "Event" ("jobId", "step", "kind", "severity", "message", "detail")
    SELECT ${jobId}::uuid, e.step, e.kind, e.severity::"EventSeverity", e.message, e.detail::jsonb
    FROM unnest(${steps}::int[], ${events.map((e) => e.kind)}::text[], ${events.map((e) => e.severity)}::text[],
                ${events.map((e) => e.message)}::text[], ${events.map((e) => JSON.stringify(e.detail))}::text[])
         WITH ORDINALITY AS e(step, kind, severity, message, detail, position)
    WHERE ${when} AND NOT EXISTS (
      SELECT 1 FROM "Event" x
      WHERE x."jobId" = ${jobId}::uuid AND x.step BETWEEN ${first}::int AND ${last}::int
        AND x.step = e.step AND x.kind = e.kind AND x.message = e.message)
    ORDER BY e.position`;
}

/** A float as Postgres reads it, NaN and ±Infinity included (JSON parameters would lose them). */
function floatText(value: number): string;
function floatText(value: number | null): string | null;
function floatText(value: number | null): string | null {
  if (value === null) return null;
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "Infinity";
  if (value === Number.NEGATIVE_INFINITY) return "-Infinity";
  return String(value);
}
