// Reads in batches (readEvery ≥ 1), the mode for GPU backends: each update is bounded on the
// device by what the watchdog already knows, and the numbers are read back and judged later.
// Run on the cpu backend, where nothing forces the mode: only the GPU's speed is missing here.
import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";
import { resolveBackend } from "../../trainer/backend.ts";
import { createGuard } from "../../trainer/guard.ts";
import { reportedLayerNames } from "../../trainer/model.ts";
import { parseJobSpec } from "../../trainer/spec.ts";
import { type GuardDecision, type GuardObservation, NO_DECISION, prepareTraining, type StepGuard, type StepRecord, type TrainingCheckpoint, type TrainingEvent } from "../../trainer/train-loop.ts";
import { silentLog } from "../helpers/database.ts";
import { demoSpec } from "./fixtures.ts";

const limits = { maxSteps: 100_000 };

/** A spike clipped under SGD (×5: Adam's update absorbs it), a gradient skipped (×1000), a NaN batch, and an LR spike. */
const FAULTS = [
  { kind: "gradScale", step: 45, factor: 5 },
  { kind: "gradScale", step: 60, factor: 1000 },
  { kind: "nanBatch", step: 80 },
  { kind: "lrSpike", step: 100, factor: 40, duration: 3 },
];
const OPTIMIZERS = [
  { type: "sgd", learningRate: 0.1 },
  { type: "adam", learningRate: 0.01 },
];

interface Run {
  records: StepRecord[];
  events: TrainingEvent[];
  /** What the watchdog saw and decided, per step judged. */
  judged: { observation: GuardObservation; decision: GuardDecision }[];
  weights: Float32Array[];
  checkpoints: TrainingCheckpoint[];
}

async function train(readEvery: number, overrides: Record<string, unknown> = {}, restoreFrom: TrainingCheckpoint[] = [], { readWeights = true } = {}): Promise<Run> {
  const spec = parseJobSpec({ ...demoSpec(), steps: 130, faults: FAULTS, ...overrides }, limits);
  const run: Run = { records: [], events: [], judged: [], weights: [], checkpoints: [] };
  const training = prepareTraining(spec, { readEvery, guard: recording(createGuard(spec.watchdog, reportedLayerNames(spec.model)), run) });
  await training.restore(restoreFrom);
  await training.run({ onStep: (r) => run.records.push(r), onEvent: (e) => run.events.push(e), onCheckpoint: (c) => void run.checkpoints.push(c) });
  if (readWeights) run.weights = training.readWeights();
  training.dispose();
  return run;
}

/** The default guard, keeping what it saw and decided. */
function recording(guard: StepGuard, run: Run): StepGuard {
  return {
    ...guard,
    decide: (observation) => {
      const decision = guard.decide(observation);
      run.judged.push({ observation, decision });
      return decision;
    },
  };
}

const finite = (weights: Float32Array[]) => weights.every((w) => w.every(Number.isFinite));

describe("reads in batches (GPU mode)", () => {
  beforeAll(async () => {
    await resolveBackend("cpu", silentLog);
  });

  // What each policy must have done in the run, at least (the reference presets skip nothing,
  // and Adam's update absorbs the ×5 and ×1000 spikes through the spike gate).
  const POLICY_CASES = [
    { policy: "gradguard", optimizer: OPTIMIZERS[0], acted: { clip: 1, scaled: 3, skip: 2 } },
    { policy: "gradguard", optimizer: OPTIMIZERS[1], acted: { clip: 0, scaled: 3, skip: 1 } },
    { policy: "zclip", optimizer: OPTIMIZERS[0], acted: { clip: 2, scaled: 0, skip: 0 } },
    { policy: "static", optimizer: OPTIMIZERS[0], acted: { clip: 2, scaled: 0, skip: 0 } },
  ];
  for (const { policy, optimizer, acted: least } of POLICY_CASES) {
    it(`${policy} with ${optimizer?.type}: bounds each update on the device as the watchdog decides it from the step's numbers`, async () => {
      // Read every step: the device's bounds come from the state the watchdog then judges with.
      const { records, judged } = await train(1, { optimizer, watchdog: { policy } });
      expect(records).toHaveLength(130);
      expect(judged.map((j) => j.observation.step)).toEqual(records.map((r) => r.step));
      const acted = { clip: 0, scaled: 0, skip: 0 };
      for (const [i, r] of records.entries()) {
        const { observation, decision } = judged[i] as (typeof judged)[number];
        const clipCoef = decision.clipTo !== null && r.gradNorm > decision.clipTo ? decision.clipTo / r.gradNorm : 1;
        const at = `step ${r.step}`;
        expect(r.action === "skip", at).toBe(decision.skip);
        if (decision.skip) {
          expect(r.gradNormAfter, at).toBe(0);
          acted.skip++;
          continue;
        }
        if (r.nonFinite) continue; // the reference presets apply it as it is
        expect(r.clipCoef, at).toBeCloseTo(clipCoef, 5);
        // The LR applied: the scheduled one (with its fault), at the scale the previous step left, times the step scale.
        const scaleInForce = judged[i - 1]?.decision.lrScale ?? 1;
        expect(r.lr / (observation.lr * scaleInForce), at).toBeCloseTo(decision.stepScale, 5);
        if (clipCoef < 1) acted.clip++;
        if (decision.stepScale < 1) acted.scaled++;
      }
      // Each of the device's rules was exercised: clip, step scale (the LR spike), skip (×1000, NaN).
      expect(acted.clip).toBeGreaterThanOrEqual(least.clip);
      expect(acted.scaled).toBeGreaterThanOrEqual(least.scaled);
      expect(acted.skip).toBeGreaterThanOrEqual(least.skip);
    });
  }

  it("leaves an update alone when the weights' norm is 0 (an unknown update ratio, as for decide)", async () => {
    const model = { layers: [{ type: "dense", units: 2, inputShape: [2], kernelInitializer: "zeros", biasInitializer: "zeros" }] };
    const { records, judged } = await train(1, { model, faults: [], steps: 3, watchdog: { policy: "gradguard" } });
    expect(judged[0]?.observation.updateRatio).toBeNaN();
    expect(records[0]).toMatchObject({ action: "none", clipCoef: 1, lr: 0.1 });
    expect(records[1]?.weightNorm).toBeGreaterThan(0);
  });

  for (const optimizer of OPTIMIZERS) {
    it(`with ${optimizer.type}, applies what it reports: with decisions that need no later step, the trajectory is the host's`, async () => {
      const faults = [
        { kind: "lrSpike", step: 30, factor: 40, duration: 3 },
        { kind: "nanBatch", step: 50 },
      ];
      const host = await train(0, { optimizer, faults, steps: 60 });
      const device = await train(1, { optimizer, faults, steps: 60 });
      expect(device.records.slice(30, 33).map((r) => r.action)).toEqual(["clip", "clip", "clip"]);
      expect(device.records[50]?.action).toBe("skip");
      // A step skipped on the device leaves the weights as they were (step 51's loss), but Adam's
      // moments still decay by one step: its trajectory parts from the host's after that.
      const same = optimizer.type === "sgd" ? 60 : 52;
      for (let step = 0; step < same; step++) {
        if (step === 50) expect(device.records[step]?.loss).toBeNaN();
        else expect(device.records[step]?.loss, `step ${step}`).toBeCloseTo(host.records[step]?.loss as number, 4);
      }
      if (optimizer.type === "sgd") {
        for (const [v, values] of device.weights.entries()) {
          const expected = host.weights[v] as Float32Array;
          for (let i = 0; i < values.length; i++) expect(values[i]).toBeCloseTo(expected[i] as number, 4);
        }
      }
    });
  }

  it("reading 8 steps at once, keeps every step, in order, and contains the same faults", async () => {
    const each = await train(0);
    const batched = await train(8);
    expect(batched.records.map((r) => r.step)).toEqual(each.records.map((r) => r.step));
    expect(finite(batched.weights)).toBe(true);
    const at = (run: Run, step: number) => run.records[step] as StepRecord;
    // The ×1000 gradient and the NaN batch never reach the weights; the LR spike is taken at the typical step size.
    for (const step of [60, 80]) expect(at(batched, step)).toMatchObject({ action: "skip", gradNormAfter: 0 });
    expect(at(batched, 80).nonFinite).toBe(true);
    for (const step of [100, 101, 102]) {
      expect(at(batched, step).action).toBe("clip");
      expect(at(batched, step).lr).toBeLessThan(0.15);
    }
    // Decisions arrive late, yet training ends where reading every step ends.
    expect(at(batched, 129).loss).toBeCloseTo(at(each, 129).loss, 1);
    // Events come before their step's record, in step order, as the writer expects.
    expect(batched.events.map((e) => e.step)).toEqual([...batched.events.map((e) => e.step)].sort((a, b) => a - b));
    expect(batched.events.filter((e) => e.kind === "nonFinite").map((e) => e.step)).toEqual([80]);
  });

  it("says so when, judging a step read late, the watchdog would have done more than the device did", async () => {
    // ZClip judges after 25 norms; with reads at steps 7, 15, 23, 31, the device knew only 24 of
    // them when it took step 27, so a spike there went through as it was.
    const { records, events } = await train(8, { faults: [{ kind: "gradScale", step: 27, factor: 5 }], steps: 40 });
    expect(records[27]).toMatchObject({ action: "none", clipCoef: 1 });
    const late = events.filter((e) => e.kind === "lateDecision");
    expect(late.map((e) => e.step)).toEqual([27]);
    expect(late[0]?.severity).toBe("warning");
    expect(late[0]?.message).toMatch(/^step 27: judged from its numbers, the watchdog would have scaled it by 0\.\d+; on the device, .* the update was applied as it was$/);
    expect(late[0]?.detail).toMatchObject({ applied: { clipCoef: 1, skipped: false }, findings: [expect.objectContaining({ detector: "zClip" })] });
    // The watchdog's own clip event would claim a clip that did not happen: it is not written.
    expect(events.filter((e) => e.step === 27).map((e) => e.kind)).toEqual(["faultInjected", "lateDecision"]);
    // Read every step, the same spike is clipped at its step.
    expect((await train(1, { faults: [{ kind: "gradScale", step: 27, factor: 5 }], steps: 40 })).records[27]?.action).toBe("clip");
  });

  it("when the device did more than the watchdog, judging the step, would have: says what was done and why", async () => {
    // A guard whose device bounds clip every step to 0.01 while its decisions leave them alone.
    const strictOnDevice: StepGuard = {
      decide: () => NO_DECISION,
      deviceBounds: () => ({ ...createGuard({ policy: "off" }, []).deviceBounds(), clipTo: 0.01 }),
      snapshot: () => null,
      restore: () => {},
      afterRollback: () => {},
    };
    const training = prepareTraining(parseJobSpec({ ...demoSpec(), steps: 16 }, limits), { readEvery: 8, guard: strictOnDevice });
    const records: StepRecord[] = [];
    const events: TrainingEvent[] = [];
    await training.run({ onStep: (r) => records.push(r), onEvent: (e) => events.push(e) });
    training.dispose();
    expect(records.every((r) => r.action === "clip" && Math.abs(r.gradNorm * r.clipCoef - 0.01) < 1e-6)).toBe(true);
    expect(events.map((e) => `${e.step}:${e.kind}`)).toEqual(records.map((r) => `${r.step}:clip`));
    expect(events[0]?.message).toMatch(/^step 0 scaled by 0\.\d+ on the device, by the bounds known before the step; judged from its numbers, the watchdog would have left it as it was$/);
    expect(events[0]?.detail).toMatchObject({ bounds: { clipTo: 0.01, maxUpdateRatio: "Infinity" }, wanted: { skip: false, clipTo: null } });
  });

  it("applies an operator's command between known steps: the steps before it are read first", async () => {
    const spec = parseJobSpec({ ...demoSpec(), steps: 40, watchdog: { policy: "off" } }, limits);
    const training = prepareTraining(spec, { readEvery: 8 });
    const records: StepRecord[] = [];
    const acks: [string, number, number][] = [];
    let issued = 0;
    await training.run({
      onStep: (r) => records.push(r),
      // Handed over before step 13, while steps 8..12 are still on the device.
      takeCommands: () => (issued++ === 13 ? [{ id: "c1", type: "setClipThreshold", maxNorm: 0.05 }] : []),
      // With how many steps recorded when it took effect.
      onCommandApplied: (c, step) => acks.push([c.id, step, records.length]),
    });
    training.dispose();
    expect(acks).toEqual([["c1", 13, 13]]);
    expect(records.map((r) => r.step)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(records.slice(0, 13).every((r) => r.clipCoef === 1)).toBe(true);
    for (const r of records.slice(13)) expect(r.gradNorm * r.clipCoef).toBeCloseTo(Math.min(r.gradNorm, 0.05), 6);
  });

  it("rolls back late: the steps trained before the rollback was known are discarded with it", async () => {
    // Three skipped steps within 50 roll back; the third is read with the steps after it.
    const faults = [50, 52, 54].map((step) => ({ kind: "nanBatch", step }));
    const { records, events, weights } = await train(8, { faults, checkpoint: { everySteps: 20, keep: 3 } });
    const rollback = events.find((e) => e.kind === "rolledBack") as TrainingEvent;
    expect(rollback).toMatchObject({ step: 54, detail: { checkpointStep: 40 } });
    // Steps after 54 were trained before its numbers were read (validation reads at step 49, so 50..57 are read together).
    const lastTrained = 40 + (rollback.detail.skippedBatches as number) - 1;
    expect(lastTrained).toBe(57);
    expect(rollback.message).toContain(`batches 40..${lastTrained} are skipped`);
    expect(records[54]?.action).toBe("rollback");
    for (const r of records.slice(55, lastTrained + 1)) expect(r).toMatchObject({ action: "skip", gradNormAfter: 0 });
    expect(records[lastTrained + 1]?.action).toBe("none");
    expect(records.map((r) => r.step)).toEqual(Array.from({ length: 130 }, (_, i) => i));
    expect(finite(weights)).toBe(true);
  });

  it("stops late: the steps trained before the stop was known are kept, and the validation loss is of the last", async () => {
    const stopAt20: StepGuard = {
      decide: (obs) => ({ ...NO_DECISION, ...(obs.step === 20 ? { stop: "diverged (test)", action: "stop" as const } : {}) }),
      snapshot: () => null,
      restore: () => {},
      afterRollback: () => {},
    };
    const spec = parseJobSpec({ ...demoSpec(), steps: 100, validation: { fraction: 0.1, everySteps: 50 } }, limits);
    const training = prepareTraining(spec, { readEvery: 8, guard: stopAt20 });
    const records: StepRecord[] = [];
    const summary = await training.run({ onStep: (r) => records.push(r) });
    training.dispose();
    // Steps 16..23 were read together: 21..23 had been trained when step 20's numbers came back.
    expect(summary).toMatchObject({ diverged: "diverged (test)", stepsRun: 24, stopped: false });
    expect(records.map((r) => r.step)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    expect(records[20]?.action).toBe("stop");
    expect(records.slice(21).map((r) => r.action)).toEqual(["none", "none", "none"]);
    expect(records.filter((r) => r.valLoss !== null).map((r) => r.step)).toEqual([23]);
    expect(summary.finalValLoss).toBe(records[23]?.valLoss);
  });

  it("reads nothing synchronously, which WebGPU in Node cannot do, whether it reads every step or every 8", async () => {
    const dataSync = tf.Tensor.prototype.dataSync;
    tf.Tensor.prototype.dataSync = () => {
      throw new Error("a synchronous read (tfjs's WebGPU backend needs OffscreenCanvas for it, which Node lacks)");
    };
    try {
      const overrides = { steps: 60, faults: [{ kind: "nanBatch", step: 30 }], checkpoint: { everySteps: 20, keep: 2 }, validation: { fraction: 0.1, everySteps: 25 }, optimizer: OPTIMIZERS[1] };
      for (const readEvery of [0, 8]) {
        const { records, checkpoints } = await train(readEvery, overrides, [], { readWeights: false });
        expect(records).toHaveLength(60);
        expect(checkpoints.map((c) => c.step)).toEqual([20, 40]);
        expect(records.filter((r) => r.valLoss !== null).map((r) => r.step)).toEqual([24, 49, 59]);
      }
    } finally {
      tf.Tensor.prototype.dataSync = dataSync;
    }
  });

  it("resumed from a checkpoint, repeats the uninterrupted run's steps exactly", async () => {
    const overrides = { checkpoint: { everySteps: 20, keep: 3 } };
    const whole = await train(8, overrides);
    const saved = whole.checkpoints.filter((c) => c.step <= 60);
    expect(saved.at(-1)?.step).toBe(60);
    const resumed = await train(8, overrides, saved);
    const strip = (rs: StepRecord[]) => rs.map(({ stepMs: _, ...rest }) => rest);
    expect(strip(resumed.records)).toEqual(strip(whole.records.slice(60)));
    expect(resumed.weights).toEqual(whole.weights);
  });

  it("leaks no tensors: the count after step 15 equals the count after step 999", async () => {
    const spec = parseJobSpec({ ...demoSpec(), steps: 1000, optimizer: { type: "adam", learningRate: 0.01 } }, limits);
    const training = prepareTraining(spec, { readEvery: 8 });
    const counts = new Map<number, number>();
    await training.run({
      onStep: (r) => {
        if (r.step === 15 || r.step === 999) counts.set(r.step, tf.memory().numTensors);
      },
    });
    training.dispose();
    expect(counts.get(999)).toBe(counts.get(15));
  });
});
