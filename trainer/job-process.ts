// Entry point of the child process that trains one job (`job-process.ts <jobId> <attempt>`).
// Running each job in its own process means a crash or out-of-memory in tfjs takes down this
// process only; the worker notices and records it. Every write to the Job row is fenced by the
// attempt number, so a process that lost its job can no longer change it.
import { ConfigError, loadConfig } from "../common/config.ts";
import { createLogger, type Logger } from "../common/logger.ts";
import { createPrismaClient, type PrismaClient } from "../prisma/client.ts";
import { resolveBackend } from "./backend.ts";
import type { PendingCommand } from "./commands.ts";
import { watchJob } from "./job-control.ts";
import { loadDataset } from "./data/dataset-store.ts";
import { deleteCheckpointsAfter, loadCheckpoints, saveCheckpoint } from "./checkpoint-store.ts";
import { parseJobSpec } from "./spec.ts";
import { StepWriter } from "./step-writer.ts";
import { prepareTraining } from "./train-loop.ts";
import { EXIT_INTERRUPTED } from "./worker.ts";

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
  try {
    return await runJob(prisma, config.databaseUrl, jobId, attempt, config, log);
  } finally {
    await prisma.$disconnect();
  }
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
    const training = prepareTraining(spec, { dataset });
    const checkpoints = await loadCheckpoints(prisma, jobId);
    await training.restore(checkpoints);
    const resumeAt = checkpoints.at(-1)?.step ?? 0;
    // Steps past the checkpoint are trained again (identically): drop the old rows. Events are
    // kept; the same events come again and are not inserted twice (see insertSteps).
    await prisma.$transaction([
      prisma.step.deleteMany({ where: { jobId, step: { gte: resumeAt } } }),
      prisma.job.updateMany({ where: fence, data: { backend, layerNames: training.layerNames, lastStep: resumeAt > 0 ? resumeAt - 1 : null } }),
    ]);
    log.info({ backend, steps: spec.steps, resumeAt, layers: training.layerNames.length }, resumeAt > 0 ? "training resumed from a checkpoint" : "training started");

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
            writer.pushEvent({ step: taken.step - 1, kind: "checkpointFailed", severity: "warning", message: `checkpoint of step ${taken.step} could not be saved: ${String(error)}`, detail: {} });
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
