// `npm run bench:throughput [repeats] [steps]`: gradguard's training step against PyTorch's on
// the CPU. The same MLP (784-256-256-10, batch 128, SGD) is trained by gradguard's trainer step
// (tfjs, with its measurements) and by bench/pytorch_mlp.py (Debian's python3-torch, as many
// threads as the tfjs backend uses), taking turns in the same run; the medians of ms per step
// are compared. The bare tfjs step is reported beside them. Target: gradguard ÷ PyTorch ≤ 1.3.
import { spawn } from "node:child_process";
import { availableParallelism, loadavg } from "node:os";
import { createInterface } from "node:readline";
import * as tf from "@tensorflow/tfjs-core";
import { getThreadsCount } from "@tensorflow/tfjs-backend-wasm";
import { pino } from "pino";
import { resolveBackend } from "../trainer/backend.ts";
import { writeResults } from "./results.ts";
import { MLP, median, msPerStep, setupSteps, workloadSpec } from "./workloads.ts";

const REPEATS = Number(process.argv[2] ?? 7);
const STEPS_PER_REPEAT = Number(process.argv[3] ?? 20);
const TARGET = 1.3;
const PYTHON = process.env.PYTHON ?? "/usr/bin/python3";

/** bench/pytorch_mlp.py as a child that runs `steps` steps whenever asked and answers ms per step. */
async function startPyTorch(threads: number) {
  const child = spawn(PYTHON, [new URL("./pytorch_mlp.py", import.meta.url).pathname, String(threads)], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const line = await lines.next();
    if (line.done) throw new Error(`${PYTHON} bench/pytorch_mlp.py exited; is python3-torch installed? (see bench/README.md)`);
    return JSON.parse(line.value) as Record<string, unknown>;
  };
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.once("error", () => {}); // a missing python3 ends the line reader, which says so
  const info = (await next()) as { torch: string; threads: number };
  return {
    info,
    msPerStep: async (steps: number) => {
      child.stdin.write(`${steps}\n`);
      return (await next()).msPerStep as number;
    },
    stop: async () => {
      child.stdin.end();
      await exited;
    },
  };
}

const backend = await resolveBackend(undefined, pino({ level: "warn" }));
// The wasm backend is single-threaded in Node (tfjs-backend-wasm disables its threaded build
// there); PyTorch gets the same number of threads.
const threads = backend === "wasm" ? getThreadsCount() : availableParallelism();
const torch = await startPyTorch(threads);
const { bare, measured, dispose } = setupSteps(workloadSpec(MLP));
console.log(`${MLP.name}: tfjs ${tf.version_core} on ${backend} (${threads} thread${threads > 1 ? "s" : ""}) against PyTorch ${torch.info.torch} (${torch.info.threads}), ${REPEATS} turns of ${STEPS_PER_REPEAT} steps`);
await msPerStep(bare, STEPS_PER_REPEAT); // warm-up: kernels compiled, memory allocated
await msPerStep(measured, STEPS_PER_REPEAT);
await torch.msPerStep(STEPS_PER_REPEAT);
const times = { gradguard: [] as number[], bare: [] as number[], pytorch: [] as number[] };
for (let r = 0; r < REPEATS; r++) {
  // Taking turns, so drift on a noisy machine hits every side alike.
  times.gradguard.push(await msPerStep(measured, STEPS_PER_REPEAT));
  times.pytorch.push(await torch.msPerStep(STEPS_PER_REPEAT));
  times.bare.push(await msPerStep(bare, STEPS_PER_REPEAT));
}
dispose();
await torch.stop();
const pytorchMs = median(times.pytorch);
const row = (step: string, values: number[], target: boolean) => {
  const ratio = median(values) / pytorchMs;
  return { step, msPerStep: median(values), minMs: Math.min(...values), maxMs: Math.max(...values), ratioToPyTorch: ratio, target: target ? `≤ ${TARGET}` : "-", met: target ? ratio <= TARGET : "-" };
};
const rows = [
  row(`gradguard trainer step (tfjs ${backend}, measured)`, times.gradguard, true),
  row(`bare tfjs step (${backend})`, times.bare, false),
  row(`PyTorch ${torch.info.torch} CPU, ${torch.info.threads} thread(s)`, times.pytorch, false),
];
const loadAverage1m = Number(loadavg()[0]?.toFixed(2));
await writeResults("throughput", { backend, threads, pytorch: torch.info, workload: MLP.name, repeats: REPEATS, stepsPerRepeat: STEPS_PER_REPEAT, loadAverage1m, rows });
