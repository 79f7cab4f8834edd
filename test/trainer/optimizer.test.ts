import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";
import { resolveBackend } from "../../trainer/backend.ts";
import { makeOptimizer, type OptimizerSpec, scheduledRate, setLearningRate, updateDirectionSquares } from "../../trainer/optimizer.ts";
import { parseJobSpec } from "../../trainer/spec.ts";
import { prepareTraining, type StepRecord } from "../../trainer/train-loop.ts";
import { silentLog } from "../helpers/database.ts";
import { demoSpec } from "./fixtures.ts";

async function train(optimizer: Record<string, unknown>, steps = 150): Promise<StepRecord[]> {
  const training = prepareTraining(parseJobSpec({ ...demoSpec(), steps, optimizer }, { maxSteps: 10_000 }));
  const records: StepRecord[] = [];
  await training.run({ onStep: (r) => records.push(r) });
  training.dispose();
  return records;
}

const mean = (rs: StepRecord[]) => rs.reduce((s, r) => s + r.loss, 0) / rs.length;

describe("optimizers", () => {
  beforeAll(() => resolveBackend(undefined, silentLog));

  it.each([
    { type: "sgd", learningRate: 0.2 },
    { type: "momentum", learningRate: 0.05, momentum: 0.9, nesterov: true },
    { type: "adam", learningRate: 0.01 },
    { type: "rmsprop", learningRate: 0.005 },
    { type: "adagrad", learningRate: 0.1 },
  ])("$type trains: the loss falls", async (optimizer) => {
    const records = await train(optimizer);
    expect(mean(records.slice(-15))).toBeLessThan(0.85 * mean(records.slice(0, 15)));
  });

  it("records the scheduled learning rate on every step", async () => {
    const records = await train({ type: "adam", learningRate: 0.01, schedule: { type: "cosine", warmupSteps: 10 } }, 60);
    expect(records[0]?.lr).toBeCloseTo(0.001, 10);
    expect(records[9]?.lr).toBeCloseTo(0.01, 10);
    expect(records[59]?.lr).toBeLessThan(0.0002);
  });

  it("applies the rate it records: twice the rate moves the weights twice as far on a first SGD step", async () => {
    const moved = async (learningRate: number) => {
      const training = prepareTraining(parseJobSpec({ ...demoSpec(), steps: 1, optimizer: { type: "sgd", learningRate } }, { maxSteps: 10 }));
      const before = training.readWeights();
      await training.run();
      const after = training.readWeights();
      training.dispose();
      return after.reduce((sum, values, v) => sum + values.reduce((s, x, i) => s + Math.abs(x - (before[v]?.[i] ?? 0)), 0), 0);
    };
    expect((await moved(0.2)) / (await moved(0.1))).toBeCloseTo(2, 3);
  });
});

describe("learning-rate schedules", () => {
  const sgd = (schedule: OptimizerSpec["schedule"]): OptimizerSpec => ({ type: "sgd", learningRate: 1, schedule });

  it("constant", () => {
    expect([0, 50, 99].map((s) => scheduledRate(sgd({ type: "constant" }), s, 100))).toEqual([1, 1, 1]);
  });
  it("linear warm-up reaches the base rate at warmupSteps and stays", () => {
    const spec = sgd({ type: "linearWarmup", warmupSteps: 4 });
    expect([0, 1, 3, 10].map((s) => scheduledRate(spec, s, 100))).toEqual([0.25, 0.5, 1, 1]);
  });
  it("cosine decays from the base to the floor over the job", () => {
    const spec = sgd({ type: "cosine", minFactor: 0.1 });
    expect(scheduledRate(spec, 0, 101)).toBeCloseTo(1, 10);
    expect(scheduledRate(spec, 50, 101)).toBeCloseTo(0.55, 10);
    expect(scheduledRate(spec, 100, 101)).toBeCloseTo(0.1, 10);
  });
  it("step decay multiplies by gamma every stepSize steps", () => {
    const spec = sgd({ type: "step", stepSize: 10, gamma: 0.5 });
    expect([0, 9, 10, 25].map((s) => scheduledRate(spec, s, 100))).toEqual([1, 1, 0.5, 0.25]);
  });

  describe("the update they would make, read before they make it", () => {
    // Three steps on two variables with fixed gradients; at each, the predicted ‖Δw‖/lr must be
    // the distance the optimizer then actually moves the weights, divided by the rate.
    it.each<OptimizerSpec>([
      { type: "sgd", learningRate: 0.1 },
      { type: "momentum", learningRate: 0.1, momentum: 0.9 },
      { type: "momentum", learningRate: 0.1, momentum: 0.9, nesterov: true },
      { type: "adam", learningRate: 0.01 },
      { type: "rmsprop", learningRate: 0.01, momentum: 0.5 },
      { type: "adagrad", learningRate: 0.1 },
    ])("%o", (spec) => {
      const optimizer = makeOptimizer(spec);
      const id = JSON.stringify(spec);
      const a = tf.variable(tf.tensor1d([0.5, -1, 2]), true, `a ${id}`);
      const b = tf.variable(tf.tensor2d([[1, 2], [3, 4]]), true, `b ${id}`);
      for (const [step, scale] of [1, -3, 0.5].entries()) {
        const grads = { [a.name]: tf.mul(tf.tensor1d([0.1, -0.2, 0.3]), scale), [b.name]: tf.mul(tf.tensor2d([[1, 0], [-1, 2]]), scale) };
        const lr = spec.learningRate * (step + 1);
        setLearningRate(optimizer, lr);
        const predicted = updateDirectionSquares(optimizer, grads);
        const direction = predicted ? Math.sqrt((predicted.dataSync() as Float32Array).reduce((sum, v) => sum + v, 0)) : Math.hypot(...Object.values(grads).flatMap((g) => [...g.dataSync()]));
        const before = [...a.dataSync(), ...b.dataSync()];
        optimizer.applyGradients(grads);
        const after = [...a.dataSync(), ...b.dataSync()];
        expect(Math.hypot(...after.map((w, i) => w - (before[i] as number))) / lr).toBeCloseTo(direction, 4);
        tf.dispose([...Object.values(grads), ...(predicted ? [predicted] : [])]);
      }
      tf.dispose([a, b]);
      optimizer.dispose();
    });
  });
});
