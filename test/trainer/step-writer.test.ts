import pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { createPrismaClient } from "../../prisma/client.ts";
import { insertSteps, StepWriter } from "../../trainer/step-writer.ts";
import type { StepRecord } from "../../trainer/train-loop.ts";
import { createTestDatabase, futureDatabase, silentLog, type TestDatabase } from "../helpers/database.ts";
import { waitFor } from "../helpers/wait.ts";

function record(step: number, overrides: Partial<StepRecord> = {}): StepRecord {
  return {
    step,
    loss: 1 / (step + 1),
    gradNorm: 0.5 + step,
    layerNorms: [0.3, 0.4, step],
    weightNorm: 3,
    updateRatio: 0.01,
    gradNormAfter: 0.5 + step,
    clipCoef: 1,
    action: "none",
    lr: 0.1,
    nonFinite: false,
    stepMs: 1.5,
    valLoss: null,
    ...overrides,
  };
}

async function newJob(db: TestDatabase): Promise<string> {
  return (await db.prisma.job.create({ data: { name: "w", spec: {} } })).id;
}

describe("step writer", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });

  it("writes many rows in one statement and never duplicates a retried row", async () => {
    const jobId = await newJob(db);
    const rows = Array.from({ length: 500 }, (_, i) => record(i));
    await insertSteps(db.prisma, jobId, rows);
    await insertSteps(db.prisma, jobId, rows.slice(100, 300)); // a retried flush
    const [{ count, distinct, last }] = (await db.query<{ count: number; distinct: number; last: number }>(
      `SELECT count(*)::int AS count, count(DISTINCT step)::int AS distinct, max(step) AS last FROM "Step" WHERE "jobId" = $1`,
      [jobId],
    )) as [{ count: number; distinct: number; last: number }];
    expect({ count, distinct, last }).toEqual({ count: 500, distinct: 500, last: 499 });
    expect((await db.prisma.job.findUniqueOrThrow({ where: { id: jobId } })).lastStep).toBe(499);
    const stored = await db.prisma.step.findUniqueOrThrow({ where: { jobId_step: { jobId, step: 7 } } });
    expect(stored).toMatchObject({ loss: 1 / 8, gradNorm: 7.5, layerNorms: [0.3, 0.4, 7], lr: 0.1, nonFinite: false, stepMs: 1.5 });
  });

  it("gives a flush's events ids in the order they were emitted, whatever plan PostgreSQL picks", async () => {
    // The flush is a prepared statement: after a few runs PostgreSQL may switch to a generic
    // plan, whose joins need not keep the rows' order. Force that plan from the first run.
    const generic = await createTestDatabase();
    await generic.query(`ALTER DATABASE "${generic.name}" SET plan_cache_mode = force_generic_plan`);
    const prisma = createPrismaClient(generic.url);
    try {
      const jobId = (await prisma.job.create({ data: { name: "ordered", spec: {} } })).id;
      for (let flush = 0; flush < 3; flush++) {
        const events = Array.from({ length: 40 }, (_, i) => ({ step: flush * 40 + ((i * 7) % 40), kind: `kind${i % 5}`, severity: "info" as const, message: `event ${flush}.${i}`, detail: { i } }));
        await insertSteps(prisma, jobId, [record(flush)], events);
        const stored = await generic.query<{ message: string }>(`SELECT message FROM "Event" WHERE "jobId" = $1 AND message LIKE $2 ORDER BY id`, [jobId, `event ${flush}.%`]);
        expect(stored.map((e) => e.message)).toEqual(events.map((e) => e.message));
        await insertSteps(prisma, jobId, [record(flush)], events); // a retried flush stores nothing twice
        expect(await generic.query(`SELECT 1 FROM "Event" WHERE "jobId" = $1`, [jobId])).toHaveLength((flush + 1) * 40);
      }
    } finally {
      await prisma.$disconnect();
    }
  });

  it("stores NaN and infinities as such, never as null or zero", async () => {
    const jobId = await newJob(db);
    await insertSteps(db.prisma, jobId, [
      record(0, { loss: Number.NaN, gradNorm: Number.POSITIVE_INFINITY, layerNorms: [Number.NaN, Number.NEGATIVE_INFINITY, 1], nonFinite: true }),
    ]);
    const [row] = await db.query<{ loss: string; grad: string; norms: string }>(
      `SELECT loss::text AS loss, "gradNorm"::text AS grad, "layerNorms"::text AS norms FROM "Step" WHERE "jobId" = $1`,
      [jobId],
    );
    expect(row).toEqual({ loss: "NaN", grad: "Infinity", norms: "{NaN,-Infinity,1}" });
  });

  it("batches pushed rows and writes them all on close", async () => {
    const jobId = await newJob(db);
    const writer = new StepWriter(db.prisma, jobId, silentLog, { batchSize: 64, flushIntervalMs: 20 });
    for (let i = 0; i < 1000; i++) writer.push(record(i));
    await writer.close();
    const [{ count }] = (await db.query<{ count: number }>(`SELECT count(*)::int AS count FROM "Step" WHERE "jobId" = $1`, [jobId])) as [{ count: number }];
    expect(count).toBe(1000);
  });

  it("keeps rows while the database is unreachable and writes them once it is back", async () => {
    const later = futureDatabase();
    const prisma = createPrismaClient(later.url, { maxConnections: 1 });
    const writer = new StepWriter(prisma, "00000000-0000-4000-8000-000000000001", silentLog, { batchSize: 10, flushIntervalMs: 10, retryDelayMs: 20 });
    try {
      for (let i = 0; i < 50; i++) writer.push(record(i));
      await new Promise((resolve) => setTimeout(resolve, 300)); // several failed flushes
      await later.create();
      await prisma.job.create({ data: { id: "00000000-0000-4000-8000-000000000001", name: "late", spec: {} } });
      await writer.close();
      expect(await prisma.step.count()).toBe(50);
      expect(writer.droppedRows).toBe(0);
    } finally {
      await prisma.$disconnect();
    }
  });

  it("drops the oldest rows past its bound and says how many", async () => {
    const later = futureDatabase();
    const prisma = createPrismaClient(later.url, { maxConnections: 1 });
    const writer = new StepWriter(prisma, "00000000-0000-4000-8000-000000000002", silentLog, { batchSize: 10, flushIntervalMs: 10, retryDelayMs: 20, maxBuffered: 30 });
    try {
      for (let i = 0; i < 100; i++) writer.push(record(i));
      expect(writer.droppedRows).toBe(70);
      await later.create();
      await prisma.job.create({ data: { id: "00000000-0000-4000-8000-000000000002", name: "late", spec: {} } });
      await writer.close();
      const steps = await prisma.step.findMany({ select: { step: true }, orderBy: { step: "asc" } });
      expect(steps[0]?.step).toBeGreaterThanOrEqual(60);
      expect(steps.at(-1)?.step).toBe(99);
    } finally {
      await prisma.$disconnect();
    }
  });

  it("drain(step) returns only once every row up to that step is stored", async () => {
    const jobId = await newJob(db);
    const writer = new StepWriter(db.prisma, jobId, silentLog, { batchSize: 1000, flushIntervalMs: 60_000 });
    for (let i = 0; i < 50; i++) writer.push(record(i));
    await writer.drain(39);
    expect(await db.prisma.step.count({ where: { jobId, step: { lte: 39 } } })).toBe(40);
    await writer.close();
  });

  it("does not block the caller: push returns before anything is written", async () => {
    const jobId = await newJob(db);
    // The job row locked elsewhere holds every flush up (a flush is one statement, and quick), so
    // the test does not race it: push must return while the write waits.
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    await locker.query(`BEGIN; SELECT 1 FROM "Job" WHERE id = '${jobId}' FOR UPDATE`);
    const writer = new StepWriter(db.prisma, jobId, silentLog, { batchSize: 5, flushIntervalMs: 1000 });
    for (let i = 0; i < 20; i++) writer.push(record(i));
    await waitFor("a flush waiting on the lock", async () => ((await db.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).length > 0 ? true : undefined));
    expect(await db.prisma.step.count({ where: { jobId } })).toBe(0);
    await locker.query("COMMIT");
    await locker.end();
    await waitFor("rows flushed in the background", async () => ((await db.prisma.step.count({ where: { jobId } })) === 20 ? true : undefined));
    await writer.close();
  });
});
