// `npm run bench:history [runs] [steps]`: how fast GET /jobs/:id/steps?maxPoints= answers for a
// long job. It stores a job of 1,000,000 steps with 20 layer norms each (generate_series, so the
// StepRollup triggers run as they do for the trainer's inserts, a chunk at a time), then times
// the endpoint through app.inject for 2,000 points over the whole job and over zoomed ranges,
// the cases interleaved, median of `runs`. Side by side it times the same bucketing statement
// read from Step rows only (what the endpoint would cost without StepRollup) and the trainer's
// 256-row insert with and without the triggers. Target: the whole-job query well under 200 ms.
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { loadConfig } from "../common/config.ts";
import { createPrismaClient, type PrismaClient } from "../prisma/client.ts";
import { startEmbeddedPostgres } from "../prisma/database.ts";
import { migrate } from "../prisma/migrate.ts";
import { buildApp } from "../server/app.ts";
import { bucketSql, parseFields, planBuckets } from "../server/steps-query.ts";
import { adminQuery, withDatabase } from "../test/helpers/urls.ts";
import { insertSteps } from "../trainer/step-writer.ts";
import type { StepRecord } from "../trainer/train-loop.ts";
import { writeResults } from "./results.ts";

const RUNS = Number(process.argv[2] ?? 15);
const STEPS = Number(process.argv[3] ?? 1_000_000);
const LAYERS = 20;
const MAX_POINTS = 2000;
const CHUNK = 100_000;
const TOKEN = "bench-history-admin-token-0123456789";

const log = pino({ level: "warn" });
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

/** A database of its own: on the server DATABASE_URL names, or on an embedded PostgreSQL. */
async function openDatabase(): Promise<{ url: string; kind: string; close(): Promise<void> }> {
  const name = `gg_bench_history_${process.pid}`;
  if (process.env.DATABASE_URL) {
    const adminUrl = process.env.DATABASE_URL;
    await adminQuery(adminUrl, `CREATE DATABASE "${name}"`);
    return { url: withDatabase(adminUrl, name), kind: "external (DATABASE_URL)", close: () => adminQuery(adminUrl, `DROP DATABASE "${name}" WITH (FORCE)`).then(() => {}) };
  }
  const dataDir = await mkdtemp(path.join(tmpdir(), "gradguard-bench-pg-"));
  const server = await startEmbeddedPostgres(dataDir, log);
  await adminQuery(`${server.serverUrl}/postgres`, `CREATE DATABASE "${name}"`);
  return {
    url: `${server.serverUrl}/${name}`,
    kind: "embedded",
    close: async () => {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Deterministic noise in [0, 1) for step s and stream k, in SQL. */
const noise = (k: number) => `(abs(sin(s * 12.9898 + ${k} * 78.233)) * 43758.5453 - floor(abs(sin(s * 12.9898 + ${k} * 78.233)) * 43758.5453))`;

/**
 * Steps from..to of a plausible run: a decaying loss, unit-ish norms, a 1000× gradient spike
 * every 99,991 steps (clipped), a NaN loss with an infinite norm every 250,007 (skipped), the
 * learning rate cut at half-way, and a validation loss every 1,000 steps.
 */
async function insertRange(prisma: PrismaClient, jobId: string, from: number, to: number): Promise<void> {
  const spike = "s % 99991 = 5";
  const broken = "s % 250007 = 17";
  const layerNorms = Array.from({ length: LAYERS }, (_, k) => `CASE WHEN ${spike} THEN 100 ELSE 0.1 + ${noise(k + 10)} END`);
  await prisma.$executeRawUnsafe(
    `INSERT INTO "Step" ("jobId", step, loss, "gradNorm", "layerNorms", lr, "nonFinite", "stepMs", "weightNorm", "updateRatio", "gradNormAfter", "clipCoef", action, "valLoss")
     SELECT $1::uuid, s,
       CASE WHEN ${broken} THEN 'NaN'::float8 ELSE 2 * exp(-s / 200000.0) + 0.05 * ${noise(1)} END,
       CASE WHEN ${broken} THEN 'Infinity'::float8 WHEN ${spike} THEN 1000 ELSE 1 + ${noise(2)} END,
       ARRAY[${layerNorms.join(", ")}],
       CASE WHEN s < ${STEPS / 2} THEN 0.1 ELSE 0.01 END,
       ${broken}, 2 + ${noise(3)}, 50 + s / 100000.0, 0.002 * ${noise(4)},
       CASE WHEN ${broken} THEN 0 WHEN ${spike} THEN 1 ELSE 1 + ${noise(2)} END,
       CASE WHEN ${spike} THEN 0.001 ELSE 1 END,
       CASE WHEN ${broken} THEN 'skip' WHEN ${spike} THEN 'clip' ELSE 'none' END,
       CASE WHEN s % 1000 = 999 THEN 1.5 * exp(-s / 200000.0) END
     FROM generate_series($2::int, $3::int) AS s`,
    jobId,
    from,
    to,
  );
}

function stepRecord(step: number): StepRecord {
  return {
    step,
    loss: 1 + Math.sin(step),
    gradNorm: 1 + Math.cos(step) ** 2,
    layerNorms: Array.from({ length: LAYERS }, (_, i) => 0.1 + ((step * (i + 1)) % 7) / 10),
    weightNorm: 50,
    updateRatio: 0.001,
    gradNormAfter: 1,
    clipCoef: 1,
    action: "none",
    lr: 0.1,
    nonFinite: false,
    stepMs: 2,
    valLoss: step % 1000 === 999 ? 1 : null,
  };
}

/** The trainer's write path: 256-row batches through insertSteps, triggers on and off in turn. */
async function timeInserts(prisma: PrismaClient, jobId: string, batches: number): Promise<{ on: number; off: number }> {
  const times = { on: [] as number[], off: [] as number[] };
  let step = 0;
  for (let i = 0; i < batches; i++) {
    for (const mode of ["on", "off"] as const) {
      await prisma.$executeRawUnsafe(`ALTER TABLE "Step" ${mode === "on" ? "ENABLE" : "DISABLE"} TRIGGER "Step_rollup_insert"`);
      const rows = Array.from({ length: 256 }, () => stepRecord(step++));
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

const database = await openDatabase();
const prisma = createPrismaClient(database.url, { maxConnections: 4 });
try {
  await migrate(database.url, { log });
  const [server] = await prisma.$queryRawUnsafe<{ version: string }[]>("SELECT version()");
  const postgres = `${database.kind} ${server?.version.split(" on ")[0]}`;
  console.log(`${postgres}; storing ${STEPS.toLocaleString("en")} steps…`);

  const layerNames = Array.from({ length: LAYERS }, (_, i) => `dense_${i}`);
  const job = await prisma.job.create({ data: { name: "bench-history", spec: {}, status: "succeeded", layerNames, lastStep: STEPS - 1 } });
  const loadStarted = performance.now();
  for (let from = 0; from < STEPS; from += CHUNK) {
    await insertRange(prisma, job.id, from, Math.min(STEPS, from + CHUNK) - 1);
    process.stdout.write(`\r  ${Math.min(STEPS, from + CHUNK).toLocaleString("en")} steps`);
  }
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
