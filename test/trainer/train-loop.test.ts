import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";
import { resolveBackend } from "../../trainer/backend.ts";
import { parseJobSpec } from "../../trainer/spec.ts";
import { prepareTraining, type StepRecord } from "../../trainer/train-loop.ts";
import { silentLog } from "../helpers/database.ts";
import { demoSpec } from "./fixtures.ts";

const limits = { maxSteps: 100_000 };

async function train(overrides: Record<string, unknown> = {}): Promise<StepRecord[]> {
  const training = prepareTraining(parseJobSpec({ ...demoSpec(), ...overrides }, limits));
  const records: StepRecord[] = [];
  await training.run({ onStep: (r) => records.push(r) });
  training.dispose();
  return records;
}

describe("training loop", () => {
  beforeAll(async () => {
    await resolveBackend(undefined, silentLog);
  });

  it("reports one record per step, in order, with finite and consistent norms", async () => {
    const records = await train({ steps: 50 });
    expect(records.map((r) => r.step)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    for (const r of records) {
      expect(r.nonFinite).toBe(false);
      expect(r.layerNorms).toHaveLength(3);
      expect(r.gradNorm).toBeGreaterThan(0);
      // The global norm is the L2 norm of the per-layer norms.
      expect(r.gradNorm).toBeCloseTo(Math.hypot(...r.layerNorms), 6);
      expect(r.lr).toBe(0.1);
      expect(r.stepMs).toBeGreaterThan(0);
    }
  });

  it("measures the weight norm every 10th step, and at once after an update that moved the weights by more than 1%", async () => {
    const calm = await train({ steps: 30, optimizer: { type: "sgd", learningRate: 0.01 }, watchdog: { policy: "off" } });
    const distinct = (rs: StepRecord[]) => rs.filter((r, i) => i === 0 || r.weightNorm !== rs[i - 1]?.weightNorm).map((r) => r.step);
    expect(distinct(calm)).toEqual([0, 10, 20]);
    expect(Math.abs((calm[10]?.weightNorm as number) / (calm[0]?.weightNorm as number) - 1)).toBeLessThan(0.01);
    // SGD at 5: updates that move the weights by more than 1% of their norm.
    const large = await train({ steps: 20, optimizer: { type: "sgd", learningRate: 5 }, watchdog: { policy: "off" } });
    const afterLarge = large.slice(0, -1).filter((r) => r.updateRatio > 0.01).map((r) => r.step + 1);
    expect(afterLarge.length).toBeGreaterThan(5);
    expect(distinct(large)).toEqual(expect.arrayContaining(afterLarge));
  });

  it("learns: the loss of the last steps is well below the first", async () => {
    const records = await train({ steps: 300, optimizer: { type: "adam", learningRate: 0.01 } });
    const mean = (rs: StepRecord[]) => rs.reduce((s, r) => s + r.loss, 0) / rs.length;
    expect(mean(records.slice(-20))).toBeLessThan(0.7 * mean(records.slice(0, 20)));
  });

  it("is deterministic: same spec and seed give the same steps; another seed does not", async () => {
    const strip = (rs: StepRecord[]) => rs.map(({ stepMs: _, ...rest }) => rest);
    const a = strip(await train({ steps: 30 }));
    expect(strip(await train({ steps: 30 }))).toEqual(a);
    expect(strip(await train({ steps: 30, seed: 2 }))[0]?.gradNorm).not.toBe(a[0]?.gradNorm);
  });

  it("leaks no tensors: the count after step 10 equals the count after step 1000", async () => {
    const training = prepareTraining(parseJobSpec({ ...demoSpec(), steps: 1000 }, limits));
    const counts = new Map<number, number>();
    await training.run({
      onStep: (r) => {
        if (r.step === 10 || r.step === 999) counts.set(r.step, tf.memory().numTensors);
      },
    });
    training.dispose();
    expect(counts.get(999)).toBe(counts.get(10));
  });

  it("changes the weights at every step", async () => {
    const training = prepareTraining(parseJobSpec({ ...demoSpec(), steps: 3 }, limits));
    const snapshots = [training.readWeights()];
    await training.run({ onStep: () => snapshots.push(training.readWeights()) });
    training.dispose();
    expect(snapshots).toHaveLength(4);
    for (let i = 1; i < snapshots.length; i++) {
      for (const [v, values] of (snapshots[i] ?? []).entries()) {
        expect(values, `variable ${v} at step ${i - 1}`).not.toEqual(snapshots[i - 1]?.[v]);
      }
    }
  });

  it("stops cleanly after the current step when asked", async () => {
    const training = prepareTraining(parseJobSpec(demoSpec(), limits));
    let seen = 0;
    const summary = await training.run({ onStep: () => seen++, shouldStop: () => seen >= 5 });
    expect(summary).toMatchObject({ stepsRun: 5, stopped: true });
    training.dispose();
  });

  it("unguarded, shows an exploding learning rate in the norms, as non-finite values, without crashing", async () => {
    // MSE on a linear output with SGD at lr 20: the norm grows ~10x a step until it overflows.
    const records = await train({ steps: 60, loss: "meanSquaredError", optimizer: { type: "sgd", learningRate: 20 }, watchdog: { policy: "off" } });
    expect(records).toHaveLength(60);
    expect(records[5]?.gradNorm).toBeGreaterThan(1e3 * (records[0]?.gradNorm ?? 0));
    const firstBad = records.find((r) => r.nonFinite);
    expect(firstBad).toBeDefined();
    expect(Number.isFinite(firstBad?.loss) && Number.isFinite(firstBad?.gradNorm)).toBe(false);
  });

  it("guarded by the default watchdog, the same run never applies a non-finite update and stays finite", async () => {
    const training = prepareTraining(parseJobSpec({ ...demoSpec(), steps: 60, loss: "meanSquaredError", optimizer: { type: "sgd", learningRate: 20 } }, limits));
    const records: StepRecord[] = [];
    const events: string[] = [];
    await training.run({ onStep: (r) => records.push(r), onEvent: (e) => events.push(e.kind) });
    const weights = training.readWeights();
    training.dispose();
    expect(weights.every((w) => w.every(Number.isFinite))).toBe(true);
    expect(records.filter((r) => r.action !== "none").length).toBeGreaterThan(0);
    for (const r of records.filter((r) => r.nonFinite)) expect(r.action).not.toBe("none");
    expect(events.length).toBeGreaterThan(0);
  });
});
