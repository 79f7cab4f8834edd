// The live channel end to end with real processes: a worker process trains a real job, a client
// follows it over socket.io from a server process that is killed mid-run; another server starts
// on the same port and database, the client resubscribes from its last step + 1, and it ends
// with exactly the rows REST returns, none missing, none twice.
import { beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { connectLive, LiveCollector } from "../helpers/live-client.ts";
import { api, type ServerProcess, startServer } from "../helpers/server-process.ts";
import { waitFor } from "../helpers/wait.ts";
import { demoSpec } from "../trainer/fixtures.ts";

const STEPS = 9_000;

let db: TestDatabase;
let first: ServerProcess;

beforeAll(async () => {
  db = await createTestDatabase();
  // Training happens in a worker of its own, so that killing a server does not stop it.
  [first] = await Promise.all([
    startServer({ DATABASE_URL: db.url, GRADGUARD_WORKER_CONCURRENCY: "0" }),
    startServer({ DATABASE_URL: db.url, GRADGUARD_WORKER_CONCURRENCY: "1" }, "worker"),
  ]);
});

describe("the live channel across a server restart", () => {
  it("delivers every step of a real run once, in order, to a client that resubscribes", async () => {
    const submitted = await api<{ id: string }>(first.url, "/jobs", { method: "POST", body: JSON.stringify(demoSpec({ steps: STEPS })) });
    expect(submitted.status).toBe(201);
    const jobId = submitted.body.id;
    await waitFor("the first steps", async () => ((await db.prisma.step.count({ where: { jobId } })) >= 50 ? true : undefined));

    // Mid-run: stored rows first, then live ones.
    const collector = new LiveCollector(await connectLive(first.url), jobId);
    const job = await collector.follow(0);
    expect(job).toMatchObject({ jobId, status: "running", attempts: 1 });
    const stored = await db.prisma.step.count({ where: { jobId } });
    await collector.waitForStep(stored + 200);

    process.kill(first.pid, "SIGKILL");
    await first.exited;
    const atRestart = await db.prisma.job.findUniqueOrThrow({ where: { id: jobId } });
    expect(atRestart.status).toBe("running");
    const second = await startServer({ DATABASE_URL: db.url, GRADGUARD_WORKER_CONCURRENCY: "0", PORT: new URL(first.url).port });

    await waitFor(
      "the job to finish",
      async () => ((await api<{ status: string }>(second.url, `/jobs/${jobId}`)).body.status === "succeeded" ? true : undefined),
      60_000,
    );
    await collector.waitForStep(STEPS - 1);
    await waitFor("the last status", async () => (collector.statuses.some((s) => s.status === "succeeded") ? true : undefined));
    collector.socket.close();

    expect(collector.subscriptions).toBe(2);
    expect(collector.violations).toEqual([]);
    const { body: rest } = await api<Record<string, unknown>>(second.url, `/jobs/${jobId}/steps`);
    const { nextFrom, jobId: restJobId, layerNames: _layerNames, ...columns } = rest;
    expect(nextFrom).toBeNull();
    expect(restJobId).toBe(jobId);
    expect(collector.steps).toEqual(Array.from({ length: STEPS }, (_, i) => i));
    expect(collector.merged()).toEqual(columns);
  });
});
