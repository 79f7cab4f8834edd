// `npm start`: database (embedded or external) → migrations → API on HOST:PORT → an
// in-process worker. Only wiring lives here; the app is built in app.ts.
import { loadConfig } from "../common/config.ts";
import { createLogger } from "../common/logger.ts";
import { onShutdown, runMain } from "../common/shutdown.ts";
import { connect } from "../prisma/connect.ts";
import { Worker } from "../trainer/worker.ts";
import { buildApp } from "./app.ts";
import { ensureAdminToken } from "./tokens.ts";

await runMain("gradguard", async () => {
  const config = loadConfig();
  const log = createLogger(config, "gradguard");
  const connection = await connect(config, log);
  const firstAdminToken = await ensureAdminToken(connection.prisma, config.adminToken);
  const app = await buildApp({ prisma: connection.prisma, config, logger: log, databaseUrl: connection.database.url });
  const address = await app.listen({ port: config.port, host: config.host });
  log.info({ url: address }, `gradguard is serving ${address}`);
  if (firstAdminToken) {
    // Shown once, on the terminal only (not in the log): only its hash is stored.
    process.stderr.write(
      `\nThe first admin API token (shown this once; only its hash is stored):\n\n  ${firstAdminToken}\n\n` +
        `Use it as "Authorization: Bearer <token>", and create others with POST ${address}/api/v1/tokens.\n\n`,
    );
  }

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
