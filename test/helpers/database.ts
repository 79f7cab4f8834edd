// A database of one's own for a test file: a clone of the migrated template (fast), or an
// empty one for tests of the migrations themselves. The global teardown drops them all.
import { randomUUID } from "node:crypto";
import { pino } from "pino";
import { inject } from "vitest";
import { createPrismaClient, type PrismaClient } from "../../prisma/client.ts";
import { adminQuery, withDatabase } from "./urls.ts";

export interface TestDatabase {
  url: string;
  name: string;
  prisma: PrismaClient;
  query<T extends Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
}

export async function createTestDatabase(options: { empty?: boolean } = {}): Promise<TestDatabase> {
  const adminUrl = inject("adminUrl");
  const name = newDatabaseName();
  const template = options.empty ? "template0" : inject("templateDatabase");
  // Two files cloning the template at the same instant can collide; a retry settles it.
  for (let attempt = 0; ; attempt++) {
    try {
      await adminQuery(adminUrl, `CREATE DATABASE "${name}" TEMPLATE "${template}"`);
      break;
    } catch (error) {
      if (attempt >= 10 || !String(error).includes("being accessed by other users")) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 200));
    }
  }
  const url = withDatabase(adminUrl, name);
  const prisma = createPrismaClient(url, { maxConnections: 3 });
  return {
    url,
    name,
    prisma,
    query: async (sql, params = []) => (await adminQuery(url, sql, params)).rows,
  };
}

/** A database that does not exist yet; `create()` makes it from the template. */
export function futureDatabase(): { url: string; create(): Promise<void> } {
  const adminUrl = inject("adminUrl");
  const name = newDatabaseName();
  return {
    url: withDatabase(adminUrl, name),
    create: async () => {
      await adminQuery(adminUrl, `CREATE DATABASE "${name}" TEMPLATE "${inject("templateDatabase")}"`);
    },
  };
}

function newDatabaseName(): string {
  return `${inject("databasePrefix")}${randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

export const silentLog = pino({ level: "silent" });
