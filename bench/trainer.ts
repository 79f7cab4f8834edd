// `npm run bench:trainer [pairs] [groups]`: what gradguard's monitoring costs the training it
// watches, as two ratios measured side by side on each reference workload, and their product.
// 1. The norms: the same tfjs step (same model, same batch) bare — variableGrads then
//    applyGradients — and measured — the production measureGradients (loss, global and
//    per-layer norms, weight norm, update norm) then applyUpdate. The two take turns in blocks
//    of 10 steps (A B, B A, …) and the ratio is the median of the pairs' ratios. A block of 10
//    steps holds exactly one weight-norm measurement, as every 10 steps of a job do.
// 2. The watchdog and the writer: ONE run of the training loop (trainer/train-loop.ts) in which
//    they are on for some steps and off for others, step by step in turns A B B A, each step
//    timed from the start of its iteration to the start of the next (so what runs between
//    steps, the writer's I/O, counts for the step before it). When on, the spec's watchdog
//    decides the step and its row goes to a StepWriter on a real database; when off, the loop
//    runs as with no guard and no callbacks. Steps are summed in groups of at least 20 of each
//    kind, and the ratio is the median of the groups' ratios.
//
// Why step by step: this VM's speed wanders by ±20% from one 10 ms block of plain JavaScript
// to the next, with no other process running (measured). Separate loops of 30 steps, which
// this benchmark timed before, put the MLP's ratio anywhere from 0.976 to 1.035 for the same
// code; adjacent steps of one run share the VM's state, the model and its memory layout.
// The writer flushes every 200 ms's worth of monitored steps (timed in the run's warm-up), as its
// timer does in a job (about 21 rows on the MLP, 8 on the RNN), but each flush is started at the
// beginning of a monitored step rather than by the timer, so that all its work — building the
// statement, the round trip's handling, PostgreSQL's share of the machine — falls in monitored
// steps; a timer would land half of it in the others. Checkpoints are off: taking one is
// training's cost in both, and at a fixed period it would always fall on the same turn.
import { pino } from "pino";
import { createPrismaClient } from "../prisma/client.ts";
import { migrate } from "../prisma/migrate.ts";
import { resolveBackend } from "../trainer/backend.ts";
import { createGuard } from "../trainer/guard.ts";
import { DEFAULT_FLUSH_INTERVAL_MS, StepWriter } from "../trainer/step-writer.ts";
import { NO_DECISION, prepareTraining, type StepGuard } from "../trainer/train-loop.ts";
import { benchDatabase } from "./database.ts";
import { writeResults } from "./results.ts";
import { alternate, MLP, median, msPerStep, pairedRatio, SIMPLE_RNN, setupSteps, type Workload, workloadSpec } from "./workloads.ts";

const NORMS_PAIRS = Number(process.argv[2] ?? 99);
const NORMS_BLOCK_STEPS = 10;
const GROUPS = Number(process.argv[3] ?? 99);
/** Steps of each kind in a group, at least: enough to hold one flush on the MLP. */
const GROUP_STEPS = 20;
/** Monitored steps before the timed ones; the second half's median sets the flushes' size. */
const WARM_UP_STEPS = 40;
const TARGET = 1.03;

const log = pino({ level: "warn" });
const backend = await resolveBackend(undefined, log);
const database = await benchDatabase("trainer");
await migrate(database.url, { log });
const prisma = createPrismaClient(database.url);

/**
 * The loop's ratio (see the top of this file): median ms per step with monitoring off and on,
 * the median of the groups' ratios, and how many rows each flush held.
 */
async function loopRatio(workload: Workload) {
  // Long enough for every step wanted: the loop is ended by shouldStop once the groups are timed.
  const spec = { ...workloadSpec(workload, 10_000_000), checkpoint: { everySteps: 10_000_001, keep: 1 } };
  let monitored = true;
  let watchdog: StepGuard | undefined;
  const guard: StepGuard = {
    decide: (observation) => (monitored && watchdog ? watchdog.decide(observation) : NO_DECISION),
    snapshot: () => watchdog?.snapshot(),
    restore: (snapshot) => watchdog?.restore(snapshot),
    afterRollback: (restored) => watchdog?.afterRollback(restored),
  };
  const training = prepareTraining(spec, { guard });
  watchdog = createGuard(spec.watchdog, training.layerNames);
  const job = await prisma.job.create({ data: { name: `bench-trainer ${workload.name}`, spec: {}, layerNames: training.layerNames } });
  // Its timer never fires: flushes are started below.
  const writer = new StepWriter(prisma, job.id, log, { flushIntervalMs: 3_600_000 });

  const warmUp: number[] = []; // monitored, untimed: kernels compiled, the watchdog past its warm-up
  let rowsPerFlush = 0;
  let perGroup = 0; // steps of each kind in a group
  let on: number[] = [];
  let off: number[] = [];
  let step = 0;
  let iterationStarted = 0;
  let lastWritten = -1;
  let unflushed = 0;
  await training.run({
    // Called once at the start of each iteration, before its step: the clock and the switch.
    takeCommands: () => {
      const now = performance.now();
      const elapsed = now - iterationStarted;
      iterationStarted = now;
      const ended = step - 1; // the step that just ended
      if (ended >= 0 && ended < WARM_UP_STEPS) warmUp.push(elapsed);
      if (step === WARM_UP_STEPS) {
        // As many rows as the writer's timer gathers from monitored steps of this speed.
        rowsPerFlush = Math.max(1, Math.round(DEFAULT_FLUSH_INTERVAL_MS / median(warmUp.slice(WARM_UP_STEPS / 2))));
        perGroup = rowsPerFlush * Math.ceil(GROUP_STEPS / rowsPerFlush);
        on = Array.from({ length: GROUPS }, () => 0);
        off = Array.from({ length: GROUPS }, () => 0);
      }
      const timed = ended - WARM_UP_STEPS;
      if (timed >= 0) {
        const sums = monitored ? on : off;
        const group = Math.floor(timed / (2 * perGroup));
        sums[group] = (sums[group] as number) + elapsed;
      }
      const turn = step - WARM_UP_STEPS;
      monitored = turn < 0 || (turn % 2 === 0) === (Math.floor(turn / 2) % 2 === 0); // A B B A
      if (monitored && turn >= 0 && unflushed >= rowsPerFlush) {
        unflushed = 0;
        void writer.drain(lastWritten); // starts the flush; the loop never waits for it
      }
      step++;
      return [];
    },
    shouldStop: () => step > WARM_UP_STEPS && step - 1 - WARM_UP_STEPS >= GROUPS * 2 * perGroup,
    onStep: (record) => {
      if (!monitored) return;
      writer.push(record);
      lastWritten = record.step;
      unflushed++;
    },
    onEvent: (event) => writer.pushEvent(event),
  });
  await writer.close();
  training.dispose();
  const perStep = (sums: number[]) => median(sums) / perGroup;
  return { rowsPerFlush, plainStepMs: perStep(off), monitoredStepMs: perStep(on), ratio: median(on.map((t, i) => t / (off[i] as number))) };
}

const rows = [];
try {
  for (const workload of [MLP, SIMPLE_RNN]) {
    const { bare, measured, dispose } = setupSteps(workloadSpec(workload));
    await msPerStep(bare, 3 * NORMS_BLOCK_STEPS); // warm-up: kernels compiled, memory allocated
    await msPerStep(measured, 3 * NORMS_BLOCK_STEPS);
    const [bareTimes, measuredTimes] = await alternate(NORMS_PAIRS, () => msPerStep(bare, NORMS_BLOCK_STEPS), () => msPerStep(measured, NORMS_BLOCK_STEPS));
    dispose();
    const normsRatio = pairedRatio(measuredTimes, bareTimes);
    const loop = await loopRatio(workload);
    const ratio = normsRatio * loop.ratio;
    rows.push({
      workload: workload.name,
      bareMs: median(bareTimes),
      measuredMs: median(measuredTimes),
      normsRatio,
      plainStepMs: loop.plainStepMs,
      monitoredStepMs: loop.monitoredStepMs,
      rowsPerFlush: loop.rowsPerFlush,
      watchdogWriterRatio: loop.ratio,
      ratio,
      target: TARGET,
      met: ratio <= TARGET,
    });
    console.log(
      `${workload.name}: norms ${normsRatio.toFixed(3)} (bare ${median(bareTimes).toFixed(2)} ms, measured ${median(measuredTimes).toFixed(2)} ms); ` +
        `watchdog + writer ${loop.ratio.toFixed(3)} (loop ${loop.plainStepMs.toFixed(2)} ms → ${loop.monitoredStepMs.toFixed(2)} ms, a flush every ${loop.rowsPerFlush} rows); ` +
        `all ${ratio.toFixed(3)} (target ≤ ${TARGET})`,
    );
  }
} finally {
  await prisma.$disconnect();
  await database.close();
}
await writeResults("trainer", { backend, database: database.kind, normsPairs: NORMS_PAIRS, normsBlockSteps: NORMS_BLOCK_STEPS, groups: GROUPS, groupSteps: GROUP_STEPS, rows });
