// Starts the PostgreSQL the suite runs against — the embedded one, or the server DATABASE_URL
// names — and builds a migrated template database that each test file clones.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres } from "../../prisma/database.ts";
import { migrate } from "../../prisma/migrate.ts";
import { adminQuery, withDatabase } from "./urls.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** A superuser URL on the test server (its maintenance database). */
    adminUrl: string;
    templateDatabase: string;
    /** Every database a test creates starts with it, so teardown can find and drop them. */
    databasePrefix: string;
    /** "embedded" or "external", for test names and skips that depend on the server. */
    databaseKind: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const log = pino({ level: "silent" });
  let adminUrl: string;
  let stopServer = async () => {};
  let dataDir: string | undefined;
  const external = process.env.DATABASE_URL;
  if (external) {
    adminUrl = external;
  } else {
    dataDir = await mkdtemp(path.join(tmpdir(), "gradguard-test-pg-"));
    const server = await startEmbeddedPostgres(dataDir, log);
    adminUrl = `${server.serverUrl}/postgres`;
    stopServer = server.stop;
  }
  const templateDatabase = `gg_template_${process.pid}`;
  await adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${templateDatabase}"`);
  await adminQuery(adminUrl, `CREATE DATABASE "${templateDatabase}"`);
  await migrate(withDatabase(adminUrl, templateDatabase), { log });

  project.provide("adminUrl", adminUrl);
  project.provide("templateDatabase", templateDatabase);
  const databasePrefix = `gg_test_${process.pid}_`;
  project.provide("databasePrefix", databasePrefix);
  project.provide("databaseKind", external ? "external" : "embedded");
  console.log(`tests run against ${external ? "the PostgreSQL in DATABASE_URL" : "an embedded PostgreSQL"}`);

  return async () => {
    const created = await adminQuery(adminUrl, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", [databasePrefix]);
    for (const { datname } of created.rows) await adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    await adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${templateDatabase}" WITH (FORCE)`);
    await stopServer();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  };
}
