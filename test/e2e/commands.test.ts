// Commands to a running job, end to end: sent over REST, delivered through Postgres, applied by
// the trainer at a step boundary, acknowledged with that step.
import { beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { api, type ServerProcess, startServer } from "../helpers/server-process.ts";
import { waitFor } from "../helpers/wait.ts";
import { demoSpec } from "../trainer/fixtures.ts";

interface CommandBody {
  id: string;
  status: string;
  appliedStep: number | null;
  error: string | null;
}

let db: TestDatabase;
let server: ServerProcess;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startServer({ DATABASE_URL: db.url });
});

async function send(jobId: string, command: unknown) {
  return api<CommandBody & { detail?: string }>(server.url, `/jobs/${jobId}/commands`, { method: "POST", body: JSON.stringify(command) });
}

async function applied(jobId: string, commandId: string): Promise<CommandBody> {
  return waitFor(`command ${commandId} to be applied`, async () => {
    const { body } = await api<{ items: CommandBody[] }>(server.url, `/jobs/${jobId}/commands`);
    const found = body.items.find((c) => c.id === commandId);
    return found && found.status !== "pending" ? found : undefined;
  });
}

describe("commands to a running job", () => {
  it("lowers the learning rate, pauses, checkpoints, resumes and stops it, each acknowledged at its step", async () => {
    const { body: job } = await api<{ id: string }>(server.url, "/jobs", { method: "POST", body: JSON.stringify({ ...demoSpec(), steps: 200_000, watchdog: { policy: "off" } }) });
    await waitFor("the job to run", async () => ((await db.prisma.step.count({ where: { jobId: job.id } })) > 20 ? true : undefined));

    const lower = await send(job.id, { type: "setLearningRate", value: 0.01 });
    expect(lower.status).toBe(202);
    const lowered = await applied(job.id, lower.body.id);
    expect(lowered).toMatchObject({ status: "applied", error: null });
    const step = lowered.appliedStep as number;
    await waitFor("the step after the command", async () => ((await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } })).lastStep ?? 0) > step ? true : undefined);
    const around = await db.prisma.step.findMany({ where: { jobId: job.id, step: { in: [step - 1, step] } }, orderBy: { step: "asc" } });
    expect(around.map((s) => s.lr)).toEqual([0.1, 0.01]);

    const pause = await send(job.id, { type: "pause" });
    const pausedAt = (await applied(job.id, pause.body.id)).appliedStep as number;
    await waitFor("the job to show paused", async () => ((await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } })).paused ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } })).lastStep).toBe(pausedAt - 1);

    const checkpoint = await send(job.id, { type: "checkpoint" });
    expect((await applied(job.id, checkpoint.body.id)).appliedStep).toBe(pausedAt);
    await waitFor("the checkpoint row", async () => ((await db.prisma.checkpoint.findUnique({ where: { jobId_step: { jobId: job.id, step: pausedAt } } })) ? true : undefined));

    await applied(job.id, (await send(job.id, { type: "resume" })).body.id);
    await waitFor("training to go on", async () => ((await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } })).lastStep ?? 0) > pausedAt + 5 ? true : undefined);

    await applied(job.id, (await send(job.id, { type: "stop" })).body.id);
    const stopped = await waitFor("the job to end", async () => {
      const row = await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
      return row.status === "cancelled" ? row : undefined;
    });
    expect(stopped.error).toContain("stopped by a stop command");
    const kinds = (await db.prisma.event.findMany({ where: { jobId: job.id, kind: "commandApplied" } })).length;
    expect(kinds).toBe(5);

    // A finished job takes no commands; a malformed one is refused naming the field.
    expect((await send(job.id, { type: "pause" })).status).toBe(409);
  });

  it("still hears commands after its control connection is cut (a database restart, a network blip)", async () => {
    const { body: job } = await api<{ id: string }>(server.url, "/jobs", { method: "POST", body: JSON.stringify({ ...demoSpec(), steps: 200_000, watchdog: { policy: "off" } }) });
    await waitFor("the job to run", async () => ((await db.prisma.step.count({ where: { jobId: job.id } })) > 20 ? true : undefined));
    const cut = await db.query<{ cut: boolean }>(
      `SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'gradguard-job-control'`,
    );
    expect(cut).toEqual([{ cut: true }]);
    // Sent while the listener is down or reconnecting: read again once it is back.
    const stop = await send(job.id, { type: "stop" });
    expect((await applied(job.id, stop.body.id)).status).toBe("applied");
    await waitFor("the job to end", async () => ((await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } })).status === "cancelled" ? true : undefined));
    expect(server.lines.some((l) => l.msg === "job-control LISTEN connection lost; reconnecting" && l.jobId === job.id)).toBe(true);
  });

  it("refuses malformed commands and unknown jobs", async () => {
    const { body: job } = await api<{ id: string }>(server.url, "/jobs", { method: "POST", body: JSON.stringify({ ...demoSpec(), steps: 50 }) });
    const bad = await api<{ errors: { field: string }[] }>(server.url, `/jobs/${job.id}/commands`, { method: "POST", body: JSON.stringify({ type: "setLearningRate", value: -1 }) });
    expect(bad.status).toBe(400);
    expect(bad.body.errors.map((e) => e.field)).toContain("/value");
    expect((await send("00000000-0000-4000-8000-000000000000", { type: "pause" })).status).toBe(404);
  });
});
