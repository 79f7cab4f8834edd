// `npm run worker`: a standalone worker that trains queued jobs from DATABASE_URL. Start as
// many as you like, on as many machines as you like, against the same database.
import { loadConfig } from "../common/config.ts";
import { createLogger } from "../common/logger.ts";
import { onShutdown, runMain } from "../common/shutdown.ts";
import { connect } from "../prisma/connect.ts";
import { Worker } from "./worker.ts";

await runMain("gradguard worker", async () => {
  const config = loadConfig();
  if (!config.databaseUrl) {
    throw new Error("DATABASE_URL must be set: a standalone worker trains jobs from a shared PostgreSQL (npm start runs one in-process otherwise)");
  }
  if (config.workerConcurrency < 1) throw new Error("GRADGUARD_WORKER_CONCURRENCY must be at least 1 for a standalone worker");
  const log = createLogger(config, "gradguard-worker");
  const connection = await connect(config, log);
  const worker = new Worker({ prisma: connection.prisma, config: { ...config, databaseUrl: connection.database.url }, log }).start();
  onShutdown(log, async () => {
    await worker.stop();
    await connection.close();
  });
});
