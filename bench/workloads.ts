// The reference training workloads the trainer benchmarks time, and the same tfjs step on each,
// bare (variableGrads then applyGradients) and as gradguard's trainer runs it (the production
// measureGradients: loss, global and per-layer norms, weight norm, one read; then applyUpdate).
import * as tf from "@tensorflow/tfjs-core";
import { makeDataset } from "../trainer/data/datasets.ts";
import { buildModel } from "../trainer/model.ts";
import { makeOptimizer } from "../trainer/optimizer.ts";
import { type JobSpec, parseJobSpec } from "../trainer/spec.ts";
import { applyUpdate, LOSSES, measureGradients, type StepContext } from "../trainer/train-step.ts";

export interface Workload {
  name: string;
  spec: Record<string, unknown>;
}

/** An MLP 784-hidden-hidden-10 on 784-feature blobs of 10 classes. */
export function mlp(hidden: number, batchSize: number): Workload {
  return {
    name: `MLP 784-${hidden}-${hidden}-10, batch ${batchSize}`,
    spec: {
      model: { layers: [{ type: "dense", units: hidden, activation: "relu", inputShape: [784] }, { type: "dense", units: hidden, activation: "relu" }, { type: "dense", units: 10 }] },
      data: { kind: "blobs", size: 2048, features: 784, classes: 10, seed: 1 },
      loss: "softmaxCrossEntropy",
      batchSize,
    },
  };
}

export const MLP = mlp(256, 128);

export const SIMPLE_RNN: Workload = {
  name: "SimpleRNN 64 on adding (T=50), batch 64",
  spec: {
    model: { layers: [{ type: "simpleRNN", units: 64, inputShape: [50, 2] }, { type: "dense", units: 1 }] },
    data: { kind: "adding", size: 2048, seqLen: 50, seed: 1 },
    loss: "meanSquaredError",
    batchSize: 64,
  },
};

/** SGD at 0.01, the optimizer PyTorch's reference (bench/pytorch_mlp.py) uses too; the default watchdog. */
export function workloadSpec(workload: Workload, steps = 1): JobSpec {
  return parseJobSpec({ name: workload.name, optimizer: { type: "sgd", learningRate: 0.01 }, steps, seed: 1, validation: { fraction: 0 }, ...workload.spec }, { maxSteps: steps });
}

/** One batch of the workload's data and its model, with the step run bare and measured. */
export function setupSteps(spec: JobSpec) {
  const data = makeDataset(spec.data);
  const built = buildModel(spec);
  const context: StepContext = { model: built.model, optimizer: makeOptimizer(spec.optimizer), loss: LOSSES[spec.loss], layerVariables: built.layerVariables };
  const n = spec.batchSize;
  const xSize = data.featureShape.reduce((a, b) => a * b, 1);
  const ySize = data.targetShape.reduce((a, b) => a * b, 1);
  const batch = {
    x: tf.tensor(data.x.subarray(0, n * xSize), [n, ...data.featureShape]),
    y: tf.tensor(data.y.subarray(0, n * ySize), [n, ...data.targetShape]),
  };
  const variables = built.layerVariables.flat();
  const bare = () => {
    const { value, grads } = tf.variableGrads(() => context.loss(batch.y, context.model.apply(batch.x, { training: true }) as tf.Tensor), variables);
    context.optimizer.applyGradients(grads);
    tf.dispose([value, ...Object.values(grads)]);
  };
  // As the training loop does: ‖w‖ measured every 10th step, reused in between.
  let steps = 0;
  let weightNorm: number | undefined;
  const measured = async () => {
    const { measurement, grads } = await measureGradients(context, batch, 1, steps++ % 10 === 0 ? undefined : weightNorm);
    weightNorm = measurement.weightNorm;
    applyUpdate(context, grads, { clipCoef: 1, learningRate: spec.optimizer.learningRate, skip: false });
  };
  const dispose = () => {
    tf.dispose([batch.x, batch.y]);
    built.model.dispose();
  };
  return { context, batch, layerNames: built.layerNames, bare, measured, dispose };
}

/**
 * Mean ms per step over `steps` steps, each awaited (a step that reads from a device is async);
 * `settle` (inside the clock) waits for a device that queues work.
 */
export async function msPerStep(step: () => unknown, steps: number, settle?: () => unknown): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < steps; i++) await step();
  await settle?.();
  return (performance.now() - started) / steps;
}

export const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

/** `a` and `b` timed `pairs` times each, in turns A B, B A, A B…, so a steady drift in load hits both alike. */
export async function alternate(pairs: number, a: () => number | Promise<number>, b: () => number | Promise<number>): Promise<[number[], number[]]> {
  const as: number[] = [];
  const bs: number[] = [];
  for (let i = 0; i < pairs; i++) {
    if (i % 2 === 0) {
      as.push(await a());
      bs.push(await b());
    } else {
      bs.push(await b());
      as.push(await a());
    }
  }
  return [as, bs];
}

/** The median of the ratios of the pairs: steadier than a ratio of medians when the load drifts. */
export const pairedRatio = (times: number[], baseline: number[]) => median(times.map((t, i) => t / (baseline[i] as number)));
