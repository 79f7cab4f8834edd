// The foundation's promise, end to end over HTTP with real processes: submit a job, a trainer
// child process trains it with tfjs, its steps land in Postgres, and they read back over REST.
import { beforeAll, describe, expect, it } from "vitest";
import { BACKENDS } from "../../common/config.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { api, type ServerProcess, startServer } from "../helpers/server-process.ts";
import { waitFor } from "../helpers/wait.ts";
import { demoSpec } from "../trainer/fixtures.ts";

interface JobBody {
  id: string;
  status: string;
  error: string | null;
  backend: string | null;
  layerNames: string[];
  lastStep: number | null;
  attempts: number;
}

let db: TestDatabase;
let server: ServerProcess;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startServer({ DATABASE_URL: db.url });
});

async function waitForStatus(id: string, statuses: string[]): Promise<JobBody> {
  return waitFor(`job ${id} to reach ${statuses.join("/")}`, async () => {
    const { body } = await api<JobBody>(server.url, `/jobs/${id}`);
    return statuses.includes(body.status) ? body : undefined;
  }, 60_000);
}

describe("the thin path", () => {
  it("trains a submitted job to succeeded with exactly one finite step row per step", async () => {
    const submitted = await api<JobBody>(server.url, "/jobs", { method: "POST", body: JSON.stringify(demoSpec()) });
    expect(submitted.status).toBe(201);
    const job = await waitForStatus(submitted.body.id, ["succeeded", "failed"]);
    expect(job).toMatchObject({ status: "succeeded", error: null, lastStep: 199, attempts: 1, layerNames: ["dense_0", "dense_1", "dense_2"] });
    expect(BACKENDS).toContain(job.backend);

    const { body: steps } = await api<{ step: number[]; gradNorm: (number | null)[]; layerNorms: (number | null)[][]; loss: number[]; nextFrom: number | null }>(
      server.url,
      `/jobs/${job.id}/steps`,
    );
    expect(steps.step).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(steps.nextFrom).toBeNull();
    for (let i = 0; i < 200; i++) {
      expect(Number.isFinite(steps.gradNorm[i])).toBe(true);
      expect(steps.layerNorms[i]).toHaveLength(3);
    }
    const [counts] = await db.query<{ rows: number; distinct: number }>(
      `SELECT count(*)::int AS rows, count(DISTINCT step)::int AS distinct FROM "Step" WHERE "jobId" = $1`,
      [job.id],
    );
    expect(counts).toEqual({ rows: 200, distinct: 200 });
  });

  it("fails a job whose stored spec the trainer cannot run, keeping the error", async () => {
    // A spec written before a rule existed, or by hand: the trainer re-checks what it runs.
    const row = await db.prisma.job.create({ data: { name: "legacy", spec: { ...demoSpec(), batchSize: 0 } } });
    const job = await waitForStatus(row.id, ["succeeded", "failed"]);
    expect(job.status).toBe("failed");
    expect(job.error).toContain("/batchSize");
  });

  it("survives a trainer process killed mid-run: the server keeps serving", async () => {
    const submitted = await api<JobBody>(server.url, "/jobs", { method: "POST", body: JSON.stringify({ ...demoSpec(), steps: 10_000 }) });
    const started = await server.waitForLog((line) => line.msg === "job process started" && line.jobId === submitted.body.id);
    await waitFor("some steps written", async () => ((await db.prisma.step.count({ where: { jobId: submitted.body.id } })) > 0 ? true : undefined));
    process.kill(started.pid as number, "SIGKILL");
    await server.waitForLog((line) => line.msg === "job process exited" && line.jobId === submitted.body.id && line.signal === "SIGKILL");
    expect((await api(server.url, "/health")).status).toBe(200);
    await api(server.url, `/jobs/${submitted.body.id}/cancel`, { method: "POST" });
  });

  it("drains on SIGTERM: a running job goes back to the queue and the server exits 0", async () => {
    const submitted = await api<JobBody>(server.url, "/jobs", { method: "POST", body: JSON.stringify({ ...demoSpec(), steps: 10_000 }) });
    await waitFor("the job to run", async () => ((await db.prisma.step.count({ where: { jobId: submitted.body.id } })) > 0 ? true : undefined));
    process.kill(server.pid, "SIGTERM");
    expect(await server.exited).toBe(0);
    const job = await db.prisma.job.findUniqueOrThrow({ where: { id: submitted.body.id } });
    expect(job).toMatchObject({ status: "queued", workerId: null });
  });
});
