// The one way server and trainer get a Prisma client: the generated client over node-postgres
// (@prisma/adapter-pg), so no native query engine is needed.
import { createHash } from "node:crypto";
import { PrismaPg } from "@prisma/adapter-pg";
import { Prisma, PrismaClient } from "./generated/client.ts";

export type { Command, Job, Step } from "./generated/client.ts";
export { Prisma, PrismaClient, JobStatus } from "./generated/client.ts";

export interface PrismaOptions {
  /** Connections this client may hold open; default 5 (node-postgres defaults to 10). */
  maxConnections?: number;
}

export function createPrismaClient(databaseUrl: string, options: PrismaOptions = {}): PrismaClient {
  const adapter = new PrismaPg({ connectionString: databaseUrl, max: options.maxConnections ?? 5 }, { statementNameGenerator: statementName });
  return new PrismaClient({ adapter });
}

const PREPARED_MARK = "/* prepared */ ";

/**
 * Marks a statement that runs at every flush or request of a hot path: each connection parses
 * and plans it once, as a named prepared statement, instead of at every call (parse and plan
 * were a fifth of PostgreSQL's time on an external run's batch of 100 steps). Its text must be
 * the same at every call, values only in parameters: a connection keeps every text it was given
 * until it closes.
 */
export function prepared(statement: Prisma.Sql): Prisma.Sql {
  return Prisma.sql`${Prisma.raw(PREPARED_MARK)}${statement}`;
}

/** A marked statement's name, from its text; an unnamed statement (undefined) for the rest. */
function statementName(query: { sql: string }): string {
  if (!query.sql.startsWith(PREPARED_MARK)) return undefined as unknown as string; // the adapter's type says string; node-postgres takes undefined as unnamed
  return `gg_${createHash("sha256").update(query.sql).digest("base64url").slice(0, 32)}`;
}
