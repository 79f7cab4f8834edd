// The check every recovery, retry, scale-out and fault test ends with.
import { expect } from "vitest";

type Query = <T extends Record<string, unknown>>(sql: string, params?: unknown[]) => Promise<T[]>;

/** Every step 0..steps-1 of the job stored exactly once: none lost, none twice. */
export async function expectEveryStepOnce(query: Query, jobId: string, steps: number): Promise<void> {
  const [row] = await query<{ rows: number; distinct: number; first: number; last: number }>(
    `SELECT count(*)::int AS rows, count(DISTINCT step)::int AS distinct, min(step) AS first, max(step) AS last FROM "Step" WHERE "jobId" = $1`,
    [jobId],
  );
  expect(row, `steps of job ${jobId}`).toEqual({ rows: steps, distinct: steps, first: 0, last: steps - 1 });
}
