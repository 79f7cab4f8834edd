// Applies prisma/migrations/<timestamp>_<name>/migration.sql at start-up, the way
// `prisma migrate deploy` would (that command needs a schema engine that cannot be downloaded
// here): in name order, each in its own transaction, under Prisma's own advisory lock, recorded
// in _prisma_migrations exactly as Prisma records them, so either tool sees the other's work.
import { createHash, randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import type { Logger } from "../common/logger.ts";

export const MIGRATIONS_DIR = fileURLToPath(new URL("./migrations", import.meta.url));

/** The key `prisma migrate` locks with, so this runner and Prisma's exclude each other too. */
const PRISMA_MIGRATE_LOCK_KEY = 72707369;

const CREATE_MIGRATIONS_TABLE = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

export interface Migration {
  name: string;
  sql: string;
  /** sha256 of migration.sql, hex, as Prisma computes it. */
  checksum: string;
}

export class MigrationError extends Error {
  override name = "MigrationError";
}

export async function readMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  return Promise.all(
    names.map(async (name) => {
      const sql = await readFile(path.join(dir, name, "migration.sql"), "utf8");
      return { name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
    }),
  );
}

interface AppliedRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

/** Brings the database up to date; returns the names of the migrations it applied. */
export async function migrate(
  databaseUrl: string,
  options: { log: Logger; migrationsDir?: string },
): Promise<{ applied: string[] }> {
  const { log } = options;
  const migrations = await readMigrations(options.migrationsDir);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    // Session lock: a second process starting now waits here, then finds nothing to do.
    await client.query("SELECT pg_advisory_lock($1)", [PRISMA_MIGRATE_LOCK_KEY]);
    await client.query(CREATE_MIGRATIONS_TABLE);
    const rows = (
      await client.query<AppliedRow>(
        `SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations" ORDER BY started_at`,
      )
    ).rows.filter((row) => row.rolled_back_at === null);
    const recorded = new Map(rows.map((row) => [row.migration_name, row]));

    for (const row of rows) {
      if (row.finished_at === null) {
        throw new MigrationError(
          `migration ${row.migration_name} started but never finished in this database; ` +
            "fix the database by hand, then mark it rolled back (prisma migrate resolve --rolled-back) before starting again",
        );
      }
    }
    const local = new Set(migrations.map((m) => m.name));
    const unknown = rows.filter((row) => !local.has(row.migration_name)).map((row) => row.migration_name);
    if (unknown.length > 0) {
      log.warn({ migrations: unknown }, "the database has migrations this version of gradguard does not know (is a newer version running?)");
    }

    const applied: string[] = [];
    for (const migration of migrations) {
      const done = recorded.get(migration.name);
      if (done) {
        if (done.checksum !== migration.checksum) {
          throw new MigrationError(
            `migration ${migration.name} was edited after it was applied (checksum ${done.checksum.slice(0, 12)}… in the database, ` +
              `${migration.checksum.slice(0, 12)}… on disk). Restore the file and put the change in a new migration.`,
          );
        }
        continue;
      }
      await applyOne(client, migration);
      applied.push(migration.name);
      log.info({ migration: migration.name }, "applied migration");
    }
    if (applied.length === 0) log.debug("database schema is up to date");
    return { applied };
  } finally {
    // Closing the session releases the advisory lock even if the unlock is never sent.
    await client.end().catch(() => {});
  }
}

async function applyOne(client: pg.Client, migration: Migration): Promise<void> {
  await client.query("BEGIN");
  try {
    const startedAt = new Date();
    await client.query(migration.sql);
    await client.query(
      `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count)
       VALUES ($1, $2, now(), $3, NULL, NULL, $4, 1)`,
      [randomUUID(), migration.checksum, migration.name, startedAt],
    );
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw new MigrationError(`migration ${migration.name} failed and was rolled back: ${(error as Error).message}`);
  }
}
