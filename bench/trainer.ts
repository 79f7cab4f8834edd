// `npm run bench:trainer [pairs] [loop pairs]`: what gradguard's monitoring costs the training it
// watches, as two ratios measured side by side on each reference workload, and their product.
// 1. The norms: the same tfjs step (same model, same batch) bare — variableGrads then
//    applyGradients — and measured — the production measureGradients (loss, global and
//    per-layer norms, weight norm, update norm, one read) then applyUpdate.
// 2. The watchdog and the writer: the training loop itself (trainer/train-loop.ts) with the
//    spec's watchdog deciding every step and every step row pushed to a StepWriter on a real
//    database (stored before the clock stops), against the same loop with neither.
// Each pair takes turns (A B, B A, …), so drift on a noisy machine hits both sides alike, and each
// ratio is the median of the pairs' ratios. The steps are timed in short blocks, many of them:
// this VM's noise comes in bursts of seconds, and 11 pairs of 30-step blocks put the RNN's norms
// anywhere from 0.96 to 1.17 in one session, where 99 pairs of 10-step blocks stayed within
// 0.98–1.03 (its kernels are those of the bare step plus 4 of ~2,450: tf.profile).
// A block of 10 steps holds exactly one weight-norm measurement, as every 10 steps of a job do.
// The loops' ratio is as noisy: the MLP's came out 0.976, 1.014 and 1.035 in three runs of the
// same code with 21-33 pairs, so it takes 55.
import { pino } from "pino";
import { createPrismaClient } from "../prisma/client.ts";
import { migrate } from "../prisma/migrate.ts";
import { resolveBackend } from "../trainer/backend.ts";
import { StepWriter } from "../trainer/step-writer.ts";
import { prepareTraining } from "../trainer/train-loop.ts";
import { benchDatabase } from "./database.ts";
import { writeResults } from "./results.ts";
import { alternate, MLP, median, msPerStep, pairedRatio, SIMPLE_RNN, setupSteps, type Workload, workloadSpec } from "./workloads.ts";

const NORMS_PAIRS = Number(process.argv[2] ?? 99);
const NORMS_BLOCK_STEPS = 10;
const LOOP_PAIRS = Number(process.argv[3] ?? 55);
/** Steps of each training loop: long enough for the writer's 200 ms flushes to run inside it. */
const LOOP_STEPS = 30;
const TARGET = 1.03;

const log = pino({ level: "warn" });
const backend = await resolveBackend(undefined, log);
const database = await benchDatabase("trainer");
await migrate(database.url, { log });
const prisma = createPrismaClient(database.url);

/**
 * Mean ms per step of the training loop over `steps` steps, guarded and written, or neither.
 * The clock stops when the loop returns: the writer's flushes during the run are counted (they
 * run between steps, as in a job), the wait for its last one is not (a job never waits for it).
 */
async function loopMsPerStep(workload: Workload, steps: number, monitored: boolean): Promise<number> {
  const spec = workloadSpec(workload, steps);
  const training = prepareTraining(spec, monitored ? {} : { guard: null });
  const job = await prisma.job.create({ data: { name: `bench-trainer ${workload.name}`, spec: {}, layerNames: training.layerNames } });
  const writer = monitored ? new StepWriter(prisma, job.id, log) : null;
  const started = performance.now();
  await training.run(writer ? { onStep: (record) => writer.push(record), onEvent: (event) => writer.pushEvent(event) } : {});
  const elapsed = performance.now() - started;
  await writer?.close();
  training.dispose();
  return elapsed / steps;
}

const rows = [];
try {
  for (const workload of [MLP, SIMPLE_RNN]) {
    const { bare, measured, dispose } = setupSteps(workloadSpec(workload));
    msPerStep(bare, 3 * NORMS_BLOCK_STEPS); // warm-up: kernels compiled, memory allocated
    msPerStep(measured, 3 * NORMS_BLOCK_STEPS);
    const [bareTimes, measuredTimes] = await alternate(NORMS_PAIRS, () => msPerStep(bare, NORMS_BLOCK_STEPS), () => msPerStep(measured, NORMS_BLOCK_STEPS));
    dispose();
    // Short loops, many turns: each loop builds its model untimed, so only the steps are compared.
    await loopMsPerStep(workload, LOOP_STEPS, true);
    const [plainLoopTimes, monitoredLoopTimes] = await alternate(
      LOOP_PAIRS,
      () => loopMsPerStep(workload, LOOP_STEPS, false),
      () => loopMsPerStep(workload, LOOP_STEPS, true),
    );
    const normsRatio = pairedRatio(measuredTimes, bareTimes);
    const watchdogWriterRatio = pairedRatio(monitoredLoopTimes, plainLoopTimes);
    const ratio = normsRatio * watchdogWriterRatio;
    rows.push({
      workload: workload.name,
      bareMs: median(bareTimes),
      measuredMs: median(measuredTimes),
      normsRatio,
      plainLoopMs: median(plainLoopTimes),
      monitoredLoopMs: median(monitoredLoopTimes),
      watchdogWriterRatio,
      ratio,
      target: TARGET,
      met: ratio <= TARGET,
    });
    console.log(
      `${workload.name}: norms ${normsRatio.toFixed(3)} (bare ${median(bareTimes).toFixed(2)} ms, measured ${median(measuredTimes).toFixed(2)} ms); ` +
        `watchdog + writer ${watchdogWriterRatio.toFixed(3)} (loop ${median(plainLoopTimes).toFixed(2)} ms → ${median(monitoredLoopTimes).toFixed(2)} ms); ` +
        `all ${ratio.toFixed(3)} (target ≤ ${TARGET})`,
    );
  }
} finally {
  await prisma.$disconnect();
  await database.close();
}
await writeResults("trainer", { backend, database: database.kind, normsPairs: NORMS_PAIRS, normsBlockSteps: NORMS_BLOCK_STEPS, loopPairs: LOOP_PAIRS, loopSteps: LOOP_STEPS, rows });
