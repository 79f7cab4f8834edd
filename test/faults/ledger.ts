// What every fault scenario checks once the fault is over, and the tally it prints: every step
// 0..N-1 of every job stored exactly once, and every alert delivered at least once.
import { afterAll, expect } from "vitest";
import { api } from "../helpers/server-process.ts";
import { expectEveryStepOnce as everyStepOnce } from "../helpers/steps.ts";
import { waitFor } from "../helpers/wait.ts";
import { demoSpec } from "../trainer/fixtures.ts";

const tally = { scenarios: 0, stepsChecked: 0, alertsChecked: 0 };

/** Counts this file's scenario and prints the file's totals when it ends (npm run test:faults sums them). */
export function scenario(name: string): void {
  tally.scenarios++;
  afterAll(() => {
    console.log(`fault scenario "${name}": ${tally.stepsChecked} steps checked, ${tally.alertsChecked} alerts checked`);
  });
}

/** A run long enough for a fault to strike mid-way, with frequent checkpoints to resume from. */
export function faultSpec(name: string, steps: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...demoSpec(), name, steps, checkpoint: { everySteps: 100 }, ...extra };
}

/** Every step 0..steps-1 of the job stored exactly once, counted in the tally. */
export async function expectEveryStepOnce(query: Parameters<typeof everyStepOnce>[0], jobId: string, steps: number): Promise<void> {
  await everyStepOnce(query, jobId, steps);
  tally.stepsChecked += steps;
}

/** Counts alerts whose delivery the scenario has checked. */
export function alertsChecked(count: number): void {
  tally.alertsChecked += count;
}

export async function submit(url: string, spec: Record<string, unknown>): Promise<string> {
  const { status, body } = await api<{ id: string; detail?: string }>(url, "/jobs", { method: "POST", body: JSON.stringify(spec) });
  expect(status, body.detail).toBe(201);
  return body.id;
}

/** Waits, through the API, for the job to reach `status`; the timeout error says so if it failed instead. */
export async function waitForJob(url: string, jobId: string, status: string, timeoutMs = 90_000): Promise<{ lastStep: number | null; attempts: number }> {
  return waitFor(
    `job ${jobId} to be ${status}`,
    async () => {
      const { body } = await api<{ status: string; error: string | null; lastStep: number | null; attempts: number }>(url, `/jobs/${jobId}`);
      if (body.status !== status && ["failed", "diverged", "cancelled"].includes(body.status)) throw new Error(`job is ${body.status}: ${body.error}`);
      return body.status === status ? body : undefined;
    },
    timeoutMs,
  );
}

/** Waits until the job has stored more than `steps` steps. */
export async function waitForSteps(url: string, jobId: string, steps: number): Promise<void> {
  await waitFor(`job ${jobId} past step ${steps}`, async () => {
    const { body } = await api<{ lastStep: number | null }>(url, `/jobs/${jobId}`);
    return (body.lastStep ?? -1) >= steps ? true : undefined;
  });
}
