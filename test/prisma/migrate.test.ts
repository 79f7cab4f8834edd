import { createHash } from "node:crypto";
import { appendFile, cp, mkdir, mkdtemp, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { MIGRATIONS_DIR, MigrationError, migrate, readMigrations } from "../../prisma/migrate.ts";
import { createTestDatabase, silentLog as log } from "../helpers/database.ts";

async function copyOfMigrations(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "gg-migrations-"));
  await cp(MIGRATIONS_DIR, dir, { recursive: true });
  return dir;
}

async function addMigration(dir: string, name: string, sql: string): Promise<void> {
  await mkdir(path.join(dir, name));
  await writeFile(path.join(dir, name, "migration.sql"), sql);
}

interface MigrationRow extends Record<string, unknown> {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  applied_steps_count: number;
  id: string;
}

describe("migration runner", () => {
  it("applies every migration to a fresh database and records it as Prisma does", async () => {
    const db = await createTestDatabase({ empty: true });
    const local = await readMigrations();
    const result = await migrate(db.url, { log });
    expect(result.applied).toEqual(local.map((m) => m.name));

    const rows = await db.query<MigrationRow>(`SELECT * FROM "_prisma_migrations" ORDER BY migration_name`);
    expect(rows.map((r) => r.migration_name)).toEqual(local.map((m) => m.name));
    for (const [i, row] of rows.entries()) {
      const sql = local[i]?.sql ?? "";
      expect(row.checksum).toBe(createHash("sha256").update(sql).digest("hex"));
      expect(row.finished_at).toBeInstanceOf(Date);
      expect(row.applied_steps_count).toBe(1);
      expect(row.id).toMatch(/^[0-9a-f-]{36}$/);
    }
    const tables = await db.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`,
    );
    expect(tables.map((t) => t.table_name)).toEqual(expect.arrayContaining(["Job", "Step", "_prisma_migrations"]));
  });

  it("does nothing when run again", async () => {
    const db = await createTestDatabase({ empty: true });
    await migrate(db.url, { log });
    const before = await db.query(`SELECT * FROM "_prisma_migrations" ORDER BY migration_name`);
    expect((await migrate(db.url, { log })).applied).toEqual([]);
    expect(await db.query(`SELECT * FROM "_prisma_migrations" ORDER BY migration_name`)).toEqual(before);
  });

  it("applies only the new migration when one is added", async () => {
    const db = await createTestDatabase({ empty: true });
    const dir = await copyOfMigrations();
    await migrate(db.url, { log, migrationsDir: dir });
    await addMigration(dir, "29990101000000_add_note", `ALTER TABLE "Job" ADD COLUMN "note" TEXT;`);
    expect((await migrate(db.url, { log, migrationsDir: dir })).applied).toEqual(["29990101000000_add_note"]);
    const columns = await db.query(`SELECT 1 FROM information_schema.columns WHERE table_name = 'Job' AND column_name = 'note'`);
    expect(columns).toHaveLength(1);
  });

  it("refuses a migration edited after it was applied, naming it", async () => {
    const db = await createTestDatabase({ empty: true });
    const dir = await copyOfMigrations();
    await migrate(db.url, { log, migrationsDir: dir });
    const [first] = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort();
    await appendFile(path.join(dir, first as string, "migration.sql"), "\n-- edited\n");
    const error = await migrate(db.url, { log, migrationsDir: dir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as Error).message).toContain(first);
    expect((error as Error).message).toContain("edited after it was applied");
  });

  it("rolls back a failing migration completely and records nothing for it", async () => {
    const db = await createTestDatabase({ empty: true });
    const dir = await copyOfMigrations();
    await migrate(db.url, { log, migrationsDir: dir });
    await addMigration(dir, "29990101000000_broken", `CREATE TABLE "Half" (id int);\nSELECT * FROM "NoSuchTable";`);
    const error = await migrate(db.url, { log, migrationsDir: dir }).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/29990101000000_broken failed and was rolled back: .*NoSuchTable/);
    expect(await db.query(`SELECT 1 FROM information_schema.tables WHERE table_name = 'Half'`)).toHaveLength(0);
    expect(await db.query(`SELECT 1 FROM "_prisma_migrations" WHERE migration_name = '29990101000000_broken'`)).toHaveLength(0);
  });

  it("lets exactly one of two concurrent starters migrate; the other waits and finds nothing to do", async () => {
    const db = await createTestDatabase({ empty: true });
    const expected = (await readMigrations()).map((m) => m.name);
    const results = await Promise.all([migrate(db.url, { log }), migrate(db.url, { log }), migrate(db.url, { log })]);
    const appliedCounts = results.map((r) => r.applied.length).sort();
    expect(appliedCounts).toEqual([0, 0, expected.length]);
    const rows = await db.query<MigrationRow>(`SELECT migration_name FROM "_prisma_migrations"`);
    expect(rows.map((r) => r.migration_name).sort()).toEqual(expected);
  });

  it("refuses to go on past a migration that started but never finished", async () => {
    const db = await createTestDatabase({ empty: true });
    await migrate(db.url, { log });
    await db.query(
      `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at) VALUES ('00000000-0000-0000-0000-000000000001', 'x', '29990101000000_half_done', now())`,
    );
    await expect(migrate(db.url, { log })).rejects.toThrow(/29990101000000_half_done started but never finished/);
  });
});

describe("what the migrations build", () => {
  it("compresses an external run's decisions and state with lz4 where the server has it, and keeps the default where it has not", async () => {
    const db = await createTestDatabase();
    const [setting] = await db.query<{ lz4: boolean }>(`SELECT 'lz4' = ANY (enumvals) AS lz4 FROM pg_settings WHERE name = 'default_toast_compression'`);
    const columns = await db.query<{ name: string; compression: string }>(
      `SELECT c.relname || '.' || a.attname AS name, a.attcompression::text AS compression
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
       WHERE (c.relname, a.attname) IN (('RunDecisionBatch', 'decisions'), ('ExternalRun', 'state')) ORDER BY 1`,
    );
    // attcompression: 'l' lz4, '' the server's default (pglz unless configured otherwise).
    const expected = setting?.lz4 ? "l" : "";
    expect(columns).toEqual([
      { name: "ExternalRun.state", compression: expected },
      { name: "RunDecisionBatch.decisions", compression: expected },
    ]);
  });
});
