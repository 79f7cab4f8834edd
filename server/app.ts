// Builds the Fastify application as a plugin-composed instance; server/main.ts listens with
// it and tests build exactly the same thing.
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Config } from "../common/config.ts";
import type { Logger } from "../common/logger.ts";
import type { PrismaClient } from "../prisma/client.ts";
import { registerErrorHandling } from "./errors.ts";
import prismaPlugin from "./plugins/prisma.ts";
import commandRoutes from "./routes/commands.ts";
import datasetRoutes from "./routes/datasets.ts";
import healthRoutes from "./routes/health.ts";
import jobRoutes from "./routes/jobs.ts";
import { validatorCompiler } from "./validation.ts";

export interface AppOptions {
  prisma: PrismaClient;
  config: Pick<Config, "maxSteps" | "maxDatasetBytes">;
  logger: Logger;
}

export async function buildApp({ prisma, config, logger }: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Job specs are small; anything bigger than this is a mistake or an attack.
    bodyLimit: 1024 * 1024,
    genReqId: () => crypto.randomUUID(),
    requestIdHeader: false,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  // The API speaks JSON only: plain text gets 415, not a confusing "body must be object".
  app.removeContentTypeParser("text/plain");
  registerErrorHandling(app);
  await app.register(prismaPlugin, { prisma });
  await app.register(
    async (api) => {
      await api.register(healthRoutes);
      await api.register(jobRoutes, { limits: { maxSteps: config.maxSteps } });
      await api.register(datasetRoutes, { maxBytes: config.maxDatasetBytes });
      await api.register(commandRoutes);
    },
    { prefix: "/api/v1" },
  );
  return app;
}
