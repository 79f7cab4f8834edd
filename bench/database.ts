// What the database benchmarks share: a database of their own, a long job stored in SQL with
// generate_series, and the trainer's step rows built in JavaScript.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import type { PrismaClient } from "../prisma/client.ts";
import { startEmbeddedPostgres } from "../prisma/database.ts";
import { stepRecord } from "../test/helpers/steps.ts";
import { adminQuery, withDatabase } from "../test/helpers/urls.ts";
import type { StepRecord } from "../trainer/train-loop.ts";

export interface BenchDatabase {
  url: string;
  /** "embedded" or "external (DATABASE_URL)". */
  kind: string;
  close(): Promise<void>;
}

/** A fresh database named `gg_bench_<name>_<pid>`: on the server DATABASE_URL names, or on an embedded PostgreSQL. */
export async function benchDatabase(name: string): Promise<BenchDatabase> {
  const database = `gg_bench_${name}_${process.pid}`;
  if (process.env.DATABASE_URL) {
    const adminUrl = process.env.DATABASE_URL;
    await adminQuery(adminUrl, `CREATE DATABASE "${database}"`);
    return { url: withDatabase(adminUrl, database), kind: "external (DATABASE_URL)", close: () => adminQuery(adminUrl, `DROP DATABASE "${database}" WITH (FORCE)`).then(() => {}) };
  }
  const dataDir = await mkdtemp(path.join(tmpdir(), `gradguard-bench-${name}-`));
  const server = await startEmbeddedPostgres(dataDir, pino({ level: "warn" }));
  await adminQuery(`${server.serverUrl}/postgres`, `CREATE DATABASE "${database}"`);
  return {
    url: `${server.serverUrl}/${database}`,
    kind: "embedded",
    close: async () => {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Deterministic noise in [0, 1) for step s and stream k, in SQL. */
const noise = (k: number) => `(abs(sin(s * 12.9898 + ${k} * 78.233)) * 43758.5453 - floor(abs(sin(s * 12.9898 + ${k} * 78.233)) * 43758.5453))`;

/** Rows per INSERT … generate_series: the StepRollup triggers then run a chunk at a time, as they do for the trainer's inserts. */
const CHUNK = 100_000;

/**
 * Stores steps 0..steps-1 of a plausible run in SQL: a decaying loss, unit-ish norms, a 1000×
 * gradient spike every 99,991 steps (clipped), a NaN loss with an infinite norm every 250,007
 * (skipped), the learning rate cut at half-way, and a validation loss every 1,000 steps.
 * `onProgress` hears the steps stored so far after each chunk.
 */
export async function storeSyntheticJob(prisma: PrismaClient, jobId: string, steps: number, layers: number, onProgress?: (stored: number) => void): Promise<void> {
  const spike = "s % 99991 = 5";
  const broken = "s % 250007 = 17";
  const layerNorms = Array.from({ length: layers }, (_, k) => `CASE WHEN ${spike} THEN 100 ELSE 0.1 + ${noise(k + 10)} END`);
  for (let from = 0; from < steps; from += CHUNK) {
    await prisma.$executeRawUnsafe(
      `INSERT INTO "Step" ("jobId", step, loss, "gradNorm", "layerNorms", lr, "nonFinite", "stepMs", "weightNorm", "updateRatio", "gradNormAfter", "clipCoef", action, "valLoss")
       SELECT $1::uuid, s,
         CASE WHEN ${broken} THEN 'NaN'::float8 ELSE 2 * exp(-s / 200000.0) + 0.05 * ${noise(1)} END,
         CASE WHEN ${broken} THEN 'Infinity'::float8 WHEN ${spike} THEN 1000 ELSE 1 + ${noise(2)} END,
         ARRAY[${layerNorms.join(", ")}],
         CASE WHEN s < ${steps / 2} THEN 0.1 ELSE 0.01 END,
         ${broken}, 2 + ${noise(3)}, 50 + s / 100000.0, 0.002 * ${noise(4)},
         CASE WHEN ${broken} THEN 0 WHEN ${spike} THEN 1 ELSE 1 + ${noise(2)} END,
         CASE WHEN ${spike} THEN 0.001 ELSE 1 END,
         CASE WHEN ${broken} THEN 'skip' WHEN ${spike} THEN 'clip' ELSE 'none' END,
         CASE WHEN s % 1000 = 999 THEN 1.5 * exp(-s / 200000.0) END
       FROM generate_series($2::int, $3::int) AS s`,
      jobId,
      from,
      Math.min(steps, from + CHUNK) - 1,
    );
    onProgress?.(Math.min(steps, from + CHUNK));
  }
}

/** One step row as the trainer's writer gets it, with `layers` layer norms. */
export function syntheticStep(step: number, layers: number): StepRecord {
  return stepRecord(step, {
    layerNorms: Array.from({ length: layers }, (_, i) => 0.1 + ((step * (i + 1)) % 7) / 10),
    valLoss: step % 1000 === 999 ? 1 : null,
  });
}
