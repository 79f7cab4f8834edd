// Fault: the API server is killed mid-run and started again while a live client watches. The
// trainer (a separate worker process) trains on; the client reconnects by itself, subscribes
// again from its last step + 1, and ends with every step once, in order.
import { describe, expect, it } from "vitest";
import { createTestDatabase } from "../helpers/database.ts";
import { connectLive, LiveCollector } from "../helpers/live-client.ts";
import { startServer } from "../helpers/server-process.ts";
import { waitFor } from "../helpers/wait.ts";
import { expectEveryStepOnce, faultSpec, scenario, submit, waitForJob } from "./ledger.ts";

scenario("server killed and restarted with a live client subscribed");

const STEPS = 10_000;

describe("the server restarts mid-run", () => {
  it("a subscribed client resumes from its last step + 1 and gets every step once", async () => {
    const db = await createTestDatabase();
    const api = { DATABASE_URL: db.url, GRADGUARD_WORKER_CONCURRENCY: "0" };
    const first = await startServer(api);
    const worker = await startServer({ DATABASE_URL: db.url }, "worker");
    const jobId = await submit(first.url, faultSpec("watched through a restart", STEPS));

    const socket = await connectLive(first.url);
    const collector = new LiveCollector(socket, jobId);
    await collector.follow(0);
    await collector.waitForStep(200);
    process.kill(first.pid, "SIGKILL");
    await first.exited;
    const stepAtKill = collector.lastStep;

    const second = await startServer({ ...api, PORT: new URL(first.url).port });
    await waitFor("the client to subscribe again", async () => (collector.subscriptions >= 2 ? true : undefined));
    await waitForJob(second.url, jobId, "succeeded");
    await collector.waitForStep(STEPS - 1);
    socket.close();

    expect(stepAtKill).toBeLessThan(STEPS - 1); // the restart happened mid-run
    expect(collector.violations).toEqual([]);
    expect(collector.steps).toEqual(Array.from({ length: STEPS }, (_, step) => step));
    await expectEveryStepOnce(db.query, jobId, STEPS);
    for (const process_ of [second, worker]) {
      process.kill(process_.pid, "SIGTERM");
      expect(await process_.exited).toBe(0);
    }
  }, 90_000);
});
