// Entry point of the child process that trains one job (`job-process.ts <jobId> <attempt>`).
// Running each job in its own process means a crash or out-of-memory in tfjs takes down this
// process only; the worker notices and records it. Every write to the Job row is fenced by the
// attempt number, so a process that lost its job can no longer change it.
import { ConfigError, loadConfig } from "../common/config.ts";
import { createLogger, type Logger } from "../common/logger.ts";
import { createPrismaClient, type PrismaClient } from "../prisma/client.ts";
import { resolveBackend } from "./backend.ts";
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
    return await runJob(prisma, jobId, attempt, config, log);
  } finally {
    await prisma.$disconnect();
  }
}

async function runJob(
  prisma: PrismaClient,
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

  try {
    const job = await prisma.job.findUnique({ where: { id: jobId } });
    if (!job) throw new Error(`job ${jobId} does not exist`);
    const spec = parseJobSpec(job.spec, config);
    const backend = await resolveBackend(config.backend, log);
    const training = prepareTraining(spec);
    // No checkpoints yet: every attempt starts from step 0, so earlier rows are replaced.
    await prisma.$transaction([
      prisma.step.deleteMany({ where: { jobId } }),
      prisma.job.updateMany({ where: fence, data: { backend, layerNames: training.layerNames, lastStep: null } }),
    ]);
    log.info({ backend, steps: spec.steps, layers: training.layerNames.length }, "training started");

    const writer = new StepWriter(prisma, jobId, log);
    const summary = await training.run({ onStep: (record) => writer.push(record), shouldStop: () => stopRequested });
    training.dispose();
    await writer.close();
    if (writer.droppedRows > 0) throw new Error(`${writer.droppedRows} step rows were lost while the database was unreachable`);

    if (summary.stopped) {
      await prisma.job.updateMany({ where: fence, data: { status: "queued", workerId: null, error: "interrupted by a shutdown; will run again" } });
      log.info({ stepsRun: summary.stepsRun }, "training interrupted; job returned to the queue");
      return EXIT_INTERRUPTED;
    }
    await prisma.job.updateMany({ where: fence, data: { status: "succeeded", finishedAt: new Date(), workerId: null } });
    log.info({ stepsRun: summary.stepsRun, finalLoss: summary.finalLoss }, "training succeeded");
    return 0;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    log.error({ err: error }, "training failed");
    await prisma.job
      .updateMany({ where: fence, data: { status: "failed", error: message, finishedAt: new Date(), workerId: null } })
      .catch((updateError: unknown) => log.error({ err: updateError }, "could not record the failure"));
    return 1;
  }
}

process.exit(await main());
