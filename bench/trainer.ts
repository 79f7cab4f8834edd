// `npm run bench:trainer`: what gradguard's per-step measurements cost. For each reference
// workload, the same tfjs step (same model, same batch) is timed bare — variableGrads then
// applyGradients — and measured — the production measureGradients (loss, global and per-layer
// norms, weight norm, one read) then applyUpdate — alternating, and the medians compared.
import * as tf from "@tensorflow/tfjs-core";
import { pino } from "pino";
import { resolveBackend } from "../trainer/backend.ts";
import { makeDataset } from "../trainer/data/datasets.ts";
import { buildModel } from "../trainer/model.ts";
import { makeOptimizer } from "../trainer/optimizer.ts";
import { type JobSpec, parseJobSpec } from "../trainer/spec.ts";
import { applyUpdate, LOSSES, measureGradients, type StepContext } from "../trainer/train-step.ts";
import { writeResults } from "./results.ts";

const WORKLOADS: { name: string; spec: Record<string, unknown> }[] = [
  {
    name: "MLP 784-256-256-10, batch 128",
    spec: {
      model: { layers: [{ type: "dense", units: 256, activation: "relu", inputShape: [784] }, { type: "dense", units: 256, activation: "relu" }, { type: "dense", units: 10 }] },
      data: { kind: "blobs", size: 2048, features: 784, classes: 10, seed: 1 },
      loss: "softmaxCrossEntropy",
      batchSize: 128,
    },
  },
  {
    name: "SimpleRNN 64 on adding (T=50), batch 64",
    spec: {
      model: { layers: [{ type: "simpleRNN", units: 64, inputShape: [50, 2] }, { type: "dense", units: 1 }] },
      data: { kind: "adding", size: 2048, seqLen: 50, seed: 1 },
      loss: "meanSquaredError",
      batchSize: 64,
    },
  },
];

const REPEATS = Number(process.argv[2] ?? 7);
const STEPS_PER_REPEAT = Number(process.argv[3] ?? 30);

function setup(spec: JobSpec) {
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
  const measured = () => {
    const { grads } = measureGradients(context, batch);
    applyUpdate(context, grads, { clipCoef: 1, learningRate: spec.optimizer.learningRate, skip: false });
  };
  const dispose = () => {
    tf.dispose([batch.x, batch.y]);
    built.model.dispose();
  };
  return { bare, measured, dispose };
}

function msPerStep(step: () => void): number {
  const started = performance.now();
  for (let i = 0; i < STEPS_PER_REPEAT; i++) step();
  return (performance.now() - started) / STEPS_PER_REPEAT;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

const backend = await resolveBackend(undefined, pino({ level: "warn" }));
const rows = [];
for (const workload of WORKLOADS) {
  const spec = parseJobSpec({ name: workload.name, optimizer: { type: "sgd", learningRate: 0.01 }, steps: 1, seed: 1, validation: { fraction: 0 }, ...workload.spec }, { maxSteps: 10 });
  const { bare, measured, dispose } = setup(spec);
  msPerStep(bare); // warm-up: kernels compiled, memory allocated
  msPerStep(measured);
  const bareTimes: number[] = [];
  const measuredTimes: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    // Alternate, so drift on a noisy machine hits both sides alike.
    bareTimes.push(msPerStep(bare));
    measuredTimes.push(msPerStep(measured));
  }
  dispose();
  const ratio = median(measuredTimes) / median(bareTimes);
  rows.push({ workload: workload.name, bareMs: median(bareTimes), measuredMs: median(measuredTimes), ratio, target: 1.03, met: ratio <= 1.03 });
  console.log(`${workload.name}: bare ${median(bareTimes).toFixed(2)} ms, measured ${median(measuredTimes).toFixed(2)} ms, ratio ${ratio.toFixed(3)} (target ≤ 1.03)`);
}
await writeResults("trainer", { backend, repeats: REPEATS, stepsPerRepeat: STEPS_PER_REPEAT, rows });
