// The one way server and trainer get a Prisma client: the generated client over node-postgres
// (@prisma/adapter-pg), so no native query engine is needed.
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "./generated/client.ts";

export type { Command, Job, Step } from "./generated/client.ts";
export { Prisma, PrismaClient, JobStatus } from "./generated/client.ts";

export interface PrismaOptions {
  /** Connections this client may hold open; default 5 (node-postgres defaults to 10). */
  maxConnections?: number;
}

export function createPrismaClient(databaseUrl: string, options: PrismaOptions = {}): PrismaClient {
  const adapter = new PrismaPg({ connectionString: databaseUrl, max: options.maxConnections ?? 5 });
  return new PrismaClient({ adapter });
}
