// `npm run bench:history [runs] [steps]`: how fast GET /jobs/:id/steps?maxPoints= answers for a
// long job. It stores a job of 1,000,000 steps with 20 layer norms each (generate_series, so the
// StepRollup triggers run as they do for the trainer's inserts, a chunk at a time), then times
// the endpoint through app.inject for 2,000 points over the whole job and over zoomed ranges,
// the cases interleaved, median of `runs`. Side by side it times the same bucketing statement
// read from Step rows only (what the endpoint would cost without StepRollup) and the trainer's
// 256-row insert with and without the triggers. Target: the whole-job query well under 200 ms.
import { loadavg } from "node:os";
import { pino } from "pino";
import { loadConfig } from "../common/config.ts";
import { createPrismaClient, type PrismaClient } from "../prisma/client.ts";
import { migrate } from "../prisma/migrate.ts";
import { buildApp } from "../server/app.ts";
import { bucketSql, parseFields, planBuckets } from "../server/steps-query.ts";
import { insertSteps } from "../trainer/step-writer.ts";
import { benchDatabase, storeSyntheticJob, syntheticStep } from "./database.ts";
import { writeResults } from "./results.ts";

const RUNS = Number(process.argv[2] ?? 15);
const STEPS = Number(process.argv[3] ?? 1_000_000);
const LAYERS = 20;
const MAX_POINTS = 2000;
const TOKEN = "bench-history-admin-token-0123456789";

const log = pino({ level: "warn" });
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

/** The trainer's write path: 256-row batches through insertSteps, triggers on and off in turn. */
async function timeInserts(prisma: PrismaClient, jobId: string, batches: number): Promise<{ on: number; off: number }> {
  const times = { on: [] as number[], off: [] as number[] };
  let step = 0;
  for (let i = 0; i < batches; i++) {
    for (const mode of ["on", "off"] as const) {
      await prisma.$executeRawUnsafe(`ALTER TABLE "Step" ${mode === "on" ? "ENABLE" : "DISABLE"} TRIGGER "Step_rollup_insert"`);
      const rows = Array.from({ length: 256 }, () => syntheticStep(step++, LAYERS));
      const started = performance.now();
      await insertSteps(prisma, jobId, rows);
      times[mode].push(performance.now() - started);
    }
  }
  await prisma.$executeRawUnsafe(`ALTER TABLE "Step" ENABLE TRIGGER "Step_rollup_insert"`);
  return { on: median(times.on), off: median(times.off) };
}

/** EXPLAIN ANALYZE, condensed to its node lines with their actual time and rows. */
async function explain(prisma: PrismaClient, sql: string, params: unknown[]): Promise<string[]> {
  const plan = await prisma.$queryRawUnsafe<{ "QUERY PLAN": string }[]>(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`, ...params);
  return plan
    .map((row) => row["QUERY PLAN"])
    .filter((line, i) => i === 0 || line.includes("->") || /^(Planning|Execution) Time/.test(line))
    .map((line) => line.replace(/\(cost=[^)]*\) /, "").replace(/\s+$/, ""));
}

const database = await benchDatabase("history");
const prisma = createPrismaClient(database.url, { maxConnections: 4 });
try {
  await migrate(database.url, { log });
  const [server] = await prisma.$queryRawUnsafe<{ version: string }[]>("SELECT version()");
  const postgres = `${database.kind} ${server?.version.split(" on ")[0]}`;
  console.log(`${postgres}; storing ${STEPS.toLocaleString("en")} steps…`);

  const layerNames = Array.from({ length: LAYERS }, (_, i) => `dense_${i}`);
  const job = await prisma.job.create({ data: { name: "bench-history", spec: {}, status: "succeeded", layerNames, lastStep: STEPS - 1 } });
  const loadStarted = performance.now();
  await storeSyntheticJob(prisma, job.id, STEPS, LAYERS, (stored) => process.stdout.write(`\r  ${stored.toLocaleString("en")} steps`));
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  await prisma.$executeRawUnsafe(`VACUUM ANALYZE "Step"`);
  await prisma.$executeRawUnsafe(`VACUUM ANALYZE "StepRollup"`);
  const [sizes] = await prisma.$queryRawUnsafe<{ step: string; rollup: string }[]>(
    `SELECT pg_size_pretty(pg_total_relation_size('"Step"')) AS step, pg_size_pretty(pg_total_relation_size('"StepRollup"')) AS rollup`,
  );
  console.log(`\r  ${STEPS.toLocaleString("en")} steps stored in ${loadSeconds.toFixed(1)} s (rollup triggers included); Step ${sizes?.step}, StepRollup ${sizes?.rollup}`);

  const app = await buildApp({
    prisma,
    config: loadConfig({ GRADGUARD_ADMIN_TOKEN: TOKEN, GRADGUARD_RATE_LIMIT: "1000000", GRADGUARD_MAX_STEPS: String(STEPS) }),
    logger: log,
  });
  await app.ready();
  const url = (query: string) => `/api/v1/jobs/${job.id}/steps?${query}`;
  const half = Math.floor(STEPS / 2);
  const zoom = (steps: number) => ({ from: half, to: half + steps - 1 });
  const cases = [
    { name: "whole job", from: 0, to: STEPS - 1, fields: undefined },
    { name: "whole job, fields=loss,gradNorm", from: 0, to: STEPS - 1, fields: "loss,gradNorm" },
    { name: "zoom to 10%", ...zoom(STEPS / 10), fields: undefined },
    { name: "zoom to 2%", ...zoom(STEPS / 50), fields: undefined },
    // The most rows a 2,000-point answer reads one by one: 7 steps a bucket.
    { name: "zoom to 13,993 steps", ...zoom(7 * (MAX_POINTS - 1)), fields: undefined },
    { name: "zoom to 2,000 steps", ...zoom(MAX_POINTS), fields: undefined },
  ].map((c) => ({ ...c, query: `maxPoints=${MAX_POINTS}&from=${c.from}&to=${c.to}${c.fields ? `&fields=${c.fields}` : ""}` }));
  const reads = (c: { from: number; to: number }) => {
    const span = c.to - c.from + 1;
    if (span <= MAX_POINTS) return "rows, step by step";
    const { blockSize } = planBuckets(span, MAX_POINTS);
    return blockSize === 1 ? "rows" : `blocks of ${blockSize}`;
  };
  const timings = new Map(cases.map((c) => [c.name, [] as number[]]));
  const answers = new Map<string, { points: number; bucketSize: number | null; bytes: number }>();
  for (let run = -1; run < RUNS; run++) {
    for (const c of cases) {
      const started = performance.now();
      const response = await app.inject({ url: url(c.query), headers: { authorization: `Bearer ${TOKEN}` } });
      const ms = performance.now() - started;
      if (response.statusCode !== 200) throw new Error(`${c.name}: ${response.statusCode} ${response.body.slice(0, 300)}`);
      if (run < 0) {
        const body = response.json() as { step: number[]; downsampled?: { bucketSize: number } };
        answers.set(c.name, { points: body.step.length, bucketSize: body.downsampled?.bucketSize ?? null, bytes: response.rawPayload.length });
      } else {
        timings.get(c.name)?.push(ms);
      }
    }
  }
  const rows: Record<string, unknown>[] = cases.map((c) => {
    const times = timings.get(c.name) ?? [];
    const answer = answers.get(c.name);
    return {
      case: `HTTP ${c.name}`,
      query: c.query,
      reads: reads(c),
      points: answer?.points,
      bucketSize: answer?.bucketSize ?? "-",
      kB: Math.round((answer?.bytes ?? 0) / 1024),
      medianMs: median(times),
      minMs: Math.min(...times),
      maxMs: Math.max(...times),
    };
  });

  // The same whole-job statement, SQL only: from StepRollup, and from Step rows alone.
  const fields = parseFields(undefined);
  const withRollup = bucketSql(job.id, fields, { first: 0, last: STEPS - 1, layers: LAYERS, ...planBuckets(STEPS, MAX_POINTS) });
  const rowsOnlyPlan = planBuckets(STEPS, MAX_POINTS, []);
  const rowsOnly = bucketSql(job.id, fields, { first: 0, last: STEPS - 1, layers: LAYERS, ...rowsOnlyPlan });
  for (const [name, statement, runs] of [
    ["SQL whole job from StepRollup", withRollup, RUNS],
    ["SQL whole job from Step rows only (no StepRollup)", rowsOnly, 3],
  ] as const) {
    const times: number[] = [];
    let points = 0;
    for (let run = -1; run < runs; run++) {
      const started = performance.now();
      points = (await prisma.$queryRawUnsafe<unknown[]>(statement.sql, ...statement.params)).length;
      if (run >= 0) times.push(performance.now() - started);
    }
    rows.push({ case: name, query: "-", reads: name.includes("rows only") ? "rows" : "blocks of 256", points, bucketSize: name.includes("rows only") ? rowsOnlyPlan.bucketSize : planBuckets(STEPS, MAX_POINTS).bucketSize, kB: "-", medianMs: median(times), minMs: Math.min(...times), maxMs: Math.max(...times) });
  }

  const writer = await prisma.job.create({ data: { name: "bench-history-writes", spec: {}, layerNames } });
  const inserts = await timeInserts(prisma, writer.id, Math.max(5, RUNS));
  rows.push({ case: "insertSteps, 256 rows, rollup triggers off", query: "-", reads: "-", points: "-", bucketSize: "-", kB: "-", medianMs: inserts.off, minMs: "-", maxMs: "-" });
  rows.push({ case: "insertSteps, 256 rows, rollup triggers on", query: "-", reads: "-", points: "-", bucketSize: "-", kB: "-", medianMs: inserts.on, minMs: "-", maxMs: "-" });

  const plans = {
    withRollup: await explain(prisma, withRollup.sql, withRollup.params),
    rowsOnly: await explain(prisma, rowsOnly.sql, rowsOnly.params),
  };
  console.log(`\nEXPLAIN ANALYZE, whole job from StepRollup:\n${plans.withRollup.join("\n")}`);
  console.log(`\nEXPLAIN ANALYZE, whole job from Step rows only:\n${plans.rowsOnly.join("\n")}`);
  const wholeJob = median(timings.get("whole job") ?? []);
  console.log(`\nwhole job: ${wholeJob.toFixed(1)} ms median through HTTP, ${((wholeJob / 200) * 100).toFixed(0)}% of the 200 ms target`);

  await app.close();
  // Timings on a shared machine mean little without what else was running.
  const loadAverage1m = Number(loadavg()[0]?.toFixed(2));
  console.log(`load average (1 min) at the end: ${loadAverage1m}`);
  await writeResults("history", { backend: `none (PostgreSQL: ${postgres})`, postgres, steps: STEPS, layers: LAYERS, runs: RUNS, loadSeconds, loadAverage1m, sizes, rows, plans });
} finally {
  await prisma.$disconnect();
  await database.close();
}
