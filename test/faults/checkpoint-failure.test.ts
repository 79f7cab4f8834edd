// Fault: checkpoints cannot be written for a while (a trigger makes every Checkpoint write fail,
// as a full disk or a lost table would). Training goes on, each failure is a clear event, the
// next checkpoint after the fault is saved, and no step is lost.
import { describe, expect, it } from "vitest";
import { createTestDatabase } from "../helpers/database.ts";
import { startServer } from "../helpers/server-process.ts";
import { waitFor } from "../helpers/wait.ts";
import { expectEveryStepOnce, faultSpec, scenario, submit, waitForJob } from "./ledger.ts";

scenario("checkpoint writes failing mid-run");

const STEPS = 10_000;

describe("checkpoint writes fail", () => {
  it("training continues, each failure is an event, and every step is stored once", async () => {
    const db = await createTestDatabase();
    await db.query(`
      CREATE FUNCTION refuse_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'could not extend file: No space left on device (simulated)'; END $$`);
    await db.query(`CREATE TRIGGER refuse_checkpoint BEFORE INSERT OR UPDATE ON "Checkpoint" FOR EACH ROW EXECUTE FUNCTION refuse_checkpoint()`);
    const server = await startServer({ DATABASE_URL: db.url });
    const jobId = await submit(server.url, faultSpec("checkpoints failing", STEPS));

    const failures = await waitFor("two failed checkpoints", async () => {
      const events = await db.prisma.event.findMany({ where: { jobId, kind: "checkpointFailed" }, orderBy: { step: "asc" } });
      return events.length >= 2 ? events : undefined;
    });
    expect(failures[0]).toMatchObject({ severity: "warning", message: expect.stringMatching(/^checkpoint of step \d+ could not be saved: [^\n]*No space left on device[^\n]*$/) });
    expect(server.lines.some((l) => l.msg === "saving a checkpoint failed; training goes on" && l.jobId === jobId)).toBe(true);
    expect(await db.prisma.checkpoint.count({ where: { jobId } })).toBe(0);

    await db.query(`DROP TRIGGER refuse_checkpoint ON "Checkpoint"`);
    const lastFailed = (await db.prisma.event.findFirstOrThrow({ where: { jobId, kind: "checkpointFailed" }, orderBy: { step: "desc" } })).step;
    await waitForJob(server.url, jobId, "succeeded");
    // Checkpoints after the fault are saved again.
    const saved = await db.prisma.checkpoint.findMany({ where: { jobId } });
    expect(saved.length).toBeGreaterThan(0);
    expect(saved.every((c) => c.step > lastFailed)).toBe(true);
    await expectEveryStepOnce(db.query, jobId, STEPS);
    process.kill(server.pid, "SIGTERM");
    expect(await server.exited).toBe(0);
  }, 90_000);
});
