// `npm run bench:trainer`: what gradguard's per-step measurements cost. For each reference
// workload, the same tfjs step (same model, same batch) is timed bare — variableGrads then
// applyGradients — and measured — the production measureGradients (loss, global and per-layer
// norms, weight norm, one read) then applyUpdate — alternating, and the medians compared.
import { pino } from "pino";
import { resolveBackend } from "../trainer/backend.ts";
import { writeResults } from "./results.ts";
import { MLP, median, msPerStep, SIMPLE_RNN, setupSteps, workloadSpec } from "./workloads.ts";

const REPEATS = Number(process.argv[2] ?? 7);
const STEPS_PER_REPEAT = Number(process.argv[3] ?? 30);

const backend = await resolveBackend(undefined, pino({ level: "warn" }));
const rows = [];
for (const workload of [MLP, SIMPLE_RNN]) {
  const { bare, measured, dispose } = setupSteps(workloadSpec(workload));
  msPerStep(bare, STEPS_PER_REPEAT); // warm-up: kernels compiled, memory allocated
  msPerStep(measured, STEPS_PER_REPEAT);
  const bareTimes: number[] = [];
  const measuredTimes: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    // Alternate, so drift on a noisy machine hits both sides alike.
    bareTimes.push(msPerStep(bare, STEPS_PER_REPEAT));
    measuredTimes.push(msPerStep(measured, STEPS_PER_REPEAT));
  }
  dispose();
  const ratio = median(measuredTimes) / median(bareTimes);
  rows.push({ workload: workload.name, bareMs: median(bareTimes), measuredMs: median(measuredTimes), ratio, target: 1.03, met: ratio <= 1.03 });
  console.log(`${workload.name}: bare ${median(bareTimes).toFixed(2)} ms, measured ${median(measuredTimes).toFixed(2)} ms, ratio ${ratio.toFixed(3)} (target ≤ 1.03)`);
}
await writeResults("trainer", { backend, repeats: REPEATS, stepsPerRepeat: STEPS_PER_REPEAT, rows });
