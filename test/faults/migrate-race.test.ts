// Fault: two servers start at once on an empty database. One applies the migrations; the other
// waits on the migration lock, finds nothing left to do, and both serve the same data.
import { describe, expect, it } from "vitest";
import { readMigrations } from "../../prisma/migrate.ts";
import { createTestDatabase } from "../helpers/database.ts";
import { api, startServer } from "../helpers/server-process.ts";
import { scenario } from "./ledger.ts";

scenario("two servers migrating one empty database at once");

describe("two servers start on an empty database", () => {
  it("one migrates, the other waits, and both serve", async () => {
    const db = await createTestDatabase({ empty: true });
    const env = { DATABASE_URL: db.url, GRADGUARD_WORKER_CONCURRENCY: "0" };
    const servers = await Promise.all([startServer(env), startServer(env)]);

    const expected = (await readMigrations()).map((m) => m.name);
    const applied = servers.map((s) => s.lines.filter((l) => l.msg === "applied migration").map((l) => l.migration));
    expect(applied.map((names) => names.length).sort((a, b) => a - b)).toEqual([0, expected.length]);
    const rows = await db.query<{ migration_name: string }>(`SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL ORDER BY migration_name`);
    expect(rows.map((r) => r.migration_name)).toEqual(expected);

    for (const server of servers) expect((await api(server.url, "/ready")).status).toBe(200);
    const created = await api<{ id: string }>(servers[0]?.url ?? "", "/runs", { method: "POST", body: JSON.stringify({ name: "seen by both", layerNames: ["a"] }) });
    expect(created.status).toBe(201);
    for (const server of servers) {
      process.kill(server.pid, "SIGTERM");
      expect(await server.exited).toBe(0);
    }
  });
});
