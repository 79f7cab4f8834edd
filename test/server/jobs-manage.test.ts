// Managing jobs through the API: priorities, the list's name filter and cursor pages, retry
// (from a checkpoint or from scratch) and delete. The retried job actually training again is
// test/e2e/retry.test.ts.
import { beforeAll, describe, expect, it } from "vitest";
import { insertSteps } from "../../trainer/step-writer.ts";
import type { StepRecord } from "../../trainer/train-loop.ts";
import { claimNextJob, retryBackoff } from "../../trainer/worker.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import type { TestDatabase } from "../helpers/database.ts";
import { expectProblem } from "../helpers/problem.ts";
import { demoSpec } from "../trainer/fixtures.ts";

let app: TestApp;
let db: TestDatabase;
beforeAll(async () => {
  ({ app, db } = await createTestApp());
});

async function submit(patch: Record<string, unknown> = {}): Promise<{ id: string; priority: number; name: string }> {
  const response = await app.inject({ method: "POST", url: "/api/v1/jobs", payload: { ...demoSpec(), ...patch } });
  expect(response.statusCode).toBe(201);
  return response.json();
}

const record = (step: number): StepRecord => ({
  step,
  loss: 1,
  gradNorm: 1,
  layerNorms: [1],
  weightNorm: 1,
  updateRatio: 0.1,
  gradNormAfter: 1,
  clipCoef: 1,
  action: "none",
  lr: 0.1,
  nonFinite: false,
  stepMs: 1,
  valLoss: null,
});

/** A job that ran steps 0..steps-1, with an event at every tenth step and the given checkpoints, and ended as `status`. */
async function finishedJob(status: "failed" | "diverged" | "cancelled" | "succeeded", steps: number, checkpointSteps: number[]) {
  const job = await submit({ name: `${status}-job` });
  const rows = Array.from({ length: steps }, (_, step) => record(step));
  const events = rows.filter((r) => r.step % 10 === 5).map((r) => ({ step: r.step, kind: "clip", severity: "warning" as const, message: `clipped at ${r.step}`, detail: {} }));
  await insertSteps(db.prisma, job.id, rows, events);
  for (const step of checkpointSteps) {
    await db.prisma.checkpoint.create({ data: { jobId: job.id, step, weights: new Uint8Array(4), optimizer: new Uint8Array(0), state: {} } });
  }
  await db.prisma.command.create({ data: { jobId: job.id, command: { type: "pause" } } });
  await db.prisma.job.update({ where: { id: job.id }, data: { status, attempts: 3, error: status === "succeeded" ? null : "it went wrong", finishedAt: new Date() } });
  return job.id;
}

describe("job priorities", () => {
  it("stores a priority (default 0) outside the spec, and refuses one out of range naming the field", async () => {
    const plain = await submit();
    expect(plain.priority).toBe(0);
    const urgent = await submit({ priority: 100 });
    expect(urgent.priority).toBe(100);
    const stored = await db.prisma.job.findUniqueOrThrow({ where: { id: urgent.id } });
    expect(stored.priority).toBe(100);
    expect(stored.spec).not.toHaveProperty("priority");
    for (const priority of [101, -101, 1.5, "high"]) {
      const problem = expectProblem(await app.inject({ method: "POST", url: "/api/v1/jobs", payload: { ...demoSpec(), priority } }), 400);
      expect(problem.errors?.map((e) => e.field)).toContain("/priority");
    }
  });

  it("lets workers claim the highest priority first, then the oldest, each job once", async () => {
    await db.prisma.job.updateMany({ where: { status: "queued" }, data: { status: "cancelled" } });
    const low = await submit({ name: "low", priority: -5 });
    const firstNormal = await submit({ name: "normal-1" });
    const high = await submit({ name: "high", priority: 7 });
    const secondNormal = await submit({ name: "normal-2" });
    // Claimed concurrently, as several workers would: SKIP LOCKED hands each job to one of them.
    const claims = await Promise.all([claimNextJob(db.prisma, "w1"), claimNextJob(db.prisma, "w2")]);
    claims.push(await claimNextJob(db.prisma, "w3"), await claimNextJob(db.prisma, "w4"), await claimNextJob(db.prisma, "w5"));
    expect(claims.at(-1)).toBeUndefined();
    expect(new Set(claims.slice(0, 2).map((c) => c?.id))).toEqual(new Set([high.id, firstNormal.id]));
    expect(claims.slice(2, 4).map((c) => c?.id)).toEqual([secondNormal.id, low.id]);
    const running = await db.prisma.job.findMany({ where: { id: { in: [low.id, firstNormal.id, high.id, secondNormal.id] } } });
    expect(running.map((j) => [j.status, j.attempts])).toEqual(running.map(() => ["running", 1]));
  });

  it("claims through the index on (status, priority DESC, createdAt, id), not by sorting the table", async () => {
    const plan = await db.prisma.$transaction(async (tx) => {
      await tx.$executeRaw`SET LOCAL enable_seqscan = off`;
      return tx.$queryRaw<{ "QUERY PLAN": string }[]>`
        EXPLAIN SELECT "id" FROM "Job" WHERE "status" = 'queued' AND ("runAfter" IS NULL OR "runAfter" <= now())
        ORDER BY "priority" DESC, "createdAt", "id" LIMIT 1 FOR UPDATE SKIP LOCKED`;
    });
    const text = JSON.stringify(plan);
    expect(text).toContain("Job_status_priority_createdAt_id_idx");
    expect(text).not.toContain("Sort");
  });
});

describe("retry back-off", () => {
  it("leaves a re-queued job alone until its runAfter, then claims it", async () => {
    await db.prisma.job.updateMany({ where: { status: "queued" }, data: { status: "cancelled" } });
    const job = await submit({ name: "backing-off" });
    await db.prisma.job.update({ where: { id: job.id }, data: { runAfter: new Date(Date.now() + 60_000) } });
    expect(await claimNextJob(db.prisma, "w1")).toBeUndefined();
    await db.prisma.job.update({ where: { id: job.id }, data: { runAfter: new Date(Date.now() - 1) } });
    expect((await claimNextJob(db.prisma, "w1"))?.id).toBe(job.id);
  });

  it("doubles with each attempt, with jitter between half and all of it, and never exceeds an hour", () => {
    for (const attempt of [1, 2, 3, 4]) {
      const delays = Array.from({ length: 200 }, () => retryBackoff(1000, attempt));
      const full = 1000 * 2 ** (attempt - 1);
      expect(Math.min(...delays)).toBeGreaterThanOrEqual(full / 2);
      expect(Math.max(...delays)).toBeLessThanOrEqual(full);
      expect(new Set(delays).size).toBeGreaterThan(100);
    }
    expect(retryBackoff(5000, 100)).toBe(3_600_000);
  });
});

describe("GET /api/v1/jobs filters and pages", () => {
  it("filters by a name substring ignoring case, with % and _ taken literally", async () => {
    const a = await submit({ name: "ResNet-50% sweep" });
    const b = await submit({ name: "resnet_small" });
    await submit({ name: "lstm-baseline" });
    await submit({ name: "5000 steps" });
    const names = async (query: string) =>
      ((await app.inject({ url: `/api/v1/jobs?${query}` })).json().items as { id: string }[]).map((j) => j.id);
    expect(await names("name=RESNET")).toEqual([b.id, a.id]);
    expect(await names(`name=${encodeURIComponent("50%")}`)).toEqual([a.id]);
    expect(await names(`name=${encodeURIComponent("net_")}`)).toEqual([b.id]);
    expect(await names(`name=resnet&status=failed`)).toEqual([]);
    expect(expectProblem(await app.inject({ url: "/api/v1/jobs?name=" }), 400).errors?.[0]?.field).toBe("/name");
  });

  it("pages newest first through every job exactly once, also among equal creation times", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await submit({ name: `paged-${i}` })).id);
    // Same createdAt for three of them: the id breaks the tie, so none is skipped or repeated.
    const sameTime = new Date();
    await db.prisma.job.updateMany({ where: { id: { in: ids.slice(1, 4) } }, data: { createdAt: sameTime } });
    await db.prisma.job.update({ where: { id: ids[4] as string }, data: { createdAt: new Date(sameTime.getTime() + 1000) } });
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const response = await app.inject({ url: `/api/v1/jobs?name=paged-&limit=2${cursor ? `&cursor=${cursor}` : ""}` });
      expect(response.statusCode).toBe(200);
      const body: { items: { id: string }[]; nextCursor: string | null } = response.json();
      seen.push(...body.items.map((j) => j.id));
      cursor = body.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(new Set(seen)).toEqual(new Set(ids));
    expect(seen).toHaveLength(5);
    expect(seen[0]).toBe(ids[4]);
    expect(seen[4]).toBe(ids[0]);
    // A page that ends exactly at the last job says so.
    const exact = (await app.inject({ url: "/api/v1/jobs?name=paged-&limit=5" })).json();
    expect(exact.items).toHaveLength(5);
    expect(exact.nextCursor).toBeNull();
  });

  it.each(["garbage", Buffer.from("[1,2]").toString("base64url"), Buffer.from('["not a date","00000000-0000-4000-8000-000000000000"]').toString("base64url"), "x".repeat(201)])(
    "answers a bad cursor (%s) with 400 naming cursor",
    async (cursor) => {
      const problem = expectProblem(await app.inject({ url: `/api/v1/jobs?cursor=${cursor}` }), 400);
      expect(problem.errors?.[0]).toMatchObject({ in: "querystring", field: "/cursor" });
    },
  );
});

describe("POST /api/v1/jobs/:id/retry", () => {
  it("from a checkpoint: keeps the steps and events before it, deletes the rest, and queues the job with a retried event", async () => {
    const id = await finishedJob("diverged", 50, [20, 40]);
    const response = await app.inject({ method: "POST", url: `/api/v1/jobs/${id}/retry`, payload: { from: "checkpoint" } });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ id, status: "queued", lastStep: 39, error: null, finishedAt: null, attempts: 3 });
    const steps = await db.prisma.step.findMany({ where: { jobId: id }, select: { step: true }, orderBy: { step: "asc" } });
    expect(steps.map((s) => s.step)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    const rollupEnd = await db.prisma.stepRollup.aggregate({ where: { jobId: id }, _max: { lastStep: true } });
    expect(rollupEnd._max.lastStep).toBe(39);
    const events = await db.prisma.event.findMany({ where: { jobId: id }, orderBy: { id: "asc" } });
    expect(events.map((e) => e.kind)).toEqual(["clip", "clip", "clip", "clip", "retried"]);
    expect(events.at(-1)).toMatchObject({
      step: 39,
      severity: "info",
      message: "retried from the checkpoint of step 40",
      detail: { by: "environment", from: "checkpoint", resumeAt: 40, previousStatus: "diverged", previousError: "it went wrong", previousAttempts: 3 },
    });
    expect((await db.prisma.checkpoint.findMany({ where: { jobId: id } })).map((c) => c.step)).toEqual([20, 40]);
    expect(await db.prisma.command.findFirst({ where: { jobId: id } })).toMatchObject({ status: "rejected", error: expect.stringContaining("diverged") });
    // A fresh budget of crash retries; the attempt number itself goes on (it fences trainers).
    expect(await db.prisma.job.findUniqueOrThrow({ where: { id } })).toMatchObject({ attempts: 3, attemptsBeforeRetry: 3 });
  });

  it("from scratch: deletes steps, rollups, events and checkpoints", async () => {
    const id = await finishedJob("cancelled", 30, [20]);
    const response = await app.inject({ method: "POST", url: `/api/v1/jobs/${id}/retry`, payload: { from: "scratch" } });
    expect(response.json()).toMatchObject({ status: "queued", lastStep: null });
    expect(await db.prisma.step.count({ where: { jobId: id } })).toBe(0);
    expect(await db.prisma.stepRollup.count({ where: { jobId: id } })).toBe(0);
    expect(await db.prisma.checkpoint.count({ where: { jobId: id } })).toBe(0);
    const events = await db.prisma.event.findMany({ where: { jobId: id } });
    expect(events.map((e) => [e.kind, e.step, (e.detail as { from: string }).from])).toEqual([["retried", -1, "scratch"]]);
  });

  it("refuses a job that is queued, running or succeeded, a checkpoint that is not there, and bad input", async () => {
    const queued = await submit();
    expect(expectProblem(await app.inject({ method: "POST", url: `/api/v1/jobs/${queued.id}/retry`, payload: { from: "scratch" } }), 409).detail).toContain("queued already");
    await db.prisma.job.update({ where: { id: queued.id }, data: { status: "running" } });
    expect(expectProblem(await app.inject({ method: "POST", url: `/api/v1/jobs/${queued.id}/retry`, payload: { from: "scratch" } }), 409).detail).toContain("cancel it first");
    const succeeded = await finishedJob("succeeded", 5, []);
    expect(expectProblem(await app.inject({ method: "POST", url: `/api/v1/jobs/${succeeded}/retry`, payload: { from: "scratch" } }), 409).detail).toContain("succeeded");
    const failed = await finishedJob("failed", 5, []);
    expect(expectProblem(await app.inject({ method: "POST", url: `/api/v1/jobs/${failed}/retry`, payload: { from: "checkpoint" } }), 409).detail).toContain("no checkpoint");
    // Nothing changed by the refusals.
    expect(await db.prisma.step.count({ where: { jobId: failed } })).toBe(5);
    expect((await db.prisma.job.findUniqueOrThrow({ where: { id: failed } })).status).toBe("failed");

    expect(expectProblem(await app.inject({ method: "POST", url: `/api/v1/jobs/${failed}/retry`, payload: { from: "yesterday" } }), 400).errors?.[0]?.field).toBe("/from");
    expect(expectProblem(await app.inject({ method: "POST", url: `/api/v1/jobs/${failed}/retry`, payload: {} }), 400).errors?.[0]?.field).toBe("/from");
    expectProblem(await app.inject({ method: "POST", url: "/api/v1/jobs/00000000-0000-4000-8000-000000000000/retry", payload: { from: "scratch" } }), 404);
  });

  it("refuses an external run: it is trained elsewhere", async () => {
    const run = (await app.inject({ method: "POST", url: "/api/v1/runs", payload: { name: "torch" } })).json();
    await app.inject({ method: "POST", url: `/api/v1/jobs/${run.id}/cancel` });
    expect(expectProblem(await app.inject({ method: "POST", url: `/api/v1/jobs/${run.id}/retry`, payload: { from: "scratch" } }), 409).detail).toContain("external run");
  });
});

describe("DELETE /api/v1/jobs/:id", () => {
  it("deletes a finished job with all its data, and answers 404 afterwards", async () => {
    const id = await finishedJob("failed", 40, [20]);
    const response = await app.inject({ method: "DELETE", url: `/api/v1/jobs/${id}` });
    expect(response.statusCode).toBe(204);
    expect(response.body).toBe("");
    for (const table of ["Job", "Step", "StepRollup", "Event", "Checkpoint", "Command"]) {
      const [row] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${table}" WHERE "${table === "Job" ? "id" : "jobId"}" = $1`, [id]);
      expect({ table, n: row?.n }).toEqual({ table, n: 0 });
    }
    expectProblem(await app.inject({ method: "DELETE", url: `/api/v1/jobs/${id}` }), 404);
    expectProblem(await app.inject({ url: `/api/v1/jobs/${id}` }), 404);
  });

  it("deletes a queued job, refuses a running one with 409 and keeps it", async () => {
    const queued = await submit();
    expect((await app.inject({ method: "DELETE", url: `/api/v1/jobs/${queued.id}` })).statusCode).toBe(204);
    const running = await submit();
    await db.prisma.job.update({ where: { id: running.id }, data: { status: "running" } });
    expect(expectProblem(await app.inject({ method: "DELETE", url: `/api/v1/jobs/${running.id}` }), 409).detail).toContain("cancel it first");
    expect(await db.prisma.job.count({ where: { id: running.id } })).toBe(1);
    expect(expectProblem(await app.inject({ method: "DELETE", url: "/api/v1/jobs/nope" }), 400).errors?.[0]?.field).toBe("/id");
  });

  it("refuses while the job's trainer process is still stopping (it holds the trainer lock)", async () => {
    const id = await finishedJob("cancelled", 5, []);
    const { TRAINER_LOCK_CLASS } = await import("../../trainer/worker.ts");
    const pg = (await import("pg")).default;
    const trainer = new pg.Client({ connectionString: db.url });
    await trainer.connect();
    try {
      await trainer.query("SELECT pg_advisory_lock($1, hashtext($2))", [TRAINER_LOCK_CLASS, id]);
      expect(expectProblem(await app.inject({ method: "DELETE", url: `/api/v1/jobs/${id}` }), 409).detail).toContain("still stopping");
      expect(expectProblem(await app.inject({ method: "POST", url: `/api/v1/jobs/${id}/retry`, payload: { from: "scratch" } }), 409).detail).toContain("still stopping");
      expect(await db.prisma.step.count({ where: { jobId: id } })).toBe(5);
    } finally {
      await trainer.end();
    }
    expect((await app.inject({ method: "DELETE", url: `/api/v1/jobs/${id}` })).statusCode).toBe(204);
  });
});
