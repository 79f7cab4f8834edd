// Builds the Fastify application as a plugin-composed instance; server/main.ts listens with
// it and tests build exactly the same thing.
import cors from "@fastify/cors";
import helmet from "@fastify/helmet";
import rateLimit from "@fastify/rate-limit";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { type Config, loadConfig } from "../common/config.ts";
import type { Logger } from "../common/logger.ts";
import type { PrismaClient } from "../prisma/client.ts";
import alertsPlugin from "./alerts/plugin.ts";
import { HttpProblem, registerErrorHandling } from "./errors.ts";
import livePlugin from "./live/plugin.ts";
import authPlugin from "./plugins/auth.ts";
import prismaPlugin from "./plugins/prisma.ts";
import alertRoutes from "./routes/alerts.ts";
import commandRoutes from "./routes/commands.ts";
import datasetRoutes from "./routes/datasets.ts";
import eventRoutes from "./routes/events.ts";
import healthRoutes from "./routes/health.ts";
import jobRoutes from "./routes/jobs.ts";
import metricsRoutes from "./routes/metrics.ts";
import presetRoutes from "./routes/presets.ts";
import runRoutes from "./routes/runs.ts";
import tokenRoutes from "./routes/tokens.ts";
import webhookRoutes from "./routes/webhooks.ts";
import webPlugin, { CONTENT_SECURITY_POLICY } from "./plugins/web.ts";
import { hashToken } from "./tokens.ts";
import { validatorCompiler } from "./validation.ts";

export interface AppOptions {
  prisma: PrismaClient;
  /** `alerts` defaults to the defaults of common/config.ts. */
  config: Pick<Config, "maxSteps" | "maxDatasetBytes" | "adminToken" | "corsOrigins" | "rateLimit"> & Partial<Pick<Config, "alerts" | "maxParameters" | "maxBatchValues">>;
  logger: Logger;
  /** The database the Prisma client uses, for LISTEN connections; without it they poll. */
  databaseUrl?: string;
}

export async function buildApp({ prisma, config, logger, databaseUrl }: AppOptions): Promise<FastifyInstance> {
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

  await app.register(helmet, { global: true, contentSecurityPolicy: CONTENT_SECURITY_POLICY });
  if (config.corsOrigins) await app.register(cors, { origin: config.corsOrigins === "*" ? "*" : config.corsOrigins });
  await app.register(rateLimit, {
    max: config.rateLimit,
    timeWindow: "1 minute",
    // Per token when there is one (hashed: the key is kept in memory), else per address.
    keyGenerator: (request) => (request.headers.authorization ? hashToken(request.headers.authorization) : request.ip),
    errorResponseBuilder: (_request, context) =>
      new HttpProblem(429, "Too Many Requests", `more than ${context.max} requests in ${context.after === "1 minute" ? "a minute" : context.after}; retry in ${Math.ceil(context.ttl / 1000)} s`),
  });
  await app.register(swagger, {
    openapi: {
      info: { title: "gradguard API", version: "1", description: "Train neural networks with TensorFlow.js; every step guarded against gradient explosion." },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "An API token (see /api/v1/tokens)" } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: "/docs", staticCSP: true });

  await app.register(prismaPlugin, { prisma });
  await app.register(authPlugin, { prisma, adminToken: config.adminToken });
  await app.register(livePlugin, { prisma, log: logger, adminToken: config.adminToken, databaseUrl, corsOrigins: config.corsOrigins });
  await app.register(alertsPlugin, { settings: config.alerts ?? loadConfig({}).alerts, databaseUrl });
  await app.register(metricsRoutes, { adminToken: config.adminToken });
  await app.register(
    async (api) => {
      await api.register(healthRoutes);
      await api.register(jobRoutes, { limits: { maxSteps: config.maxSteps, maxParameters: config.maxParameters, maxBatchValues: config.maxBatchValues } });
      await api.register(eventRoutes);
      await api.register(datasetRoutes, { maxBytes: config.maxDatasetBytes });
      await api.register(commandRoutes);
      await api.register(tokenRoutes);
      await api.register(runRoutes);
      await api.register(presetRoutes);
      await api.register(alertRoutes);
      await api.register(webhookRoutes);
    },
    { prefix: "/api/v1" },
  );
  await app.register(webPlugin);
  return app;
}
