import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { type AppOptions, buildApp } from "../../server/app.ts";
import { createTestDatabase, silentLog, type TestDatabase } from "./database.ts";

/** The admin token tests authenticate with (GRADGUARD_ADMIN_TOKEN). */
export const TEST_ADMIN_TOKEN = "test-admin-token-0123456789";

export const TEST_CONFIG: AppOptions["config"] = { maxSteps: 10_000, maxDatasetBytes: 64 * 1024, adminToken: TEST_ADMIN_TOKEN, corsOrigins: undefined, rateLimit: 100_000 };

export interface TestApp {
  /** app.inject as the admin; pass an authorization header (or null) to be someone else. */
  inject(options: Omit<InjectOptions, "headers"> & { headers?: Record<string, string | null> }): Promise<LightMyRequestResponse>;
  raw: FastifyInstance;
}

/** The production app (as server/main.ts builds it) on a database of its own. */
export async function createTestApp(config: Partial<typeof TEST_CONFIG> = {}): Promise<{ app: TestApp; db: TestDatabase }> {
  const db = await createTestDatabase();
  const raw = await buildApp({ prisma: db.prisma, config: { ...TEST_CONFIG, ...config }, logger: silentLog });
  await raw.ready();
  const inject: TestApp["inject"] = (options) => {
    const headers: Record<string, string> = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      if (value === null) delete headers[name];
      else headers[name] = value;
    }
    return raw.inject({ ...options, headers });
  };
  return { app: { inject, raw }, db };
}
