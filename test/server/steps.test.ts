// GET /jobs/:id/steps with from/to/maxPoints/fields: downsampling in SQL that never hides a
// spike, bucket edges, zooming, field subsets, bad parameters, and non-finite values. Steps go
// in through the trainer's own insertSteps, so the StepRollup triggers are exercised as well.
import { beforeAll, describe, expect, it } from "vitest";
import { bucketSql, parseFields, planBuckets } from "../../server/steps-query.ts";
import { insertSteps } from "../../trainer/step-writer.ts";
import type { StepRecord } from "../../trainer/train-loop.ts";
import { createTestApp } from "../helpers/app.ts";
import { expectProblem } from "../helpers/problem.ts";
import { stepRecord } from "../helpers/steps.ts";
import type { TestDatabase } from "../helpers/database.ts";

type App = Awaited<ReturnType<typeof createTestApp>>["app"];
let app: App;
let db: TestDatabase;

interface Steps {
  jobId: string;
  layerNames: string[];
  downsampled?: { bucketSize: number };
  step: number[];
  stepMin?: number[];
  nonFinite: boolean[];
  nextFrom: number | null;
  [column: string]: unknown;
}

beforeAll(async () => {
  ({ app, db } = await createTestApp());
});

function record(step: number, patch: Partial<StepRecord> = {}): StepRecord {
  return stepRecord(step, { valLoss: step % 100 === 99 ? 1.5 : null, ...patch });
}

/** A job with steps `from`…`to`, written in batches of 256 as the trainer writes them. */
async function jobWithSteps(to: number, patch: (step: number) => Partial<StepRecord> = () => ({}), from = 0): Promise<string> {
  const job = await db.prisma.job.create({ data: { name: "steps", spec: {}, layerNames: ["a", "b", "c"] } });
  for (let start = from; start <= to; start += 256) {
    const rows = [];
    for (let step = start; step <= Math.min(to, start + 255); step++) rows.push(record(step, patch(step)));
    await insertSteps(db.prisma, job.id, rows);
  }
  return job.id;
}

async function getSteps(jobId: string, query: string): Promise<Steps> {
  const response = await app.inject({ url: `/api/v1/jobs/${jobId}/steps?${query}` });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as Steps;
}

function expectFieldProblem(response: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, field: string) {
  const body = expectProblem(response, 400);
  expect(body.errors?.map((e) => e.field)).toContain(field);
  expect(body.detail).toContain(field);
  return body;
}

/** Checks the bucket layout: aligned, in order, no gap, no overlap, the range covered. */
function expectBuckets(body: Steps, first: number, last: number, maxPoints: number) {
  const size = body.downsampled?.bucketSize as number;
  const stepMin = body.stepMin as number[];
  expect(body.step.length).toBeLessThanOrEqual(maxPoints);
  expect(body.step.length).toBeGreaterThanOrEqual(Math.floor((maxPoints - 1) / 2));
  expect(stepMin[0]).toBe(first);
  expect(body.step.at(-1)).toBe(last);
  for (let k = 0; k < body.step.length; k++) {
    const lo = stepMin[k] as number;
    const hi = body.step[k] as number;
    expect(lo).toBeLessThanOrEqual(hi);
    expect(Math.floor(lo / size)).toBe(Math.floor(hi / size));
    if (k > 0) expect(lo).toBe((body.step[k - 1] as number) + 1);
  }
}

describe("downsampling", () => {
  const LAST = 4999;
  let jobId: string;
  beforeAll(async () => {
    jobId = await jobWithSteps(LAST);
  });

  it("plans at most maxPoints aligned buckets, on blocks when they are large enough", () => {
    expect(planBuckets(5000, 1000)).toEqual({ bucketSize: 6, blockSize: 1 });
    expect(planBuckets(5000, 100)).toEqual({ bucketSize: 64, blockSize: 64 });
    expect(planBuckets(5000, 300)).toEqual({ bucketSize: 32, blockSize: 16 });
    expect(planBuckets(20_000, 2000)).toEqual({ bucketSize: 16, blockSize: 16 });
    expect(planBuckets(5000, 10)).toEqual({ bucketSize: 768, blockSize: 256 });
    expect(planBuckets(1_000_000, 2000)).toEqual({ bucketSize: 512, blockSize: 256 });
    expect(planBuckets(1_000_000, 2000, [])).toEqual({ bucketSize: 501, blockSize: 1 });
  });

  it.each([
    [10, 0, LAST],
    [37, 0, LAST],
    [100, 0, LAST],
    [1000, 0, LAST],
    [10, 7, 4990],
    [37, 333, 4444],
    [100, 17, 271],
    [64, 1000, 4095],
  ])("covers the range without gap or overlap: maxPoints=%i from=%i to=%i", async (maxPoints, from, to) => {
    const body = await getSteps(jobId, `maxPoints=${maxPoints}&from=${from}&to=${to}`);
    expect(body.nextFrom).toBeNull();
    expectBuckets(body, from, to, maxPoints);
  });

  it("keeps a one-step spike, up or down, visible at every maxPoints and any position", async () => {
    const random = Array.from({ length: 4 }, (_, i) => (i * 1237 + 911) % (LAST + 1));
    for (const at of [0, 1, 15, 16, 255, 256, 2047, 2048, 4095, LAST, ...random]) {
      await db.prisma.$executeRawUnsafe(
        `UPDATE "Step" SET "gradNorm" = 1000, loss = -50, "layerNorms"[2] = 777 WHERE "jobId" = $1::uuid AND step = $2`,
        jobId,
        at,
      );
      for (const maxPoints of [10, 37, 100, 1000]) {
        for (const [from, to] of [[0, LAST], [Math.max(0, at - 37), Math.min(LAST, at + 1500)], [Math.max(0, at - 300), Math.min(LAST, at + 9)]]) {
          if ((to as number) - (from as number) + 1 <= maxPoints) continue;
          const body = await getSteps(jobId, `maxPoints=${maxPoints}&from=${from}&to=${to}`);
          const k = body.step.findIndex((last, i) => (body.stepMin?.[i] as number) <= at && at <= last);
          const where = `spike at ${at}, maxPoints=${maxPoints}, ${from}…${to}`;
          expect(k, where).toBeGreaterThanOrEqual(0);
          expect((body.gradNormMax as number[])[k], where).toBe(1000);
          expect((body.lossMin as number[])[k], where).toBe(-50);
          expect((body.layerNorms as number[][])[k]?.[1], where).toBe(777);
          expect(Math.max(...(body.gradNormMax as number[]))).toBe(1000);
          // Everywhere else the series is as stored.
          expect((body.gradNormMax as number[]).filter((v) => v === 1000)).toHaveLength(1);
        }
      }
      await db.prisma.$executeRawUnsafe(
        `UPDATE "Step" SET "gradNorm" = $3, loss = $4, "layerNorms"[2] = 0.3 WHERE "jobId" = $1::uuid AND step = $2`,
        jobId,
        at,
        record(at).gradNorm,
        record(at).loss,
      );
    }
  });

  it("gives each bucket its last step's values and its min and max", async () => {
    const body = await getSteps(jobId, "maxPoints=100&from=100&to=2099&fields=loss,gradNorm,valLoss");
    expect(body.downsampled).toEqual({ bucketSize: 32 });
    for (let k = 0; k < body.step.length; k++) {
      const steps = Array.from({ length: (body.step[k] as number) - (body.stepMin?.[k] as number) + 1 }, (_, i) => record((body.stepMin?.[k] as number) + i));
      const losses = steps.map((r) => r.loss);
      expect((body.loss as number[])[k]).toBe(record(body.step[k] as number).loss);
      expect((body.lossMin as number[])[k]).toBe(Math.min(...losses));
      expect((body.lossMax as number[])[k]).toBe(Math.max(...losses));
      expect((body.gradNormMax as number[])[k]).toBe(Math.max(...steps.map((r) => r.gradNorm)));
      const measured = steps.map((r) => r.valLoss).filter((v) => v !== null);
      expect((body.valLossMax as (number | null)[])[k]).toBe(measured.length > 0 ? 1.5 : null);
    }
  });

  it("summarises the same from StepRollup as from the rows themselves", async () => {
    const fields = parseFields(undefined);
    for (const [first, last, bucketSize, blockSize] of [[5, 4990, 32, 16], [0, LAST, 512, 256], [300, 3000, 256, 64], [17, 2100, 768, 256], [40, 4000, 64, 64]] as const) {
      const query = { first, last, bucketSize, layers: 3 };
      const fromBlocks = bucketSql(jobId, fields, { ...query, blockSize });
      const fromRows = bucketSql(jobId, fields, { ...query, blockSize: 1 });
      const blocks = await db.prisma.$queryRawUnsafe<unknown[]>(fromBlocks.sql, ...fromBlocks.params);
      expect(blocks.length).toBeGreaterThan(0);
      expect(blocks).toEqual(await db.prisma.$queryRawUnsafe<unknown[]>(fromRows.sql, ...fromRows.params));
    }
  });

  it("returns full detail when the (zoomed) range fits in maxPoints", async () => {
    const plain = await getSteps(jobId, "from=1000&to=1049");
    expect(plain.step).toEqual(Array.from({ length: 50 }, (_, i) => 1000 + i));
    expect(await getSteps(jobId, "from=1000&to=1049&maxPoints=100")).toEqual(plain);
    const exactly = await getSteps(jobId, "from=1000&to=1099&maxPoints=100");
    expect(exactly.downsampled).toBeUndefined();
    expect(exactly.step).toHaveLength(100);
    expect(exactly.nextFrom).toBeNull();
    const oneMore = await getSteps(jobId, "from=1000&to=1100&maxPoints=100");
    expect(oneMore.downsampled).toBeDefined();
    expectBuckets(oneMore, 1000, 1100, 100);
  });

  it("pages within from…to without maxPoints", async () => {
    const first = await getSteps(jobId, "from=10&to=19&limit=6");
    expect(first).toMatchObject({ step: [10, 11, 12, 13, 14, 15], nextFrom: 16 });
    expect(await getSteps(jobId, "from=16&to=19&limit=6")).toMatchObject({ step: [16, 17, 18, 19], nextFrom: null });
  });

  it("returns only the fields asked for, and always step and nonFinite", async () => {
    const page = await getSteps(jobId, "to=9&fields=loss,gradNorm");
    expect(Object.keys(page).sort()).toEqual(["gradNorm", "jobId", "layerNames", "loss", "nextFrom", "nonFinite", "step"]);
    const buckets = await getSteps(jobId, "maxPoints=10&fields=loss");
    expect(Object.keys(buckets).sort()).toEqual(["downsampled", "jobId", "layerNames", "loss", "lossMax", "lossMin", "nextFrom", "nonFinite", "step", "stepMin"]);
    const layers = await getSteps(jobId, "maxPoints=10&fields=layerNorms,action");
    expect(Object.keys(layers).sort()).toEqual(["action", "downsampled", "jobId", "layerNames", "layerNorms", "nextFrom", "nonFinite", "step", "stepMin"]);
    expect((layers.layerNorms as number[][])[0]).toEqual([record(6).layerNorms[0], 0.3, 0.2]);
  });

  it("answers 400 problem+json naming the parameter for bad ones", async () => {
    expectFieldProblem(await app.inject({ url: `/api/v1/jobs/${jobId}/steps?maxPoints=0` }), "/maxPoints");
    expectFieldProblem(await app.inject({ url: `/api/v1/jobs/${jobId}/steps?maxPoints=100001` }), "/maxPoints");
    expectFieldProblem(await app.inject({ url: `/api/v1/jobs/${jobId}/steps?maxPoints=many` }), "/maxPoints");
    expectFieldProblem(await app.inject({ url: `/api/v1/jobs/${jobId}/steps?from=10&to=5` }), "/to");
    expectFieldProblem(await app.inject({ url: `/api/v1/jobs/${jobId}/steps?to=-1` }), "/to");
    expectFieldProblem(await app.inject({ url: `/api/v1/jobs/${jobId}/steps?to=3000000000` }), "/to");
    const unknown = expectFieldProblem(await app.inject({ url: `/api/v1/jobs/${jobId}/steps?fields=loss,bogus` }), "/fields");
    expect(unknown.errors?.[0]?.message).toContain('"bogus" is not a field');
    expectFieldProblem(await app.inject({ url: `/api/v1/jobs/${jobId}/steps?fields=` }), "/fields");
    expectFieldProblem(await app.inject({ url: `/api/v1/jobs/${jobId}/steps?fields=loss,,lr` }), "/fields");
  });
});

describe("non-finite values and actions in a bucket", () => {
  // 2000 steps: buckets of 256 over blocks of 256 at maxPoints=10, of 6 over rows at 400.
  const bad = new Map<number, Partial<StepRecord>>([
    [10, { loss: Number.NaN, gradNorm: Number.POSITIVE_INFINITY, nonFinite: true, action: "skip" }],
    [20, { gradNorm: Number.NEGATIVE_INFINITY, layerNorms: [Number.NaN, 0.3, Number.POSITIVE_INFINITY], nonFinite: true }],
    [30, { action: "clip" }],
    [700, { action: "rollback" }],
    [701, { action: "stop" }],
    [702, { action: "lowerLr" }],
    [767, { loss: Number.NaN, nonFinite: true }],
  ]);
  let jobId: string;
  beforeAll(async () => {
    // Steps 256…511 (one whole bucket) have no finite loss at all.
    jobId = await jobWithSteps(1999, (step) => bad.get(step) ?? (step >= 256 && step <= 511 ? { loss: Number.NaN, nonFinite: true } : {}));
  });

  it.each([[10], [400]])("leaves them out of min and max and flags the bucket (maxPoints=%i)", async (maxPoints) => {
    const body = await getSteps(jobId, `maxPoints=${maxPoints}`);
    const at = (step: number) => body.step.findIndex((last, i) => (body.stepMin?.[i] as number) <= step && step <= last);
    const clean = (steps: number[]) => steps.map((s) => record(s));
    const range = (k: number) => {
      const [lo, hi] = [body.stepMin?.[k] as number, body.step[k] as number];
      return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
    };
    const lossMin = body.lossMin as (number | null)[];
    const gradNormMax = body.gradNormMax as (number | null)[];
    const gradNormMin = body.gradNormMin as (number | null)[];

    const k10 = at(10);
    const finite = range(k10).filter((s) => !bad.has(s) || s === 30);
    expect(body.nonFinite[k10]).toBe(true);
    expect(gradNormMax[k10]).toBe(Math.max(...clean(finite).map((r) => r.gradNorm)));
    expect(gradNormMin[k10]).toBe(Math.min(...clean(finite).map((r) => r.gradNorm)));
    expect(lossMin[k10]).toBe(Math.min(...clean(range(k10).filter((s) => s !== 10)).map((r) => r.loss)));
    expect((body.layerNorms as (number | null)[][])[k10]).toEqual([Math.max(...clean(finite).map((r) => r.layerNorms[0] as number)), 0.3, 0.2]);
    expect((body.action as string[])[k10]).toBe("skip");
    expect((body.action as string[])[at(700)]).toBe("stop");

    for (const k of body.step.map((_, i) => i)) {
      const all = range(k);
      const hasNaN = all.some((s) => bad.get(s)?.nonFinite || (s >= 256 && s <= 511));
      expect(body.nonFinite[k]).toBe(hasNaN);
      if (all.every((s) => s >= 256 && s <= 511)) {
        expect(lossMin[k]).toBeNull();
        expect((body.lossMax as (number | null)[])[k]).toBeNull();
        expect((body.loss as (number | null)[])[k]).toBeNull();
      }
    }
    // 767 ends its bucket at both sizes: its loss is NaN, sent as null, while the bucket's min is not.
    expect(body.step[at(767)]).toBe(767);
    expect((body.loss as (number | null)[])[at(767)]).toBeNull();
    expect(lossMin[at(767)]).not.toBeNull();
    expect(lossMin.some((v) => v === null)).toBe(true);
    expect(JSON.stringify(body)).not.toMatch(/NaN|Infinity/);
  });
});

describe("rows that come and go", () => {
  it("follows deleted and re-written rows (a job resumed from a checkpoint)", async () => {
    const jobId = await jobWithSteps(599, (step) => (step === 450 ? { gradNorm: 5000 } : {}));
    expect(Math.max(...((await getSteps(jobId, "maxPoints=10")).gradNormMax as number[]))).toBe(5000);
    // What trainer/job-process.ts does on resume: drop the steps past the checkpoint.
    await db.prisma.step.deleteMany({ where: { jobId, step: { gte: 300 } } });
    const cut = await getSteps(jobId, "maxPoints=10");
    expect(cut.step.at(-1)).toBe(299);
    expect(Math.max(...(cut.gradNormMax as number[]))).toBeLessThan(2);
    await insertSteps(db.prisma, jobId, Array.from({ length: 300 }, (_, i) => record(300 + i, i === 200 ? { gradNorm: 42 } : {})));
    const again = await getSteps(jobId, "maxPoints=10");
    expect(again.step.at(-1)).toBe(599);
    expect(Math.max(...(again.gradNormMax as number[]))).toBe(42);
    expect(await db.query(`SELECT count(*)::int AS n FROM "StepRollup" WHERE "jobId" = $1 AND "size" = 16`, [jobId])).toEqual([{ n: 38 }]);
  });

  it("merges appended rows, in batches of any size, into the summaries a full refresh computes", async () => {
    const job = await db.prisma.job.create({ data: { name: "append", spec: {}, layerNames: ["a", "b", "c"] } });
    const patch = (step: number): Partial<StepRecord> => ({
      loss: step % 97 === 5 ? Number.NaN : 2 + Math.sin(step / 7),
      gradNorm: step % 131 === 7 ? Number.POSITIVE_INFINITY : 1 + ((step * 37) % 101) / 50,
      layerNorms: [step % 89 === 3 ? Number.NaN : (step * 13) % 17, 0.3 + (step % 5), step % 61 === 0 ? Number.NEGATIVE_INFINITY : 0.2],
      nonFinite: step % 97 === 5 || step % 131 === 7,
      action: (["none", "clip", "lowerLr", "skip"] as const)[step % 23 === 0 ? 1 + (step % 3) : 0],
      valLoss: step % 50 === 49 ? step / 1000 : null,
      clipCoef: step % 23 === 0 ? 0.5 : 1,
    });
    let next = 0;
    for (const size of [1, 37, 100, 5, 250, 3, 16, 64, 700]) {
      await insertSteps(db.prisma, job.id, Array.from({ length: size }, (_, i) => record(next + i, patch(next + i))));
      next += size;
    }
    // A retried batch whose rows are already there changes nothing, whatever it carries.
    await insertSteps(db.prisma, job.id, Array.from({ length: 50 }, (_, i) => record(100 + i, { gradNorm: 1e9, layerNorms: [1e9, 1e9, 1e9] })));
    const rollup = () => db.query(`SELECT * FROM "StepRollup" WHERE "jobId" = $1 ORDER BY "size", "block"`, [job.id]);
    const appended = await rollup();
    expect(appended.length).toBe(Math.ceil(next / 16) + Math.ceil(next / 64) + Math.ceil(next / 256));
    await db.query(`SELECT step_rollup_refresh(array_agg("jobId"), array_agg(block)) FROM (SELECT DISTINCT "jobId", step / 16 AS block FROM "Step" WHERE "jobId" = $1) t`, [job.id]);
    expect(appended).toEqual(await rollup());
  });

  it("counts rows, not the span, when steps have gaps; buckets without rows are left out", async () => {
    const jobId = await jobWithSteps(9);
    await insertSteps(db.prisma, jobId, Array.from({ length: 10 }, (_, i) => record(1000 + i)));
    const fits = await getSteps(jobId, "maxPoints=20");
    expect(fits.downsampled).toBeUndefined();
    expect(fits.step).toHaveLength(20);
    const buckets = await getSteps(jobId, "maxPoints=10");
    expect(buckets.downsampled).toEqual({ bucketSize: 128 });
    expect(buckets).toMatchObject({ step: [9, 1009], stepMin: [0, 1000] });
  });

  it("answers an empty range with empty columns", async () => {
    const jobId = await jobWithSteps(9);
    expect(await getSteps(jobId, "from=100&maxPoints=10")).toMatchObject({ step: [], loss: [], nextFrom: null });
    const job = await db.prisma.job.create({ data: { name: "empty", spec: {} } });
    expect(await getSteps(job.id, "maxPoints=10")).toMatchObject({ step: [], layerNames: [], nextFrom: null });
  });
});
