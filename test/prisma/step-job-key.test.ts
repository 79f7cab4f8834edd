// "Step"."jobId" references "Job"."id" through triggers that check once per statement (the
// migration step_checks_per_statement): the same rules a foreign key enforced, including
// against a job deleted by a concurrent transaction.
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MIGRATIONS_DIR, migrate } from "../../prisma/migrate.ts";
import { createTestDatabase, silentLog as log, type TestDatabase } from "../helpers/database.ts";
import { waitFor } from "../helpers/wait.ts";

let db: TestDatabase;
const clients: pg.Client[] = [];
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end()));
});

async function connect(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  clients.push(client);
  return client;
}

async function newJob(): Promise<string> {
  const [job] = await db.query<{ id: string }>(`INSERT INTO "Job" (name, spec) VALUES ('key', '{}') RETURNING id`);
  return job?.id as string;
}

const MISSING = "00000000-0000-4000-8000-000000000000";

/** Inserts steps [from, from + count) of each job in one statement. */
function insertSteps(client: { query: pg.Client["query"] }, jobIds: string[], from = 0, count = 3) {
  return client.query(
    `INSERT INTO "Step" ("jobId", step, loss, "gradNorm", lr, "nonFinite", "stepMs")
     SELECT j, s, 1, 1, 0.1, false, 1 FROM unnest($1::uuid[]) AS j, generate_series($2::int, $2::int + $3::int - 1) AS s`,
    [jobIds, from, count],
  );
}

async function stepCount(jobId: string): Promise<number> {
  const [row] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "Step" WHERE "jobId" = $1`, [jobId]);
  return row?.n as number;
}

/** Resolves once `client`'s backend waits on a lock. */
async function waitingOnLock(client: pg.Client) {
  const pid = (client as unknown as { processID: number }).processID;
  await waitFor("a backend waiting on a lock", async () => {
    const [row] = await db.query<{ waiting: boolean }>(`SELECT wait_event_type = 'Lock' AS waiting FROM pg_stat_activity WHERE pid = $1`, [pid]);
    return row?.waiting ? true : undefined;
  });
}

describe("a step's job", () => {
  it("must exist: a statement with one step of a missing job stores none of its steps", async () => {
    const job = await newJob();
    const error = await insertSteps(await connect(), [job, MISSING]).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "23503", constraint: "Step_jobId_fkey", table: "Step" });
    expect(await stepCount(job)).toBe(0);

    await insertSteps(await connect(), [job]);
    expect(await stepCount(job)).toBe(3);
  });

  it("must exist after an update too", async () => {
    const job = await newJob();
    await insertSteps(await connect(), [job]);
    const error = await db.query(`UPDATE "Step" SET "jobId" = $1 WHERE "jobId" = $2`, [MISSING, job]).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "23503", constraint: "Step_jobId_fkey" });
    expect(await stepCount(job)).toBe(3);
  });

  it("takes its steps and their rollups with it when deleted, and keeps its id", async () => {
    const [job, other] = [await newJob(), await newJob()];
    await insertSteps(await connect(), [job, other], 0, 40);
    await db.query(`DELETE FROM "Job" WHERE id = $1`, [job]);
    expect(await stepCount(job)).toBe(0);
    expect(await db.query(`SELECT 1 FROM "StepRollup" WHERE "jobId" = $1`, [job])).toEqual([]);
    expect(await stepCount(other)).toBe(40);

    const error = await db.query(`UPDATE "Job" SET id = $1 WHERE id = $2`, [MISSING, other]).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "23503" });
    expect(await stepCount(other)).toBe(40);
  });

  it("deleted while another transaction stores its steps: the delete waits, then takes them too", async () => {
    const job = await newJob();
    const [writer, deleter] = [await connect(), await connect()];
    await writer.query("BEGIN");
    await insertSteps(writer, [job]);
    const deleted = deleter.query(`DELETE FROM "Job" WHERE id = $1`, [job]);
    await waitingOnLock(deleter);
    await writer.query("COMMIT");
    await deleted;
    expect(await stepCount(job)).toBe(0);
  });

  it("deleted by a transaction that commits first: the steps wait for it, then fail", async () => {
    const job = await newJob();
    const [writer, deleter] = [await connect(), await connect()];
    await deleter.query("BEGIN");
    await deleter.query(`DELETE FROM "Job" WHERE id = $1`, [job]);
    const stored = insertSteps(writer, [job]).catch((e: unknown) => e);
    await waitingOnLock(writer);
    await deleter.query("COMMIT");
    expect(await stored).toMatchObject({ code: "23503", constraint: "Step_jobId_fkey" });
    expect(await stepCount(job)).toBe(0);
  });
});

describe("the migration that moved the key into triggers", () => {
  it("keeps every step of a database that had the foreign key, and enforces the same rules after", async () => {
    const before = await createTestDatabase({ empty: true });
    const dir = await mkdtemp(path.join(tmpdir(), "gg-migrations-"));
    await cp(MIGRATIONS_DIR, dir, { recursive: true });
    await rm(path.join(dir, "20261126235900_step_checks_per_statement"), { recursive: true });
    await migrate(before.url, { log, migrationsDir: dir });
    const [job] = await before.query<{ id: string }>(`INSERT INTO "Job" (name, spec) VALUES ('old', '{}') RETURNING id`);
    const jobId = job?.id as string;
    const client = new pg.Client({ connectionString: before.url });
    await client.connect();
    clients.push(client);
    await insertSteps(client, [jobId], 0, 300);
    const rollups = await before.query(`SELECT * FROM "StepRollup" ORDER BY size, block`);

    expect((await migrate(before.url, { log })).applied).toEqual(["20261126235900_step_checks_per_statement"]);
    const [count] = await before.query<{ n: number }>(`SELECT count(*)::int AS n FROM "Step" WHERE "jobId" = $1`, [jobId]);
    expect(count?.n).toBe(300);
    expect(await before.query(`SELECT * FROM "StepRollup" ORDER BY size, block`)).toEqual(rollups);
    expect(await before.query(`SELECT 1 FROM pg_constraint WHERE conname = 'Step_jobId_fkey'`)).toEqual([]);
    expect(await insertSteps(client, [MISSING]).catch((e: unknown) => e)).toMatchObject({ code: "23503", constraint: "Step_jobId_fkey" });
    await insertSteps(client, [jobId], 300, 10);
    await before.query(`DELETE FROM "Job" WHERE id = $1`, [jobId]);
    expect(await before.query(`SELECT 1 FROM "Step" WHERE "jobId" = $1`, [jobId])).toEqual([]);
  });
});
