// `npm run bench:trainer [repeats] [steps]`: what gradguard's monitoring costs the training it
// watches, as two ratios measured side by side on each reference workload, and their product.
// 1. The norms: the same tfjs step (same model, same batch) bare — variableGrads then
//    applyGradients — and measured — the production measureGradients (loss, global and
//    per-layer norms, weight norm, update norm, one read) then applyUpdate.
// 2. The watchdog and the writer: the training loop itself (trainer/train-loop.ts) with the
//    spec's watchdog deciding every step and every step row pushed to a StepWriter on a real
//    database (stored before the clock stops), against the same loop with neither.
// Each pair alternates, so drift on a noisy machine hits both sides alike; medians are compared.
import { pino } from "pino";
import { createPrismaClient } from "../prisma/client.ts";
import { migrate } from "../prisma/migrate.ts";
import { resolveBackend } from "../trainer/backend.ts";
import { StepWriter } from "../trainer/step-writer.ts";
import { prepareTraining } from "../trainer/train-loop.ts";
import { benchDatabase } from "./database.ts";
import { writeResults } from "./results.ts";
import { MLP, median, msPerStep, SIMPLE_RNN, setupSteps, type Workload, workloadSpec } from "./workloads.ts";

const REPEATS = Number(process.argv[2] ?? 7);
const STEPS_PER_REPEAT = Number(process.argv[3] ?? 30);
const TARGET = 1.03;

const log = pino({ level: "warn" });
const backend = await resolveBackend(undefined, log);
const database = await benchDatabase("trainer");
await migrate(database.url, { log });
const prisma = createPrismaClient(database.url);

/** Mean ms per step of the training loop over `steps` steps, guarded and written, or neither. */
async function loopMsPerStep(workload: Workload, steps: number, monitored: boolean): Promise<number> {
  const spec = workloadSpec(workload, steps);
  const training = prepareTraining(spec, monitored ? {} : { guard: null });
  const job = await prisma.job.create({ data: { name: `bench-trainer ${workload.name}`, spec: {}, layerNames: training.layerNames } });
  const writer = monitored ? new StepWriter(prisma, job.id, log) : null;
  const started = performance.now();
  await training.run(writer ? { onStep: (record) => writer.push(record), onEvent: (event) => writer.pushEvent(event) } : {});
  await writer?.close();
  const elapsed = performance.now() - started;
  training.dispose();
  return elapsed / steps;
}

const rows = [];
try {
  for (const workload of [MLP, SIMPLE_RNN]) {
    const { bare, measured, dispose } = setupSteps(workloadSpec(workload));
    msPerStep(bare, STEPS_PER_REPEAT); // warm-up: kernels compiled, memory allocated
    msPerStep(measured, STEPS_PER_REPEAT);
    const bareTimes: number[] = [];
    const measuredTimes: number[] = [];
    for (let r = 0; r < REPEATS; r++) {
      bareTimes.push(msPerStep(bare, STEPS_PER_REPEAT));
      measuredTimes.push(msPerStep(measured, STEPS_PER_REPEAT));
    }
    dispose();
    // The loop runs long enough for its fixed costs (the first rollback checkpoint, the writer's last flush) to be a small share.
    const loopSteps = STEPS_PER_REPEAT * 5;
    await loopMsPerStep(workload, loopSteps, true);
    const plainLoopTimes: number[] = [];
    const monitoredLoopTimes: number[] = [];
    for (let r = 0; r < REPEATS; r++) {
      plainLoopTimes.push(await loopMsPerStep(workload, loopSteps, false));
      monitoredLoopTimes.push(await loopMsPerStep(workload, loopSteps, true));
    }
    const normsRatio = median(measuredTimes) / median(bareTimes);
    const watchdogWriterRatio = median(monitoredLoopTimes) / median(plainLoopTimes);
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
await writeResults("trainer", { backend, database: database.kind, repeats: REPEATS, stepsPerRepeat: STEPS_PER_REPEAT, rows });
