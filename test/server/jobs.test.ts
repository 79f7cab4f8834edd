import { beforeAll, describe, expect, it } from "vitest";
import { insertSteps } from "../../trainer/step-writer.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import type { TestDatabase } from "../helpers/database.ts";
import { expectProblem } from "../helpers/problem.ts";
import { demoSpec } from "../trainer/fixtures.ts";

let app: TestApp;
let db: TestDatabase;

beforeAll(async () => {
  ({ app, db } = await createTestApp());
});

describe("POST /api/v1/jobs", () => {
  it("queues a valid spec, stores it with its defaults and answers 201 with a location", async () => {
    const response = await app.inject({ method: "POST", url: "/api/v1/jobs", payload: demoSpec() });
    expect(response.statusCode).toBe(201);
    const job = response.json();
    expect(job).toMatchObject({ name: "demo", status: "queued", attempts: 0, lastStep: null, error: null });
    expect(job.spec.data).toEqual({ kind: "spirals", size: 2048, seed: 1, classes: 2, noise: 0.1 });
    expect(response.headers.location).toBe(`/api/v1/jobs/${job.id}`);
    const stored = await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
    expect(stored.spec).toEqual(job.spec);
  });

  it.each([
    ["an unknown layer type", { model: { layers: [{ type: "conv9d", units: 2, inputShape: [2] }] } }, "/model/layers/0/type"],
    ["negative units", { model: { layers: [{ type: "dense", units: -1, inputShape: [2] }] } }, "/model/layers/0/units"],
    ["a text learning rate", { optimizer: { type: "sgd", learningRate: "0.1" } }, "/optimizer/learningRate"],
    ["steps beyond the cap", { steps: 1_000_000_000 }, "/steps"],
    ["an unknown field", { callback: "process.exit()" }, "/callback"],
    ["a missing field", { loss: undefined }, "/loss"],
    ["a NUL character (Postgres cannot store it)", { name: "a\u0000b" }, "/name"],
    ["mismatched output units", { model: { layers: [{ type: "dense", units: 5, inputShape: [2] }] } }, "/model/layers/0/units"],
  ])("rejects %s with 400 problem+json naming the field", async (_what, patch, field) => {
    const payload = { ...demoSpec(), ...patch };
    const before = await db.prisma.job.count();
    const response = await app.inject({ method: "POST", url: "/api/v1/jobs", payload });
    const problem = expectProblem(response, 400);
    expect(problem.errors?.map((e) => e.field)).toContain(field);
    expect(problem.detail).toContain(field);
    expect(await db.prisma.job.count()).toBe(before);
  });

  it("names the configured cap when steps exceed it", async () => {
    const response = await app.inject({ method: "POST", url: "/api/v1/jobs", payload: { ...demoSpec(), steps: 20_000 } });
    expect(expectProblem(response, 400).detail).toMatch(/\/steps: must be at most 10000 .*GRADGUARD_MAX_STEPS/);
  });

  it("answers malformed JSON, a wrong content type and an oversized body with 4xx problems", async () => {
    expectProblem(await app.inject({ method: "POST", url: "/api/v1/jobs", headers: { "content-type": "application/json" }, payload: "{nope" }), 400);
    expectProblem(await app.inject({ method: "POST", url: "/api/v1/jobs", headers: { "content-type": "text/plain" }, payload: "hi" }), 415);
    const huge = JSON.stringify({ ...demoSpec(), name: "x".repeat(2 * 1024 * 1024) });
    expectProblem(await app.inject({ method: "POST", url: "/api/v1/jobs", headers: { "content-type": "application/json" }, payload: huge }), 413);
    expectProblem(await app.inject({ method: "POST", url: "/api/v1/jobs", headers: { "content-type": "application/json" }, payload: "[]" }), 400);
  });
});

describe("GET /api/v1/jobs and /api/v1/jobs/:id", () => {
  it("lists newest first, filters by status and limits", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await app.inject({ method: "POST", url: "/api/v1/jobs", payload: { ...demoSpec(), name: `list-${i}` } })).json().id);
    await db.prisma.job.update({ where: { id: ids[1] as string }, data: { status: "failed", error: "boom" } });

    const all = (await app.inject({ url: "/api/v1/jobs?limit=3" })).json();
    expect(all.items.map((j: { id: string }) => j.id)).toEqual([...ids].reverse());
    const failed = (await app.inject({ url: "/api/v1/jobs?status=failed" })).json();
    expect(failed.items.map((j: { id: string; error: string }) => [j.id, j.error])).toEqual([[ids[1], "boom"]]);
  });

  it("rejects a bad filter or limit naming the parameter", async () => {
    const problem = expectProblem(await app.inject({ url: "/api/v1/jobs?status=exploded" }), 400);
    expect(problem.errors?.[0]).toMatchObject({ in: "querystring", field: "/status" });
    expect(expectProblem(await app.inject({ url: "/api/v1/jobs?limit=0" }), 400).errors?.[0]?.field).toBe("/limit");
    expect(expectProblem(await app.inject({ url: "/api/v1/jobs?sort=name" }), 400).errors?.[0]?.field).toBe("/sort");
  });

  it("answers 404 for an unknown job and 400 for an id that is not a uuid", async () => {
    expectProblem(await app.inject({ url: "/api/v1/jobs/00000000-0000-4000-8000-000000000000" }), 404);
    expect(expectProblem(await app.inject({ url: "/api/v1/jobs/not-a-uuid" }), 400).errors?.[0]).toMatchObject({ in: "params", field: "/id" });
    expectProblem(await app.inject({ url: "/api/v1/nothing-here" }), 404);
  });
});

describe("GET /api/v1/jobs/:id/steps", () => {
  it("returns columnar rows, non-finite values as null with the flag set, and pages", async () => {
    const job = (await app.inject({ method: "POST", url: "/api/v1/jobs", payload: demoSpec() })).json();
    await db.prisma.job.update({ where: { id: job.id }, data: { layerNames: ["a", "b"] } });
    await insertSteps(
      db.prisma,
      job.id,
      Array.from({ length: 5 }, (_, step) => ({
        step,
        loss: step === 3 ? Number.NaN : step,
        gradNorm: step === 3 ? Number.POSITIVE_INFINITY : 10 + step,
        layerNorms: [step, step === 3 ? Number.NaN : 1],
        lr: 0.1,
        nonFinite: step === 3,
        stepMs: 2,
        weightNorm: 5,
        updateRatio: 0.02,
        gradNormAfter: step === 3 ? 0 : 10 + step,
        clipCoef: 1,
        action: step === 3 ? ("skip" as const) : ("none" as const),
        valLoss: step === 4 ? 0.5 : null,
      })),
    );
    const first = (await app.inject({ url: `/api/v1/jobs/${job.id}/steps?limit=4` })).json();
    expect(first).toEqual({
      jobId: job.id,
      layerNames: ["a", "b"],
      step: [0, 1, 2, 3],
      loss: [0, 1, 2, null],
      gradNorm: [10, 11, 12, null],
      layerNorms: [[0, 1], [1, 1], [2, 1], [3, null]],
      lr: [0.1, 0.1, 0.1, 0.1],
      nonFinite: [false, false, false, true],
      stepMs: [2, 2, 2, 2],
      weightNorm: [5, 5, 5, 5],
      updateRatio: [0.02, 0.02, 0.02, 0.02],
      gradNormAfter: [10, 11, 12, 0],
      clipCoef: [1, 1, 1, 1],
      action: ["none", "none", "none", "skip"],
      valLoss: [null, null, null, null],
      nextFrom: 4,
    });
    const rest = (await app.inject({ url: `/api/v1/jobs/${job.id}/steps?from=${first.nextFrom}` })).json();
    expect(rest).toMatchObject({ step: [4], valLoss: [0.5], nextFrom: null });
  });

  it("answers 404 for an unknown job and 400 for a negative from", async () => {
    expectProblem(await app.inject({ url: "/api/v1/jobs/00000000-0000-4000-8000-000000000000/steps" }), 404);
    const job = (await app.inject({ method: "POST", url: "/api/v1/jobs", payload: demoSpec() })).json();
    expect(expectProblem(await app.inject({ url: `/api/v1/jobs/${job.id}/steps?from=-1` }), 400).errors?.[0]?.field).toBe("/from");
  });
});

describe("POST /api/v1/jobs/:id/cancel", () => {
  it("cancels a queued job and refuses a finished one with 409", async () => {
    const job = (await app.inject({ method: "POST", url: "/api/v1/jobs", payload: demoSpec() })).json();
    const cancelled = await app.inject({ method: "POST", url: `/api/v1/jobs/${job.id}/cancel` });
    expect(cancelled.statusCode).toBe(200);
    expect(cancelled.json()).toMatchObject({ id: job.id, status: "cancelled", finishedAt: expect.any(String) });
    const again = expectProblem(await app.inject({ method: "POST", url: `/api/v1/jobs/${job.id}/cancel` }), 409);
    expect(again.detail).toContain("is cancelled");
    await db.prisma.job.update({ where: { id: job.id }, data: { status: "succeeded" } });
    expectProblem(await app.inject({ method: "POST", url: `/api/v1/jobs/${job.id}/cancel` }), 409);
    expectProblem(await app.inject({ method: "POST", url: "/api/v1/jobs/00000000-0000-4000-8000-000000000000/cancel" }), 404);
  });
});

describe("GET /api/v1/jobs/:id/events", () => {
  it("lists a job's events in order, filters by kind and severity, and pages by id", async () => {
    const job = (await app.inject({ method: "POST", url: "/api/v1/jobs", payload: demoSpec() })).json();
    const record = (step: number) => ({ step, loss: 1, gradNorm: 1, layerNorms: [1], weightNorm: 1, updateRatio: 0.1, gradNormAfter: 1, clipCoef: 1, action: "none" as const, lr: 0.1, nonFinite: false, stepMs: 1, valLoss: null });
    await insertSteps(db.prisma, job.id, [record(0), record(1), record(2)], [
      { step: 1, kind: "faultInjected", severity: "info", message: "injected fault badBatch at step 1", detail: { fault: "badBatch", factor: 1000 } },
      { step: 2, kind: "clip", severity: "warning", message: "clipped", detail: { observed: 31.6, threshold: 1 } },
    ]);
    const all = (await app.inject({ url: `/api/v1/jobs/${job.id}/events` })).json();
    expect(all.items.map((e: { step: number; kind: string }) => [e.step, e.kind])).toEqual([[1, "faultInjected"], [2, "clip"]]);
    expect(all.items[1]).toMatchObject({ severity: "warning", detail: { observed: 31.6, threshold: 1 } });
    expect((await app.inject({ url: `/api/v1/jobs/${job.id}/events?kind=clip` })).json().items).toHaveLength(1);
    expect((await app.inject({ url: `/api/v1/jobs/${job.id}/events?severity=critical` })).json().items).toHaveLength(0);
    expect((await app.inject({ url: `/api/v1/jobs/${job.id}/events?after=${all.items[0].id}` })).json().items.map((e: { kind: string }) => e.kind)).toEqual(["clip"]);
    expect(expectProblem(await app.inject({ url: `/api/v1/jobs/${job.id}/events?severity=loud` }), 400).errors?.[0]?.field).toBe("/severity");
    expectProblem(await app.inject({ url: "/api/v1/jobs/00000000-0000-4000-8000-000000000000/events" }), 404);
  });

  it("never stores an event twice when a flush is retried", async () => {
    const job = (await app.inject({ method: "POST", url: "/api/v1/jobs", payload: demoSpec() })).json();
    const row = { step: 0, loss: 1, gradNorm: 1, layerNorms: [1], weightNorm: 1, updateRatio: 0.1, gradNormAfter: 1, clipCoef: 1, action: "none" as const, lr: 0.1, nonFinite: false, stepMs: 1, valLoss: null };
    const event = { step: 0, kind: "skip", severity: "critical" as const, message: "skipped a non-finite step", detail: {} };
    await insertSteps(db.prisma, job.id, [row], [event]);
    await insertSteps(db.prisma, job.id, [row], [event]);
    expect(await db.prisma.event.count({ where: { jobId: job.id } })).toBe(1);
  });
});

describe("GET /api/v1/health and /api/v1/ready", () => {
  it("answer without a token; ready reports the database and the queue", async () => {
    const health = await app.inject({ url: "/api/v1/health", headers: { authorization: null } });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toEqual({ status: "ok" });
    const ready = await app.inject({ url: "/api/v1/ready", headers: { authorization: null } });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toMatchObject({ status: "ready", database: "ok", queuedJobs: expect.any(Number), runningJobs: 0 });
  });
});
