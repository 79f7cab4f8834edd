// Scale-out through nothing but PostgreSQL: two API-only servers and three `npm run worker`
// processes on one database. Every job runs exactly once, all workers take work, a job whose
// worker dies mid-run moves to another worker and resumes from its checkpoint, and a job sent
// to either server is trained. (Live rows and alerts on both servers: test/server/live.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { api, type LogLine, type ServerProcess, startServer } from "../helpers/server-process.ts";
import { waitFor } from "../helpers/wait.ts";
import { demoSpec } from "../trainer/fixtures.ts";

// Most of a short job's time is its trainer process starting (tfjs, Prisma): about 8 s each on
// this machine under load, 20 of them shared by 3 workers.
const SHORT_JOBS_TIMEOUT_MS = 180_000;
// Short enough that a takeover comes quickly, long enough that a busy worker's heartbeats (every
// sixth of it) are not missed on this 2-core machine.
const LEASE_MS = "3000";
const SHORT_STEPS = 60;
const LONG_STEPS = 10_000;

let db: TestDatabase;
let servers: ServerProcess[];
let workers: ServerProcess[];

beforeAll(async () => {
  db = await createTestDatabase();
  const env = { DATABASE_URL: db.url, GRADGUARD_LEASE_MS: LEASE_MS };
  servers = await Promise.all([0, 1].map(() => startServer({ ...env, GRADGUARD_WORKER_CONCURRENCY: "0" })));
  workers = await Promise.all([0, 1, 2].map(() => startServer(env, "worker")));
});

afterAll(async () => {
  for (const process_ of [...workers, ...servers]) killHard(process_.pid);
  await Promise.all([...workers, ...servers].map((p) => p.exited));
});

/** SIGKILL, unless the process is already gone. */
function killHard(pid: number) {
  try {
    process.kill(pid, "SIGKILL");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

async function submit(server: ServerProcess, spec: Record<string, unknown>): Promise<string> {
  const { status, body } = await api<{ id: string }>(server.url, "/jobs", { method: "POST", body: JSON.stringify(spec) });
  expect(status).toBe(201);
  return body.id;
}

async function waitUntilFinished(jobIds: string[], timeoutMs = 60_000) {
  await waitFor(
    `${jobIds.length} jobs to finish`,
    async () => ((await db.prisma.job.count({ where: { id: { in: jobIds }, status: { in: ["queued", "running"] } } })) === 0 ? true : undefined),
    timeoutMs,
  );
}

/** Each job's steps 0..steps-1, each stored exactly once. */
async function stepCounts(jobIds: string[]) {
  return db.query<{ jobId: string; rows: number; distinct: number; first: number; last: number }>(
    `SELECT "jobId"::text AS "jobId", count(*)::int AS rows, count(DISTINCT step)::int AS distinct, min(step) AS first, max(step) AS last
     FROM "Step" WHERE "jobId" = ANY($1::uuid[]) GROUP BY "jobId"`,
    [jobIds],
  );
}

const startedLines = (worker: ServerProcess, jobId?: string) => worker.lines.filter((l) => l.msg === "job process started" && (jobId === undefined || l.jobId === jobId));

describe("scale-out on one PostgreSQL", () => {
  it("runs 20 jobs from 3 workers, each job exactly once, every worker taking some", { timeout: SHORT_JOBS_TIMEOUT_MS + 10_000 }, async () => {
    const spec = { ...demoSpec(), steps: SHORT_STEPS, checkpoint: { everySteps: 20 } };
    const jobIds: string[] = [];
    for (let i = 0; i < 20; i++) jobIds.push(await submit(servers[i % 2] as ServerProcess, { ...spec, name: `short-${i}` }));
    await waitUntilFinished(jobIds, SHORT_JOBS_TIMEOUT_MS);

    const jobs = await db.prisma.job.findMany({ where: { id: { in: jobIds } } });
    expect(jobs.map((job) => [job.status, job.attempts])).toEqual(jobIds.map(() => ["succeeded", 1]));
    const counts = await stepCounts(jobIds);
    expect(counts).toHaveLength(20);
    for (const count of counts) expect(count).toMatchObject({ rows: SHORT_STEPS, distinct: SHORT_STEPS, first: 0, last: SHORT_STEPS - 1 });
    // One trainer process per job over all workers, and each worker started some of them.
    const started = workers.flatMap((worker) => startedLines(worker).map((line) => line.jobId));
    expect(started.sort()).toEqual([...jobIds].sort());
    for (const worker of workers) expect(startedLines(worker).length).toBeGreaterThan(0);
    // Neither server trained anything.
    for (const server of servers) expect(server.lines.some((l) => l.msg === "job process started")).toBe(false);
  });

  it("moves the job of a worker that died mid-run to another worker, which resumes from the checkpoint", { timeout: 120_000 }, async () => {
    const jobId = await submit(servers[0] as ServerProcess, { ...demoSpec(), name: "long", steps: LONG_STEPS, checkpoint: { everySteps: 100 } });
    const holder = await waitFor("a worker to start the job", async () => workers.find((w) => startedLines(w, jobId).length > 0));
    const trainerPid = (startedLines(holder, jobId)[0] as LogLine).pid;
    const checkpointStep = await waitFor("a checkpoint, and steps past it", async () => {
      const checkpoint = await db.prisma.checkpoint.findFirst({ where: { jobId }, orderBy: { step: "desc" } });
      const job = await db.prisma.job.findUnique({ where: { id: jobId } });
      return checkpoint && (job?.lastStep ?? 0) > checkpoint.step + 20 ? checkpoint.step : undefined;
    });
    // Power cut on that machine: the worker and its trainer die together, nobody marks the job.
    killHard(holder.pid);
    killHard(trainerPid);
    await holder.exited;
    expect((await db.prisma.job.findUniqueOrThrow({ where: { id: jobId } })).status).toBe("running");

    const others = workers.filter((w) => w !== holder);
    const resumed = await waitFor("another worker to resume the job", async () =>
      others.flatMap((w) => w.lines).find((l) => l.msg === "training resumed from a checkpoint" && l.jobId === jobId),
    60_000);
    expect(resumed.resumeAt).toBeGreaterThanOrEqual(checkpointStep);
    expect(others.flatMap((w) => w.lines).some((l) => l.msg === "took over a job whose worker stopped sending heartbeats" && l.jobId === jobId)).toBe(true);
    await waitUntilFinished([jobId], 90_000);

    const job = await db.prisma.job.findUniqueOrThrow({ where: { id: jobId } });
    expect(job).toMatchObject({ status: "succeeded", attempts: 2 });
    expect(await stepCounts([jobId])).toEqual([{ jobId, rows: LONG_STEPS, distinct: LONG_STEPS, first: 0, last: LONG_STEPS - 1 }]);
    expect(await db.prisma.event.count({ where: { jobId, kind: "leaseExpired" } })).toBe(1);
  });

  it("trains a job sent to either server, and each server sees the other's", async () => {
    const spec = { ...demoSpec(), steps: SHORT_STEPS };
    const [first, second] = servers as [ServerProcess, ServerProcess];
    const jobIds = [await submit(first, { ...spec, name: "via-first" }), await submit(second, { ...spec, name: "via-second" })];
    await waitUntilFinished(jobIds);
    for (const [server, jobId] of [
      [second, jobIds[0]],
      [first, jobIds[1]],
    ] as const) {
      const { body } = await api<{ status: string; lastStep: number }>(server.url, `/jobs/${jobId}`);
      expect(body).toMatchObject({ status: "succeeded", lastStep: SHORT_STEPS - 1 });
    }
  });
});
