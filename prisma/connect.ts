// What every gradguard process does first: find (or start) its PostgreSQL, bring the schema up
// to date, and open a Prisma client on it.
import type { Logger } from "../common/logger.ts";
import { createPrismaClient, type PrismaClient } from "./client.ts";
import { type Database, openDatabase } from "./database.ts";
import { migrate } from "./migrate.ts";

export interface Connection {
  database: Database;
  prisma: PrismaClient;
  /** Closes the client, then stops the embedded server if this process started it. */
  close(): Promise<void>;
}

export async function connect(options: { databaseUrl: string | undefined; dataDir: string }, log: Logger): Promise<Connection> {
  const database = await openDatabase(options, log);
  try {
    await migrate(database.url, { log });
  } catch (error) {
    await database.stop();
    throw error;
  }
  const prisma = createPrismaClient(database.url);
  return {
    database,
    prisma,
    close: async () => {
      await prisma.$disconnect();
      await database.stop();
    },
  };
}
