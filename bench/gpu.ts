// `npm run bench:gpu [pairs] [--small]`: issue 9's GPU row. What gradguard's monitoring costs a
// training step on a GPU backend: the same tfjs step bare (variableGrads, then applyGradients;
// nothing read back) and guarded as the trainer runs it (measureGradients, which reads the loss
// and the norms back in one device→host read; the default watchdog's decide; applyUpdate with
// what it decided), MLP 784-4096-4096-10, batch 1024, in alternating blocks. Target ≤ 1.05.
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
import { applyUpdate, measureGradients } from "../trainer/train-step.ts";
import { writeResults } from "./results.ts";
import { alternate, MLP, median, mlp, msPerStep, pairedRatio, setupSteps, workloadSpec } from "./workloads.ts";

const SMALL = process.argv.includes("--small");
const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const PAIRS = Number(args[0] ?? (SMALL ? 9 : 15));
const BLOCK_STEPS = 10;
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
/** One step as the training loop runs it, less its data sampling and bookkeeping. */
const guarded = () => {
  const { measurement, grads } = measureGradients(context, batch, 1, step % 10 === 0 ? undefined : weightNorm);
  weightNorm = measurement.weightNorm;
  const lr = spec.optimizer.learningRate;
  const decision = guard.decide({
    step,
    loss: measurement.loss,
    gradNorm: measurement.gradNorm,
    layerNorms: measurement.layerNorms,
    lr,
    updateRatio: measurement.weightNorm > 0 ? (lr * measurement.updateNorm) / measurement.weightNorm : Number.NaN,
    weightNorm: measurement.weightNorm,
  });
  const clipCoef = decision.clipTo !== null && measurement.gradNorm > decision.clipTo ? decision.clipTo / measurement.gradNorm : 1;
  applyUpdate(context, grads, { clipCoef, learningRate: lr * decision.lrScale * decision.stepScale, skip: decision.skip || decision.rollbackBefore !== null || decision.stop !== null });
  step++;
};
/** Waits for the device: one number that depends on the last update. */
const settle = () => tf.tidy(() => tf.sum(lastVariable)).dataSync();
const block = (run: () => void) => () => msPerStep(run, BLOCK_STEPS, settle);

console.log(`${workload.name} on ${backend}; ${PAIRS} pairs of ${BLOCK_STEPS}-step blocks`);
block(bare)(); // warm-up: kernels compiled, memory allocated
block(guarded)();
const [bareTimes, guardedTimes] = await alternate(PAIRS, block(bare), block(guarded));
dispose();
const ratio = pairedRatio(guardedTimes, bareTimes);
const row = { workload: workload.name, bareMs: median(bareTimes), guardedMs: median(guardedTimes), ratio, target: TARGET, met: ratio <= TARGET };
console.log(JSON.stringify({ backend, ...row }));
await writeResults("gpu", { backend, pairs: PAIRS, blockSteps: BLOCK_STEPS, rows: [row] });
