// `npm run worker`: a standalone worker trains the jobs an API-only server queues, through
// nothing but the shared database.
import { describe, expect, it } from "vitest";
import { createTestDatabase } from "../helpers/database.ts";
import { api, startServer } from "../helpers/server-process.ts";
import { waitFor } from "../helpers/wait.ts";
import { demoSpec } from "../trainer/fixtures.ts";

describe("npm run worker", () => {
  it("trains what an API-only server queued, and drains on SIGTERM", async () => {
    const db = await createTestDatabase();
    const server = await startServer({ DATABASE_URL: db.url, GRADGUARD_WORKER_CONCURRENCY: "0" });
    const worker = await startServer({ DATABASE_URL: db.url }, "worker");
    const { body: job } = await api<{ id: string }>(server.url, "/jobs", { method: "POST", body: JSON.stringify({ ...demoSpec(), steps: 100 }) });
    await waitFor("the worker to finish the job", async () => {
      const { body } = await api<{ status: string }>(server.url, `/jobs/${job.id}`);
      return body.status === "succeeded" ? true : undefined;
    });
    const row = await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
    expect(worker.lines.some((l) => l.msg === "job process started" && l.jobId === job.id)).toBe(true);
    expect(server.lines.some((l) => l.msg === "job process started")).toBe(false);
    expect(row.lastStep).toBe(99);
    process.kill(worker.pid, "SIGTERM");
    expect(await worker.exited).toBe(0);
    process.kill(server.pid, "SIGTERM");
    expect(await server.exited).toBe(0);
  });

  it("refuses to start without DATABASE_URL, saying why", async () => {
    await expect(startServer({}, "worker")).rejects.toThrow(/DATABASE_URL must be set/);
  });
});
