// GET /metrics: Prometheus text from the database, behind an API token, with per-job series
// for running jobs only.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import type { TestDatabase } from "../helpers/database.ts";
import { waitFor } from "../helpers/wait.ts";
import { runningJob, testAlertSettings, writeEvents, writeSteps } from "./alerts-fixtures.ts";

let app: TestApp;
let db: TestDatabase;
beforeAll(async () => {
  ({ app, db } = await createTestApp({ alerts: testAlertSettings() }));
});
afterAll(async () => {
  await app.raw.close();
});

/** The value of one series in Prometheus text, or undefined when it is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const scrape = async () => (await app.inject({ url: "/metrics" })).body;

describe("GET /metrics", () => {
  it("needs a token; a read token is enough", async () => {
    const anonymous = await app.inject({ url: "/metrics", headers: { authorization: null } });
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.headers["content-type"]).toMatch(/problem\+json/);
    expect((await app.inject({ url: "/metrics", headers: { authorization: "Bearer wrong" } })).statusCode).toBe(401);
    const read = (await app.inject({ method: "POST", url: "/api/v1/tokens", payload: { name: "prometheus", role: "read" } })).json().token;
    const response = await app.inject({ url: "/metrics", headers: { authorization: `Bearer ${read}` } });
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(response.body).toContain("process_resident_memory_bytes");
    // This instance's live channel: no socket.io client, and (built without a database URL) no LISTEN.
    expect(sample(response.body, "gradguard_live_clients")).toBe(0);
    expect(sample(response.body, "gradguard_live_listening")).toBe(0);
  });

  it("exposes each running job's latest norm, loss and lr, and nothing for finished jobs", async () => {
    const running = await runningJob(db.prisma, "rnn \"quoted\"");
    await writeSteps(db.prisma, running, 0, 10);
    await writeSteps(db.prisma, running, 10, 1, { loss: 0.25, gradNorm: 42.5, lr: 0.05 });
    const finished = await runningJob(db.prisma, "done");
    await writeSteps(db.prisma, finished, 0, 3);
    await db.prisma.job.update({ where: { id: finished }, data: { status: "succeeded" } });
    await db.prisma.job.create({ data: { name: "waiting", spec: {} } });

    const text = await scrape();
    const labels = `{job_id="${running}",job_name="rnn \\"quoted\\""}`;
    expect(sample(text, `gradguard_job_grad_norm${labels}`)).toBe(42.5);
    expect(sample(text, `gradguard_job_loss${labels}`)).toBe(0.25);
    expect(sample(text, `gradguard_job_learning_rate${labels}`)).toBe(0.05);
    expect(text).not.toContain(finished);
    expect(sample(text, "gradguard_steps_total")).toBe(14);
    expect(sample(text, "gradguard_queue_depth")).toBe(1);
    expect(sample(text, 'gradguard_jobs{status="queued"}')).toBe(1);
    expect(sample(text, 'gradguard_jobs{status="succeeded"}')).toBe(1);

    await db.prisma.job.update({ where: { id: running }, data: { status: "succeeded" } });
    expect(await scrape()).not.toContain(running);
  });

  it("counts interventions by kind and alerts by severity, as the evaluator records them", async () => {
    const jobId = await runningJob(db.prisma, "spiky", 3);
    await db.prisma.job.update({ where: { id: jobId }, data: { status: "succeeded" } });
    await writeEvents(db.prisma, jobId, [
      { step: 1, kind: "clip", message: "clipped 1" },
      { step: 2, kind: "clip", message: "clipped 2" },
      { step: 3, kind: "diverged", severity: "critical", message: "stopped" },
    ]);
    const text = await waitFor("the evaluated events", async () => {
      const body = await scrape();
      return sample(body, 'gradguard_interventions_total{kind="diverged"}') === 1 ? body : undefined;
    });
    expect(sample(text, 'gradguard_interventions_total{kind="clip"}')).toBe(2);
    expect(sample(text, 'gradguard_interventions_total{kind="rollback"}')).toBe(0);
    expect(sample(text, 'gradguard_alerts_total{severity="critical"}')).toBe(1);
    expect(sample(text, 'gradguard_alerts_unacknowledged{severity="critical"}')).toBe(1);
    expect(sample(text, 'gradguard_alerts_total{severity="info"}')).toBe(0);
    expect(text).toContain("# TYPE gradguard_alerts_total counter");
  });
});
