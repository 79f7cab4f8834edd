// `npm start`: database (embedded or external) → migrations → API on HOST:PORT → an
// in-process worker. Only wiring lives here; the app is built in app.ts.
import { loadConfig } from "../common/config.ts";
import { createLogger } from "../common/logger.ts";
import { onShutdown, runMain } from "../common/shutdown.ts";
import { connect } from "../prisma/connect.ts";
import { Worker } from "../trainer/worker.ts";
import { buildApp } from "./app.ts";

await runMain("gradguard", async () => {
  const config = loadConfig();
  const log = createLogger(config, "gradguard");
  const connection = await connect(config, log);
  const app = await buildApp({ prisma: connection.prisma, config, logger: log });
  const address = await app.listen({ port: config.port, host: config.host });
  log.info({ url: address }, `gradguard is serving ${address}`);

  const worker =
    config.workerConcurrency > 0
      ? new Worker({ prisma: connection.prisma, config: { ...config, databaseUrl: connection.database.url }, log }).start()
      : undefined;

  onShutdown(log, async () => {
    await app.close();
    await worker?.stop();
    await connection.close();
  });
});
