import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../server/app.ts";
import { decide, initialState, resolveWatchdogConfig } from "../../trainer/watchdog/index.ts";
import { createTestApp, TEST_ADMIN_TOKEN, TEST_CONFIG, type TestApp } from "../helpers/app.ts";
import { silentLog, type TestDatabase } from "../helpers/database.ts";

let app: TestApp;
let db: TestDatabase;
beforeAll(async () => {
  ({ app, db } = await createTestApp());
});

/** A healthy run's norms with a 50× spike at `spikeAt` (and NaN at `nanAt`). */
function series(length: number, spikeAt: number, nanAt: number) {
  let seed = 7;
  const noise = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  return Array.from({ length }, (_, step) => {
    const base = 1 + 0.1 * noise();
    const gradNorm = step === nanAt ? null : step === spikeAt ? 50 * base : base;
    return { step, loss: 2 / (1 + step / 100), gradNorm, layerNorms: [gradNorm === null ? null : gradNorm * 0.6, gradNorm === null ? null : gradNorm * 0.8], lr: 0.01, weightNorm: 10 };
  });
}

async function newRun(policy = "gradguard") {
  const response = await app.inject({ method: "POST", url: "/api/v1/runs", payload: { name: "torch-run", layerNames: ["conv1", "fc"], watchdog: { policy } } });
  expect(response.statusCode).toBe(201);
  return response.json() as { id: string; lastStep: number; policy: string };
}

const send = (id: string, steps: unknown[]) => app.inject({ method: "POST", url: `/api/v1/runs/${id}/steps`, payload: { steps } });

describe("external runs", () => {
  it("decide exactly as the internal watchdog does on the same series, batch after batch", async () => {
    const run = await newRun();
    expect(run).toMatchObject({ policy: "gradguard", lastStep: -1 });
    const steps = series(400, 300, 350);
    const decisions = [];
    for (let i = 0; i < steps.length; i += 100) decisions.push(...(await send(run.id, steps.slice(i, i + 100))).json().decisions);

    const config = resolveWatchdogConfig({ policy: "gradguard" });
    let state = initialState(config, ["conv1", "fc"]);
    const expected = steps.map((s) => {
      const gradNorm = s.gradNorm ?? Number.NaN;
      const result = decide(config, state, { step: s.step, loss: s.loss, gradNorm, layerNorms: s.layerNorms.map((n) => n ?? Number.NaN), lr: s.lr, updateRatio: (s.lr * state.ladder.lrScale * gradNorm) / s.weightNorm });
      state = result.state;
      return { clipTo: result.decision.clipTo, lrScale: result.decision.lrScale, skip: result.decision.skip, action: result.decision.action };
    });
    expect(decisions.map((d: { clipTo: number | null; lrScale: number; skip: boolean; action: string }) => ({ clipTo: d.clipTo, lrScale: d.lrScale, skip: d.skip, action: d.action }))).toEqual(expected);
    expect(decisions[300].action).not.toBe("none");
    expect(decisions[350]).toMatchObject({ skip: true });
    expect(decisions.slice(0, 299).filter((d: { action: string }) => d.action !== "none").length).toBeLessThanOrEqual(2);
  });

  it("stores the steps and events like a job's, and answers a retried batch from the stored decisions", async () => {
    const run = await newRun();
    const steps = series(120, 100, -1);
    const first = (await send(run.id, steps)).json().decisions;
    const retried = (await send(run.id, steps.slice(90))).json().decisions;
    expect(retried).toEqual(first.slice(90));
    expect(await db.prisma.step.count({ where: { jobId: run.id } })).toBe(120);
    const job = (await app.inject({ url: `/api/v1/jobs/${run.id}` })).json();
    expect(job).toMatchObject({ status: "running", lastStep: 119, layerNames: ["conv1", "fc"], backend: "external" });
    const stored = (await app.inject({ url: `/api/v1/jobs/${run.id}/steps?from=100&limit=1` })).json();
    expect(stored.action[0]).toBe(first[100].action);
    const events = (await app.inject({ url: `/api/v1/jobs/${run.id}/events` })).json().items;
    expect(events.some((e: { step: number }) => e.step === 100)).toBe(true);
  });

  it("answers a retry that spans several stored requests and new steps: the old from storage, the new decided", async () => {
    const run = await newRun();
    const steps = series(260, 120, -1);
    const first = [...(await send(run.id, steps.slice(0, 100))).json().decisions, ...(await send(run.id, steps.slice(100, 150))).json().decisions];
    const mixed = (await send(run.id, steps.slice(80, 260))).json().decisions;
    expect(mixed.slice(0, 70)).toEqual(first.slice(80, 150));
    expect(mixed.map((d: { step: number }) => d.step)).toEqual(steps.slice(80, 260).map((s) => s.step));
    expect((await send(run.id, steps.slice(140, 200))).json().decisions).toEqual(mixed.slice(60, 120));
    expect(await db.prisma.step.count({ where: { jobId: run.id } })).toBe(260);
    expect(await db.prisma.runDecisionBatch.count({ where: { jobId: run.id } })).toBe(3);
  });

  describe("with a second server instance on the same database", () => {
    let other: Awaited<ReturnType<typeof buildApp>>;
    beforeAll(async () => {
      other = await buildApp({ prisma: db.prisma, config: TEST_CONFIG, logger: silentLog });
      await other.ready();
    });
    afterAll(() => other.close());
    const sendOther = (id: string, steps: unknown[]) =>
      other.inject({ method: "POST", url: `/api/v1/runs/${id}/steps`, payload: { steps }, headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });

    it("decides as one server would when batches alternate between the two", async () => {
      const alternating = await newRun();
      const single = await newRun();
      const steps = series(600, 250, 420);
      const decisions = [];
      const reference = [];
      for (let i = 0; i < steps.length; i += 50) {
        const batch = steps.slice(i, i + 50);
        const response = await (i % 100 === 0 ? send : sendOther)(alternating.id, batch);
        expect(response.statusCode, response.body).toBe(200);
        decisions.push(...response.json().decisions);
        reference.push(...(await send(single.id, batch)).json().decisions);
      }
      expect(decisions).toEqual(reference);
      expect(await db.prisma.step.count({ where: { jobId: alternating.id } })).toBe(600);
      // Each server remembers the state it stored last, which the other then overtakes: the
      // watchdog must still have seen every step once, in order, as the single server's did.
      const states = await db.prisma.externalRun.findMany({ where: { jobId: { in: [alternating.id, single.id] } } });
      expect(states.find((r) => r.jobId === alternating.id)?.state).toEqual(states.find((r) => r.jobId === single.id)?.state);
    });
  });

  it("refuses new steps for a run cancelled after it took steps, and for one deleted", async () => {
    const run = await newRun();
    const steps = series(30, -1, -1);
    expect((await send(run.id, steps.slice(0, 10))).statusCode).toBe(200);
    expect((await app.inject({ method: "POST", url: `/api/v1/jobs/${run.id}/cancel` })).statusCode).toBe(200);
    const refused = await send(run.id, steps.slice(10, 20));
    expect(refused.statusCode).toBe(409);
    expect(refused.json().detail).toContain("cancelled");
    expect(await db.prisma.step.count({ where: { jobId: run.id } })).toBe(10);
    const deleted = await newRun();
    expect((await send(deleted.id, steps.slice(0, 10))).statusCode).toBe(200);
    expect((await app.inject({ method: "POST", url: `/api/v1/jobs/${deleted.id}/cancel` })).statusCode).toBe(200);
    expect((await app.inject({ method: "DELETE", url: `/api/v1/jobs/${deleted.id}` })).statusCode).toBe(204);
    expect((await send(deleted.id, steps.slice(10, 20))).statusCode).toBe(404);
  });

  it("is a job of kind external, which refuses commands: no gradguard trainer would apply them", async () => {
    const run = await newRun();
    expect((await app.inject({ url: `/api/v1/jobs/${run.id}` })).json()).toMatchObject({ kind: "external", status: "running" });
    const refused = await app.inject({ method: "POST", url: `/api/v1/jobs/${run.id}/commands`, payload: { type: "pause" } });
    expect(refused.statusCode).toBe(409);
    expect(refused.headers["content-type"]).toContain("application/problem+json");
    expect(refused.json().detail).toContain("external run");
    expect(await db.prisma.command.count({ where: { jobId: run.id } })).toBe(0);
  });

  it("refuses out-of-order gaps, duplicate steps, wrong layer counts and unknown runs", async () => {
    const run = await newRun();
    await send(run.id, series(10, -1, -1).slice(5));
    const gap = await send(run.id, series(10, -1, -1).slice(2, 3));
    expect(gap.statusCode).toBe(409);
    expect(gap.json().detail).toContain("send steps in order");
    const twice = await send(run.id, [series(12, -1, -1)[11], series(12, -1, -1)[11]]);
    expect(twice.statusCode).toBe(400);
    const wrongLayers = await send(run.id, [{ step: 20, loss: 1, gradNorm: 1, layerNorms: [1] }]);
    expect(wrongLayers.statusCode).toBe(400);
    expect(wrongLayers.json().detail).toContain("2 layers");
    expect((await send(run.id, [{ step: 21, loss: "1", gradNorm: 1 }])).statusCode).toBe(400);
    expect((await send("00000000-0000-4000-8000-000000000000", series(1, -1, -1))).statusCode).toBe(404);
  });

  it("refuses a bad watchdog config naming the field", async () => {
    const response = await app.inject({ method: "POST", url: "/api/v1/runs", payload: { name: "x", watchdog: { policy: "yolo" } } });
    expect(response.statusCode).toBe(400);
    expect(response.json().errors[0].field).toBe("/watchdog/policy");
  });
});
