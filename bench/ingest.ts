// `npm run bench:ingest [repeats] [rows]`: how fast the trainer's StepWriter stores step rows
// (20 layer norms each, in its default 256-row flushes), against the floor: a raw `pg` INSERT …
// SELECT FROM unnest of the same rows in the same batches on one connection, with no
// transaction and no ORM. Beside them, Prisma's createMany of the same rows, for contrast. The
// three take turns, `repeats` times, each time on a job of its own, and the medians of rows/s
// are compared. Target: writer ÷ raw pg ≥ 0.8.
import { loadavg } from "node:os";
import pg from "pg";
import { pino } from "pino";
import { createPrismaClient, type PrismaClient } from "../prisma/client.ts";
import { migrate } from "../prisma/migrate.ts";
import { StepWriter } from "../trainer/step-writer.ts";
import type { StepRecord } from "../trainer/train-loop.ts";
import { benchDatabase, syntheticStep } from "./database.ts";
import { writeResults } from "./results.ts";

const REPEATS = Number(process.argv[2] ?? 7);
const ROWS = Number(process.argv[3] ?? 10_240);
const LAYERS = 20;
const BATCH = 256;
const TARGET = 0.8;

const log = pino({ level: "warn" });
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const batches = (rows: StepRecord[]) => Array.from({ length: Math.ceil(rows.length / BATCH) }, (_, i) => rows.slice(i * BATCH, (i + 1) * BATCH));

/** The trainer's path: every row pushed, then close() waits until all are stored. */
async function viaStepWriter(prisma: PrismaClient, jobId: string, rows: StepRecord[]): Promise<void> {
  const writer = new StepWriter(prisma, jobId, log, { batchSize: BATCH });
  for (const row of rows) writer.push(row);
  await writer.close();
}

/** The floor: one plain INSERT per batch, columns as arrays, on a single pg connection. */
async function viaRawPg(client: pg.Client, jobId: string, rows: StepRecord[]): Promise<void> {
  for (const batch of batches(rows)) {
    const column = <T>(pick: (row: StepRecord) => T) => batch.map(pick);
    await client.query(
      `INSERT INTO "Step" ("jobId", step, loss, "gradNorm", "layerNorms", lr, "nonFinite", "stepMs", "weightNorm", "updateRatio", "gradNormAfter", "clipCoef", action, "valLoss")
       SELECT $1::uuid, t.step, t.loss, t.grad_norm, t.layer_norms::float8[], t.lr, t.non_finite, t.step_ms, t.weight_norm, t.update_ratio, t.grad_norm_after, t.clip_coef, t.action, t.val_loss
       FROM unnest($2::int[], $3::float8[], $4::float8[], $5::text[], $6::float8[], $7::bool[], $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::text[], $14::float8[])
         AS t(step, loss, grad_norm, layer_norms, lr, non_finite, step_ms, weight_norm, update_ratio, grad_norm_after, clip_coef, action, val_loss)`,
      [
        jobId,
        column((r) => r.step),
        column((r) => r.loss),
        column((r) => r.gradNorm),
        // unnest flattens a 2-D array, so each row's norms travel as one array literal.
        column((r) => `{${r.layerNorms.join(",")}}`),
        column((r) => r.lr),
        column((r) => r.nonFinite),
        column((r) => r.stepMs),
        column((r) => r.weightNorm),
        column((r) => r.updateRatio),
        column((r) => r.gradNormAfter),
        column((r) => r.clipCoef),
        column((r) => r.action),
        column((r) => r.valLoss),
      ],
    );
  }
}

async function viaCreateMany(prisma: PrismaClient, jobId: string, rows: StepRecord[]): Promise<void> {
  for (const batch of batches(rows)) {
    await prisma.step.createMany({ data: batch.map((row) => ({ jobId, ...row })), skipDuplicates: true });
  }
}

const database = await benchDatabase("ingest");
const prisma = createPrismaClient(database.url, { maxConnections: 2 });
const raw = new pg.Client({ connectionString: database.url });
try {
  await migrate(database.url, { log });
  await raw.connect();
  const layerNames = Array.from({ length: LAYERS }, (_, i) => `dense_${i}`);
  const rows = Array.from({ length: ROWS }, (_, step) => syntheticStep(step, LAYERS));
  const ways = [
    { name: "StepWriter (trainer/step-writer.ts)", write: (jobId: string) => viaStepWriter(prisma, jobId, rows) },
    { name: "raw pg unnest INSERT", write: (jobId: string) => viaRawPg(raw, jobId, rows) },
    { name: "Prisma createMany", write: (jobId: string) => viaCreateMany(prisma, jobId, rows) },
  ];
  const rowsPerSecond = new Map(ways.map((way) => [way.name, [] as number[]]));
  console.log(`${database.kind} PostgreSQL; ${ROWS.toLocaleString("en")} rows of ${LAYERS} layer norms, ${BATCH} a batch, ${REPEATS} turns (+1 warm-up)`);
  for (let repeat = -1; repeat < REPEATS; repeat++) {
    for (const way of ways) {
      const job = await prisma.job.create({ data: { name: "bench-ingest", spec: {}, layerNames } });
      const started = performance.now();
      await way.write(job.id);
      const seconds = (performance.now() - started) / 1000;
      const [stored] = await prisma.$queryRawUnsafe<{ n: number }[]>(`SELECT count(*)::int AS n FROM "Step" WHERE "jobId" = $1::uuid`, job.id);
      if (stored?.n !== ROWS) throw new Error(`${way.name} stored ${stored?.n} of ${ROWS} rows`);
      if (repeat >= 0) rowsPerSecond.get(way.name)?.push(ROWS / seconds);
    }
    // Keep the table the same size for every turn: each way then inserts into the same indexes.
    await prisma.$executeRawUnsafe(`TRUNCATE "Step", "StepRollup"`);
  }
  const floor = median(rowsPerSecond.get("raw pg unnest INSERT") ?? []);
  const result = ways.map((way) => {
    const times = rowsPerSecond.get(way.name) ?? [];
    const ratio = median(times) / floor;
    const isWriter = way.name.startsWith("StepWriter");
    return {
      way: way.name,
      rowsPerSecond: Math.round(median(times)),
      minRowsPerSecond: Math.round(Math.min(...times)),
      maxRowsPerSecond: Math.round(Math.max(...times)),
      ratioToRawPg: ratio,
      target: isWriter ? `≥ ${TARGET}` : "-",
      met: isWriter ? ratio >= TARGET : "-",
    };
  });
  const loadAverage1m = Number(loadavg()[0]?.toFixed(2));
  console.log(`load average (1 min) at the end: ${loadAverage1m}`);
  await writeResults("ingest", { backend: "none", database: database.kind, rowsPerTurn: ROWS, layers: LAYERS, batch: BATCH, repeats: REPEATS, loadAverage1m, rows: result });
} finally {
  await raw.end();
  await prisma.$disconnect();
  await database.close();
}
