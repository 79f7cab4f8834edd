// `npm run bench:gpu [pairs] [--small]`: issue 9's GPU row. What gradguard's monitoring costs a
// training step on a GPU backend, MLP 784-4096-4096-10, batch 1024, target ≤ 1.05. Three ways
// of taking a step, timed in alternating blocks against the same tfjs step bare (variableGrads,
// then applyGradients; nothing read back):
//   - judged each step (readEvery 0): measureGradients reads the loss and norms back in one
//     device→host read, the default watchdog's decide, applyUpdate with what it decided;
//   - read every 8 (the trainer's default on GPU backends), and every 32: boundedStep bounds the
//     update on the device with the watchdog's deviceBounds, and every n-th step the n steps'
//     numbers are read in one transfer and judged by decide.
// Each block ends by reading one number that depends on its last update, so the GPU's queue is
// drained inside the clock on both sides. The backend is GRADGUARD_BACKEND's or the first that
// works; with DAWN_NODE (the path of a dawn.node), WebGPU over that Dawn, for a GPU machine
// that has no node_modules: bench/README.md says how to run it there through ../shared/gpu.
// --small: the reference MLP 784-256-256-10, batch 128, to check the script anywhere.
import { createRequire } from "node:module";
import * as tf from "@tensorflow/tfjs-core";
import { pino } from "pino";
import { loadConfig } from "../common/config.ts";
import { type Dawn, installWebGpu, resolveBackend } from "../trainer/backend.ts";
import { createGuard } from "../trainer/guard.ts";
import { observe } from "../trainer/train-loop.ts";
import { applyUpdate, boundedStep, measureGradients, type PendingReadout, readBoundedSteps } from "../trainer/train-step.ts";
import { clipCoefficient } from "../trainer/watchdog/index.ts";
import { writeResults } from "./results.ts";
import { alternate, MLP, median, mlp, msPerStep, pairedRatio, setupSteps, workloadSpec } from "./workloads.ts";

const SMALL = process.argv.includes("--small");
const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const PAIRS = Number(args[0] ?? (SMALL ? 9 : 15));
/** The trainer's default on GPU backends, and a longer batch for comparison. */
const READ_EVERY = [8, 32];
const BLOCK_STEPS = 64;
const TARGET = 1.05;

/** The backend to time on. With DAWN_NODE the WebGPU backend is imported by name, so a bundle holds it. */
async function startBackend(): Promise<string> {
  const dawnNode = process.env.DAWN_NODE;
  if (!dawnNode) return resolveBackend(loadConfig(process.env).backend, pino({ level: "warn" }));
  await installWebGpu(createRequire(import.meta.url)(dawnNode) as Dawn);
  await import("@tensorflow/tfjs-backend-webgpu");
  if (!(await tf.setBackend("webgpu"))) throw new Error("tfjs could not initialise the webgpu backend");
  return "webgpu";
}

const backend = await startBackend();
const workload = SMALL ? MLP : mlp(4096, 1024);
const spec = workloadSpec(workload);
const { context, batch, layerNames, bare, dispose } = setupSteps(spec);
const guard = createGuard(spec.watchdog, layerNames);
const lastVariable = context.layerVariables.flat().at(-1) as tf.Variable;

let step = 0;
let weightNorm: number | undefined;
const lr = spec.optimizer.learningRate;
let lrScale = 1;
/** Judged before its update, as the trainer runs a step with readEvery 0, less its data sampling and bookkeeping. */
const judgedEachStep = async () => {
  const { measurement, grads } = await measureGradients(context, batch, 1, step % 10 === 0 ? undefined : weightNorm);
  weightNorm = measurement.weightNorm;
  const decision = guard.decide(observe(step, measurement, lr, lrScale));
  lrScale = decision.lrScale;
  const clipCoef = clipCoefficient(measurement.gradNorm, decision.clipTo);
  applyUpdate(context, grads, { clipCoef, learningRate: lr * lrScale * decision.stepScale, skip: decision.skip || decision.rollbackBefore !== null || decision.stop !== null });
  step++;
};
/** Bounded on the device and read n steps at once, as the trainer runs steps on a GPU backend. */
const pending: (PendingReadout & { step: number; scale: number })[] = [];
const readEvery = (n: number) => async () => {
  const known = step % 10 === 0 ? undefined : weightNorm;
  pending.push({ ...boundedStep(context, batch, 1, known, guard.deviceBounds(), lr * lrScale), step, scale: lrScale });
  step++;
  if (pending.length < n) return;
  const taken = pending.splice(0);
  for (const [i, { measurement }] of (await readBoundedSteps(context, taken)).entries()) {
    weightNorm = measurement.weightNorm;
    const { step: at, scale } = taken[i] as (typeof taken)[number];
    lrScale = guard.decide(observe(at, measurement, lr, scale)).lrScale;
  }
};
/** Waits for the device: one number that depends on the last update (read asynchronously: WebGPU in Node has no synchronous read). */
const settle = async () => {
  const sum = tf.tidy(() => tf.sum(lastVariable));
  await sum.data();
  sum.dispose();
};
const block = (run: () => unknown) => () => msPerStep(run, BLOCK_STEPS, settle);

console.log(`${workload.name} on ${backend}; ${PAIRS} pairs of ${BLOCK_STEPS}-step blocks for each way`);
await block(bare)(); // warm-up: kernels compiled, memory allocated
await block(judgedEachStep)();
await block(readEvery(READ_EVERY[0] as number))();
const rows = [];
const ways: [string, () => Promise<number>][] = [
  ["judged each step (readEvery 0)", block(judgedEachStep)],
  ...READ_EVERY.map((n): [string, () => Promise<number>] => [`read every ${n} (readEvery ${n}${n === 8 ? ", the GPU default" : ""})`, block(readEvery(n))]),
];
for (const [way, timed] of ways) {
  const [bareTimes, guardedTimes] = await alternate(PAIRS, block(bare), timed);
  const ratio = pairedRatio(guardedTimes, bareTimes);
  rows.push({ workload: workload.name, way, bareMs: median(bareTimes), guardedMs: median(guardedTimes), ratio, target: TARGET, met: ratio <= TARGET });
}
dispose();
for (const row of rows) console.log(JSON.stringify({ backend, ...row }));
await writeResults("gpu", { backend, pairs: PAIRS, blockSteps: BLOCK_STEPS, rows });
