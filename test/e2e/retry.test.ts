// POST /jobs/:id/retry against a real server and its worker: a cancelled job retried from its
// checkpoint trains on from there, one retried from scratch trains from step 0, and either way
// it ends with every step stored exactly once.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { api, type ServerProcess, startServer } from "../helpers/server-process.ts";
import { expectEveryStepOnce } from "../helpers/steps.ts";
import { waitFor } from "../helpers/wait.ts";
import { demoSpec } from "../trainer/fixtures.ts";

const STEPS = 10_000;
// Checkpoints far apart: a cancel that lands right after one leaves no step past it to discard
// (lastStep = checkpoint - 1), which would leave the rewind untested.
const spec = { ...demoSpec(), steps: STEPS, checkpoint: { everySteps: 1000 } };

let db: TestDatabase;
let server: ServerProcess;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startServer({ DATABASE_URL: db.url });
});
afterAll(async () => {
  process.kill(server.pid, "SIGTERM");
  await server.exited;
});

/** Submits a job, lets it train past `stepsBeforeCancel`, cancels it and waits for its trainer to exit. */
async function cancelledJob(name: string, stepsBeforeCancel: (checkpoint: number | undefined) => boolean): Promise<string> {
  const { body: job } = await api<{ id: string }>(server.url, "/jobs", { method: "POST", body: JSON.stringify({ ...spec, name }) });
  await waitFor(`${name} to get far enough`, async () => {
    const checkpoint = await db.prisma.checkpoint.findFirst({ where: { jobId: job.id }, orderBy: { step: "desc" } });
    const lastStep = (await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } })).lastStep ?? -1;
    return lastStep > (checkpoint?.step ?? 0) + 20 && stepsBeforeCancel(checkpoint?.step) ? true : undefined;
  });
  expect((await api(server.url, `/jobs/${job.id}/cancel`, { method: "POST" })).status).toBe(200);
  await server.waitForLog((l) => l.msg === "job process exited" && l.jobId === job.id);
  return job.id;
}

async function succeeded(jobId: string) {
  return waitFor(`job ${jobId} to succeed`, async () => {
    const job = await db.prisma.job.findUniqueOrThrow({ where: { id: jobId } });
    if (job.status === "failed") throw new Error(`job failed: ${job.error}`);
    return job.status === "succeeded" ? job : undefined;
  }, 90_000);
}


describe("retrying a job", () => {
  it("from its checkpoint: trains on from it to success, every step stored once", async () => {
    const jobId = await cancelledJob("from-checkpoint", (checkpoint) => checkpoint !== undefined);
    const checkpoint = (await db.prisma.checkpoint.findFirstOrThrow({ where: { jobId }, orderBy: { step: "desc" } })).step;
    // Steps from the checkpoint on are stored: the retry has something to discard and train again.
    expect((await db.prisma.job.findUniqueOrThrow({ where: { id: jobId } })).lastStep).toBeGreaterThanOrEqual(checkpoint);

    const retried = await api<{ status: string; lastStep: number }>(server.url, `/jobs/${jobId}/retry`, { method: "POST", body: JSON.stringify({ from: "checkpoint" }) });
    expect(retried).toMatchObject({ status: 200, body: { status: "queued", lastStep: checkpoint - 1 } });
    const resumed = await server.waitForLog((l) => l.msg === "training resumed from a checkpoint" && l.jobId === jobId);
    expect(resumed).toMatchObject({ resumeAt: checkpoint, attempt: 2 });

    const job = await succeeded(jobId);
    expect(job.attempts).toBe(2);
    await expectEveryStepOnce(db.query, jobId, STEPS);
    const retriedEvents = await db.prisma.event.findMany({ where: { jobId, kind: "retried" } });
    expect(retriedEvents.map((e) => e.detail)).toEqual([expect.objectContaining({ from: "checkpoint", resumeAt: checkpoint, by: "environment", previousStatus: "cancelled" })]);

    const again = await api<{ detail: string }>(server.url, `/jobs/${jobId}/retry`, { method: "POST", body: JSON.stringify({ from: "checkpoint" }) });
    expect(again.status).toBe(409);
    expect(again.body.detail).toContain("succeeded");
  }, 150_000);

  it("from scratch: trains from step 0 to success, every step stored once", async () => {
    const jobId = await cancelledJob("from-scratch", () => true);
    const retried = await api<{ status: string; lastStep: number | null }>(server.url, `/jobs/${jobId}/retry`, { method: "POST", body: JSON.stringify({ from: "scratch" }) });
    expect(retried).toMatchObject({ status: 200, body: { status: "queued", lastStep: null } });
    const started = await server.waitForLog((l) => l.msg === "training started" && l.jobId === jobId && l.attempt === 2);
    expect(started.resumeAt).toBe(0);
    await succeeded(jobId);
    await expectEveryStepOnce(db.query, jobId, STEPS);
    expect(server.lines.some((l) => l.msg === "training resumed from a checkpoint" && l.jobId === jobId)).toBe(false);
  }, 150_000);
});
