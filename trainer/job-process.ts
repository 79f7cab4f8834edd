// Entry point of the child process that trains one job (`job-process.ts <jobId> <attempt>`).
// Running each job in its own process means a crash or out-of-memory in tfjs takes down this
// process only; the worker notices and records it. Every write to the Job row is fenced by the
// attempt number, so a process that lost its job can no longer change it.
import pg from "pg";
import { ConfigError, loadConfig } from "../common/config.ts";
import { createLogger, type Logger } from "../common/logger.ts";
import { createPrismaClient, type PrismaClient } from "../prisma/client.ts";
import { readEveryFor, resolveBackend } from "./backend.ts";
import type { PendingCommand } from "./commands.ts";
import { watchJob } from "./job-control.ts";
import { loadDataset } from "./data/dataset-store.ts";
import { deleteCheckpointsAfter, loadCheckpoints, saveCheckpoint } from "./checkpoint-store.ts";
import { parseJobSpec } from "./spec.ts";
import { StepWriter } from "./step-writer.ts";
import { prepareTraining } from "./train-loop.ts";
import { EXIT_INTERRUPTED, TRAINER_LOCK_CLASS } from "./worker.ts";

async function main(): Promise<number> {
  const [jobId, attemptArg] = process.argv.slice(2);
  const attempt = Number(attemptArg);
  if (!jobId || !Number.isInteger(attempt)) {
    console.error("usage: job-process.ts <jobId> <attempt>");
    return 2;
  }
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    console.error(error instanceof ConfigError ? error.message : error);
    return 2;
  }
  if (!config.databaseUrl) {
    console.error("job-process: DATABASE_URL must be set by the worker");
    return 2;
  }
  const log = createLogger(config, "trainer").child({ jobId, attempt });
  const prisma = createPrismaClient(config.databaseUrl, { maxConnections: 2 });
  const lock = await holdTrainerLock(config.databaseUrl, jobId, log);
  try {
    return await runJob(prisma, config.databaseUrl, jobId, attempt, config, log);
  } finally {
    await prisma.$disconnect();
    await lock.end().catch(() => {});
  }
}

/**
 * Says "a trainer of this job is alive" to the API (see TRAINER_LOCK_CLASS) until this process
 * ends: the lock goes with its connection, so a crash releases it too. Not waited for: a
 * previous trainer of the job that is still stopping is fenced by the attempt number anyway.
 */
async function holdTrainerLock(databaseUrl: string, jobId: string, log: Logger): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: databaseUrl });
  client.on("error", (error) => log.warn({ err: error }, "trainer lock connection lost"));
  await client.connect();
  const { rows } = await client.query<{ held: boolean }>("SELECT pg_try_advisory_lock($1, hashtext($2)) AS held", [TRAINER_LOCK_CLASS, jobId]);
  if (!rows[0]?.held) log.warn("another trainer of this job is still stopping");
  return client;
}

async function runJob(
  prisma: PrismaClient,
  databaseUrl: string,
  jobId: string,
  attempt: number,
  config: ReturnType<typeof loadConfig>,
  log: Logger,
): Promise<number> {
  const fence = { id: jobId, status: "running" as const, attempts: attempt };
  let stopRequested = false;
  const requestStop = (reason: string) => {
    if (!stopRequested) log.info({ reason }, "stopping after the current step");
    stopRequested = true;
  };
  process.on("SIGTERM", () => requestStop("SIGTERM"));
  process.on("SIGINT", () => requestStop("SIGINT"));
  // The worker is gone (killed, crashed): hand the job back instead of training unsupervised.
  process.on("disconnect", () => requestStop("worker disconnected"));

  const commands: PendingCommand[] = [];
  const control = await watchJob(databaseUrl, { jobId, attempt }, log, {
    onCancelled: (status) => requestStop(`job is now ${status}`),
    onCommands: (fresh) => commands.push(...fresh),
  });
  // Acknowledgements are written in order, off the training path.
  let acknowledged: Promise<unknown> = Promise.resolve();
  const acknowledge = (write: () => Promise<unknown>) => {
    acknowledged = acknowledged.then(write).catch((error: unknown) => log.warn({ err: error }, "could not record a command's outcome"));
  };
  try {
    const job = await prisma.job.findUnique({ where: { id: jobId } });
    if (!job) throw new Error(`job ${jobId} does not exist`);
    const spec = parseJobSpec(job.spec, config);
    const backend = await resolveBackend(config.backend, log);
    const dataset = spec.data.kind === "csv" ? await loadDataset(prisma, spec.data.datasetId) : undefined;
    const readEvery = readEveryFor(backend, config.readEvery);
    const training = prepareTraining(spec, { dataset, readEvery });
    const checkpoints = await loadCheckpoints(prisma, jobId);
    await training.restore(checkpoints);
    const resumeAt = checkpoints.at(-1)?.step ?? 0;
    // Steps past the checkpoint are trained again (identically): drop the old rows. Events are
    // kept; the same events come again and are not inserted twice (see insertSteps).
    await prisma.$transaction([
      prisma.step.deleteMany({ where: { jobId, step: { gte: resumeAt } } }),
      prisma.job.updateMany({ where: fence, data: { backend, layerNames: training.layerNames, lastStep: resumeAt > 0 ? resumeAt - 1 : null } }),
    ]);
    log.info({ backend, readEvery, steps: spec.steps, resumeAt, layers: training.layerNames.length }, resumeAt > 0 ? "training resumed from a checkpoint" : "training started");

    const writer = new StepWriter(prisma, jobId, log);
    let checkpointsSaved: Promise<void> = Promise.resolve();
    const summary = await training.run({
      onStep: (record) => writer.push(record),
      onEvent: (event) => writer.pushEvent(event),
      // Saved in the background, one after another: the next step does not wait for it.
      onCheckpoint: (taken) => {
        checkpointsSaved = checkpointsSaved.then(() =>
          // Steps before the checkpoint go to the database first: a job resumed from it must
          // find them there (it trains again only from the checkpoint on).
          writer
            .drain(taken.step - 1)
            .then(() => saveCheckpoint(prisma, jobId, taken, spec.checkpoint.keep))
            .catch((error: unknown) => {
            log.error({ err: error, step: taken.step }, "saving a checkpoint failed; training goes on");
            writer.pushEvent({ step: taken.step - 1, kind: "checkpointFailed", severity: "warning", message: `checkpoint of step ${taken.step} could not be saved: ${reasonOf(error)}`, detail: {} });
          }),
        );
      },
      onCheckpointsDiscarded: (step) => {
        checkpointsSaved = checkpointsSaved.then(() => deleteCheckpointsAfter(prisma, jobId, step));
      },
      shouldStop: () => stopRequested,
      takeCommands: () => commands.splice(0),
      onCommandApplied: (command, step, error) =>
        acknowledge(() =>
          prisma.command.update({
            where: { id: BigInt(command.id) },
            data: { status: error ? "rejected" : "applied", appliedAt: new Date(), appliedStep: step, error },
          }),
        ),
      onPausedChange: (paused) => acknowledge(() => prisma.job.updateMany({ where: fence, data: { paused } })),
    });
    training.dispose();
    await checkpointsSaved;
    await acknowledged;
    await writer.close();
    if (writer.droppedRows > 0) throw new Error(`${writer.droppedRows} step rows were lost while the database was unreachable`);

    if (summary.diverged !== null) {
      await prisma.job.updateMany({ where: fence, data: { status: "diverged", error: summary.diverged, finishedAt: new Date(), workerId: null } });
      log.warn({ stepsRun: summary.stepsRun, reason: summary.diverged }, "training stopped: diverged");
      return 0;
    }
    if (summary.stoppedByCommand) {
      await prisma.job.updateMany({
        where: fence,
        data: { status: "cancelled", paused: false, error: `stopped by a stop command before step ${summary.stepsRun}; checkpoints kept`, finishedAt: new Date(), workerId: null },
      });
      log.info({ stepsRun: summary.stepsRun }, "training stopped by command");
      return 0;
    }
    if (summary.stopped) {
      await prisma.job.updateMany({ where: fence, data: { status: "queued", workerId: null, error: "interrupted; will resume from its last checkpoint" } });
      log.info({ stepsRun: summary.stepsRun }, "training interrupted; job returned to the queue");
      return EXIT_INTERRUPTED;
    }
    await prisma.job.updateMany({ where: fence, data: { status: "succeeded", finishedAt: new Date(), workerId: null } });
    log.info({ stepsRun: summary.stepsRun, finalLoss: summary.finalLoss, finalValLoss: summary.finalValLoss }, "training succeeded");
    return 0;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    log.error({ err: error }, "training failed");
    await prisma.job
      .updateMany({ where: fence, data: { status: "failed", error: message, finishedAt: new Date(), workerId: null } })
      .catch((updateError: unknown) => log.error({ err: updateError }, "could not record the failure"));
    return 1;
  } finally {
    await control.close();
  }
}

process.exit(await main());

/**
 * The database's reason for a failed write, in one line. Prisma's messages add the call site
 * (a path and line of this code) and a dump of the query around the reason, none of which an
 * event shown to users should carry; the reason is their last line.
 */
function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n").map((line) => line.trim()).filter(Boolean).at(-1) ?? message;
}
