// Takes queued jobs from Postgres and trains each in its own child process. Claiming uses
// FOR UPDATE SKIP LOCKED, so any number of workers (in-process or `npm run worker`, on any
// machine) can share one database without running a job twice.
import { type ChildProcess, fork } from "node:child_process";
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { fileURLToPath } from "node:url";
import { type Config, configToEnv } from "../common/config.ts";
import type { Logger } from "../common/logger.ts";
import type { PrismaClient } from "../prisma/client.ts";

const JOB_PROCESS = fileURLToPath(new URL("./job-process.ts", import.meta.url));
/** How long a stopping worker lets a child finish its step and flush before killing it. */
const STOP_GRACE_MS = 30_000;
const STDERR_TAIL_CHARS = 2_000;
const MAX_BACKOFF_MS = 3_600_000;

/**
 * How long a job waits before it is claimed again after its `attempt`-th start (since the last
 * manual retry) crashed: the base doubled per attempt, with jitter (0.5–1×) so that jobs that
 * crashed together (a bad node, a database blip) do not all come back at once; at most an hour.
 * requeueExpired computes the same in SQL.
 */
export function retryBackoff(baseMs: number, attempt: number): number {
  return Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.max(0, attempt - 1) * (0.5 + Math.random() / 2));
}
/** Exit code of a job process that stopped on request and handed its job back to the queue. */
export const EXIT_INTERRUPTED = 3;

/**
 * Advisory-lock class (the first key of pg_advisory_lock(int, int); the second is
 * hashtext(jobId)) a job process holds for as long as it lives. The API takes the same lock
 * before it retries or deletes a job, so it never pulls data from under a trainer that is
 * still stopping (a cancelled job's trainer flushes its last steps and checkpoint first).
 */
export const TRAINER_LOCK_CLASS = 7_274_658;

export interface ClaimedJob {
  id: string;
  /** The attempt number now running (it fences every write of the job process). */
  attempts: number;
  attemptsBeforeRetry: number;
}

/**
 * Takes the queued job that comes first — highest priority, then oldest — and marks it running
 * for this worker. The row is the queue entry: SKIP LOCKED lets concurrent workers pass over a
 * row another is claiming, and the index on (status, priority DESC, createdAt, id) serves it.
 */
export async function claimNextJob(prisma: PrismaClient, workerId: string): Promise<ClaimedJob | undefined> {
  const rows = await prisma.$queryRaw<ClaimedJob[]>`
    UPDATE "Job"
    SET "status" = 'running', "attempts" = "attempts" + 1, "workerId" = ${workerId},
        "startedAt" = now(), "heartbeatAt" = now(), "finishedAt" = NULL, "error" = NULL
    WHERE "id" = (
      SELECT "id" FROM "Job" WHERE "status" = 'queued' AND ("runAfter" IS NULL OR "runAfter" <= now())
      ORDER BY "priority" DESC, "createdAt", "id" LIMIT 1 FOR UPDATE SKIP LOCKED
    )
    RETURNING "id", "attempts", "attemptsBeforeRetry"`;
  return rows[0];
}

export interface WorkerOptions {
  prisma: PrismaClient;
  /** Configuration handed to each job process; databaseUrl must be the resolved URL. */
  config: Config & { databaseUrl: string };
  log: Logger;
}

interface RunningJob {
  jobId: string;
  attempt: number;
  child: ChildProcess;
  exited: Promise<void>;
}

export class Worker {
  readonly id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly running = new Map<string, RunningJob>();
  private stopping = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;

  constructor(private readonly options: WorkerOptions) {}

  start(): this {
    this.options.log.info({ workerId: this.id, concurrency: this.options.config.workerConcurrency }, "worker started");
    this.schedulePoll(0);
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), Math.max(200, this.options.config.leaseMs / 6));
    return this;
  }

  /** Stops taking jobs, asks running jobs to stop after their current step, waits for them. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.pollTimer);
    clearInterval(this.heartbeatTimer);
    await this.polling;
    const jobs = [...this.running.values()];
    for (const job of jobs) job.child.kill("SIGTERM");
    const killTimer = setTimeout(() => {
      for (const job of jobs) job.child.kill("SIGKILL");
    }, STOP_GRACE_MS);
    await Promise.all(jobs.map((job) => job.exited));
    clearTimeout(killTimer);
    this.options.log.info({ workerId: this.id }, "worker stopped");
  }

  private schedulePoll(delayMs: number): void {
    if (this.stopping) return;
    this.pollTimer = setTimeout(() => {
      this.polling = this.poll().finally(() => {
        this.polling = undefined;
      });
    }, delayMs);
  }

  private async poll(): Promise<void> {
    const { config, log } = this.options;
    let claimed = false;
    try {
      await this.requeueExpired();
      while (!this.stopping && this.running.size < config.workerConcurrency) {
        const job = await claimNextJob(this.options.prisma, this.id);
        if (!job) break;
        claimed = true;
        this.launch(job);
      }
    } catch (error) {
      log.error({ err: error }, "could not claim a job; retrying");
    }
    this.schedulePoll(claimed ? 0 : config.pollMs);
  }

  /**
   * Jobs whose worker stopped sending heartbeats (killed, frozen, cut off) go back to the queue,
   * or fail once they have used all their attempts. Any worker does this for all.
   */
  private async requeueExpired(): Promise<void> {
    const { config, log, prisma } = this.options;
    const expired = await prisma.$queryRaw<{ id: string; status: string }[]>`
      UPDATE "Job"
      SET "status" = CASE WHEN "attempts" - "attemptsBeforeRetry" >= ${config.maxAttempts}::int THEN 'failed'::"JobStatus" ELSE 'queued'::"JobStatus" END,
          "error" = 'its worker ' || COALESCE("workerId", '?') || ' stopped sending heartbeats',
          "finishedAt" = CASE WHEN "attempts" - "attemptsBeforeRetry" >= ${config.maxAttempts}::int THEN now() ELSE NULL END,
          "runAfter" = now() + make_interval(secs => least(${MAX_BACKOFF_MS / 1000}::float8,
            ${config.retryBackoffMs / 1000}::float8 * power(2, greatest("attempts" - "attemptsBeforeRetry" - 1, 0)) * (0.5 + random() / 2))),
          "workerId" = NULL
      WHERE "status" = 'running' AND "heartbeatAt" < now() - make_interval(secs => ${config.leaseMs / 1000}::float8)
      RETURNING "id", "status"::text AS status`;
    for (const job of expired) {
      log.warn({ jobId: job.id, now: job.status }, "took over a job whose worker stopped sending heartbeats");
      await this.recordEvent(job.id, "leaseExpired", "warning", `its worker stopped sending heartbeats; job ${job.status === "queued" ? "queued again" : "failed"}`);
    }
  }

  private launch({ id: jobId, attempts: attempt, attemptsBeforeRetry }: ClaimedJob): void {
    const { config, log } = this.options;
    const jobLog = log.child({ jobId, attempt });
    // The child parses its configuration like any process; it gets ours (with the resolved
    // database URL) on top of the inherited environment (PATH and the like).
    const child = fork(JOB_PROCESS, [jobId, String(attempt)], {
      env: { ...process.env, ...configToEnv(config) },
      // Job processes run the TypeScript sources directly, like the parent.
      execArgv: ["--import", import.meta.resolve("tsx")],
      stdio: ["ignore", "inherit", "pipe", "ipc"],
      // Its own process group: a Ctrl-C in the terminal reaches the worker, which then stops
      // its jobs in order, instead of killing them mid-step.
      detached: true,
    });
    let stderrTail = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      process.stderr.write(chunk);
      stderrTail = (stderrTail + chunk.toString("utf8")).slice(-STDERR_TAIL_CHARS);
    });
    const exited = new Promise<void>((resolve) => {
      child.on("exit", (code, signal) => {
        this.running.delete(jobId);
        jobLog.info({ code, signal }, "job process exited");
        const clean = code === 0 || code === EXIT_INTERRUPTED;
        const done = clean ? Promise.resolve() : this.recordCrash(jobId, attempt, attempt - attemptsBeforeRetry, code, signal, stderrTail);
        void done.finally(() => {
          resolve();
          this.schedulePollSoon();
        });
      });
    });
    this.running.set(jobId, { jobId, attempt, child, exited });
    jobLog.info({ pid: child.pid }, "job process started");
  }

  private schedulePollSoon(): void {
    if (this.stopping || this.polling) return;
    clearTimeout(this.pollTimer);
    this.schedulePoll(0);
  }

  /**
   * The child died without recording an outcome (crash, OOM, kill -9): queue the job again, to
   * resume from its last checkpoint, or fail it once its attempts are used up.
   */
  private async recordCrash(
    jobId: string,
    attempt: number,
    attemptSinceRetry: number,
    code: number | null,
    signal: string | null,
    stderrTail: string,
  ): Promise<void> {
    const { config, log, prisma } = this.options;
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    const detail = stderrTail.trim().split("\n").slice(-5).join("\n");
    const retry = attemptSinceRetry < config.maxAttempts;
    const error = `the trainer process ${how}${detail ? `: ${detail}` : ""}${retry ? ` (attempt ${attemptSinceRetry} of ${config.maxAttempts}; retrying from the last checkpoint)` : ""}`;
    try {
      const { count } = await prisma.job.updateMany({
        where: { id: jobId, status: "running", attempts: attempt },
        data: retry
          ? { status: "queued", error, workerId: null, runAfter: new Date(Date.now() + retryBackoff(config.retryBackoffMs, attemptSinceRetry)) }
          : { status: "failed", error, finishedAt: new Date(), workerId: null },
      });
      if (count > 0) await this.recordEvent(jobId, "trainerCrashed", "critical", error);
    } catch (updateError) {
      log.error({ err: updateError, jobId }, "could not record a crashed job");
    }
  }

  /** An event outside any step's flush (the job's last step, or -1 before the first). */
  private async recordEvent(jobId: string, kind: string, severity: "warning" | "critical", message: string): Promise<void> {
    await this.options.prisma.$executeRaw`
      INSERT INTO "Event" ("jobId", "step", "kind", "severity", "message", "detail")
      SELECT "id", COALESCE("lastStep", -1), ${kind}, ${severity}::"EventSeverity", ${message}, ${JSON.stringify({ workerId: this.id })}::jsonb
      FROM "Job" WHERE "id" = ${jobId}::uuid`;
  }

  private async heartbeat(): Promise<void> {
    const ids = [...this.running.keys()];
    if (ids.length === 0) return;
    try {
      await this.options.prisma.job.updateMany({
        where: { id: { in: ids }, status: "running", workerId: this.id },
        data: { heartbeatAt: new Date() },
      });
    } catch (error) {
      this.options.log.warn({ err: error }, "heartbeat failed");
    }
  }
}
