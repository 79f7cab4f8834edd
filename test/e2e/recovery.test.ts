// Jobs survive what happens to the processes training them: a killed trainer is retried from
// its checkpoint, a dead worker's job is taken over when its lease expires, and a cancelled
// job stops within a step.
import { describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { api, type ServerProcess, startServer } from "../helpers/server-process.ts";
import { expectEveryStepOnce } from "../helpers/steps.ts";
import { waitFor } from "../helpers/wait.ts";
import { demoSpec } from "../trainer/fixtures.ts";

const longSpec = { ...demoSpec(), steps: 10_000, checkpoint: { everySteps: 100 } };

/** SIGKILL, unless the process is already gone (a trainer exits by itself when its worker dies). */
function killHard(pid: number) {
  try {
    process.kill(pid, "SIGKILL");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

async function submit(server: ServerProcess, spec: unknown = longSpec): Promise<string> {
  const { status, body } = await api<{ id: string }>(server.url, "/jobs", { method: "POST", body: JSON.stringify(spec) });
  expect(status).toBe(201);
  return body.id;
}

async function waitForCheckpoint(db: TestDatabase, jobId: string): Promise<number> {
  return waitFor("a checkpoint, and steps past it", async () => {
    const checkpoint = await db.prisma.checkpoint.findFirst({ where: { jobId }, orderBy: { step: "desc" } });
    const job = await db.prisma.job.findUnique({ where: { id: jobId } });
    return checkpoint && (job?.lastStep ?? 0) > checkpoint.step + 20 ? checkpoint.step : undefined;
  });
}

async function waitForStatus(db: TestDatabase, jobId: string, status: string) {
  return waitFor(`job ${jobId} to be ${status}`, async () => {
    const job = await db.prisma.job.findUnique({ where: { id: jobId } });
    return job?.status === status ? job : undefined;
  }, 90_000);
}

describe("recovery", () => {
  it("retries a job whose trainer was killed, resuming from its last checkpoint", async () => {
    const db = await createTestDatabase();
    const server = await startServer({ DATABASE_URL: db.url, GRADGUARD_MAX_ATTEMPTS: "2" });
    const jobId = await submit(server);
    const started = await server.waitForLog((l) => l.msg === "job process started" && l.jobId === jobId);
    const checkpointStep = await waitForCheckpoint(db, jobId);
    process.kill(started.pid as number, "SIGKILL");

    const resumed = await server.waitForLog((l) => l.msg === "training resumed from a checkpoint" && l.jobId === jobId);
    expect(resumed.resumeAt).toBeGreaterThanOrEqual(checkpointStep);
    const job = await waitForStatus(db, jobId, "succeeded");
    expect(job.attempts).toBe(2);
    // Re-queued with a back-off (GRADGUARD_RETRY_BACKOFF_MS), not at once.
    expect(job.runAfter).not.toBeNull();
    await expectEveryStepOnce(db.query, jobId, 10_000);
    const crashes = await db.prisma.event.findMany({ where: { jobId, kind: "trainerCrashed" } });
    expect(crashes).toHaveLength(1);
    expect(crashes[0]?.message).toContain("killed by SIGKILL");

    // With its attempts used up, the next crash fails the job.
    const second = await submit(server, { ...longSpec, name: "fails" });
    const child = await server.waitForLog((l) => l.msg === "job process started" && l.jobId === second);
    await waitFor("steps", async () => ((await db.prisma.step.count({ where: { jobId: second } })) > 0 ? true : undefined));
    process.kill(child.pid as number, "SIGKILL");
    await server.waitForLog((l) => l.msg === "job process started" && l.jobId === second && l.attempt === 2);
    await waitFor("steps again", async () => ((await db.prisma.job.findUnique({ where: { id: second } }))?.attempts === 2 ? true : undefined));
    const retry = server.lines.filter((l) => l.msg === "job process started" && l.jobId === second).at(-1);
    process.kill(retry?.pid as number, "SIGKILL");
    const failed = await waitForStatus(db, second, "failed");
    expect(failed.error).toContain("killed by SIGKILL");
    process.kill(server.pid, "SIGTERM");
    await server.exited;
  }, 180_000);

  it("takes over the job of a worker that died with its trainer once the lease expires", async () => {
    const db = await createTestDatabase();
    const first = await startServer({ DATABASE_URL: db.url, GRADGUARD_LEASE_MS: "2000" });
    const jobId = await submit(first);
    const child = await first.waitForLog((l) => l.msg === "job process started" && l.jobId === jobId);
    await waitForCheckpoint(db, jobId);
    // Power cut: the worker and its trainer die together; nobody marks the job.
    killHard(first.pid);
    killHard(child.pid as number);
    await first.exited;
    expect((await db.prisma.job.findUniqueOrThrow({ where: { id: jobId } })).status).toBe("running");

    const second = await startServer({ DATABASE_URL: db.url, GRADGUARD_LEASE_MS: "2000" });
    await second.waitForLog((l) => l.msg === "took over a job whose worker stopped sending heartbeats" && l.jobId === jobId);
    await second.waitForLog((l) => l.msg === "training resumed from a checkpoint" && l.jobId === jobId);
    await waitForStatus(db, jobId, "succeeded");
    await expectEveryStepOnce(db.query, jobId, 10_000);
    expect(await db.prisma.event.count({ where: { jobId, kind: "leaseExpired" } })).toBe(1);
    process.kill(second.pid, "SIGTERM");
    await second.exited;
  }, 180_000);

  it("cancels a running job within a step, and refuses to cancel it twice", async () => {
    const db = await createTestDatabase();
    const server = await startServer({ DATABASE_URL: db.url });
    const jobId = await submit(server, { ...longSpec, steps: 100_000 });
    await waitFor("steps", async () => ((await db.prisma.step.count({ where: { jobId } })) > 50 ? true : undefined));
    const cancelled = await api<{ status: string }>(server.url, `/jobs/${jobId}/cancel`, { method: "POST" });
    expect(cancelled).toMatchObject({ status: 200, body: { status: "cancelled" } });
    await server.waitForLog((l) => l.msg === "job process exited" && l.jobId === jobId, 10_000);
    const stepsAtExit = await db.prisma.step.count({ where: { jobId } });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await db.prisma.step.count({ where: { jobId } })).toBe(stepsAtExit);
    expect((await db.prisma.job.findUniqueOrThrow({ where: { id: jobId } })).status).toBe("cancelled");

    const again = await api<{ status: number; detail: string }>(server.url, `/jobs/${jobId}/cancel`, { method: "POST" });
    expect(again.status).toBe(409);
    expect(again.body.detail).toContain("is cancelled");
    expect((await api(server.url, "/jobs/00000000-0000-4000-8000-000000000000/cancel", { method: "POST" })).status).toBe(404);
    process.kill(server.pid, "SIGTERM");
    await server.exited;
  });
});
