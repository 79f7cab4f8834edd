import type { FastifyInstance } from "fastify";
import { buildApp } from "../../server/app.ts";
import { createTestDatabase, silentLog, type TestDatabase } from "./database.ts";

/** The production app (as server/main.ts builds it) on a database of its own. */
export async function createTestApp(config = { maxSteps: 10_000, maxDatasetBytes: 64 * 1024 }): Promise<{ app: FastifyInstance; db: TestDatabase }> {
  const db = await createTestDatabase();
  const app = await buildApp({ prisma: db.prisma, config, logger: silentLog });
  await app.ready();
  return { app, db };
}
