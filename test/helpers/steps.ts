// Step rows in tests: the check every recovery, retry, scale-out and fault test ends with, and
// synthetic rows for tests that write steps as the trainer would.
import { expect } from "vitest";
import type { StepRecord } from "../../trainer/train-loop.ts";

type Query = <T extends Record<string, unknown>>(sql: string, params?: unknown[]) => Promise<T[]>;

/** Every step 0..steps-1 of the job stored exactly once: none lost, none twice. */
export async function expectEveryStepOnce(query: Query, jobId: string, steps: number): Promise<void> {
  const [row] = await query<{ rows: number; distinct: number; first: number; last: number }>(
    `SELECT count(*)::int AS rows, count(DISTINCT step)::int AS distinct, min(step) AS first, max(step) AS last FROM "Step" WHERE "jobId" = $1`,
    [jobId],
  );
  expect(row, `steps of job ${jobId}`).toEqual({ rows: steps, distinct: steps, first: 0, last: steps - 1 });
}

/** A plausible step row as the trainer writes it (three layers); `patch` overrides any column. */
export function stepRecord(step: number, patch: Partial<StepRecord> = {}): StepRecord {
  return {
    step,
    loss: 2 + Math.sin(step / 40),
    gradNorm: 1 + (step % 10) / 100,
    layerNorms: [0.5 + (step % 7) / 100, 0.3, 0.2],
    weightNorm: 10,
    updateRatio: 0.01,
    gradNormAfter: 1,
    clipCoef: 1,
    action: "none",
    lr: 0.1,
    nonFinite: false,
    stepMs: 2,
    valLoss: null,
    ...patch,
  };
}
