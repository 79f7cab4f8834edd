// `npm run demo` against a running server.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { TEST_ADMIN_TOKEN } from "../helpers/app.ts";
import { createTestDatabase } from "../helpers/database.ts";
import { startServer } from "../helpers/server-process.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

describe("npm run demo", () => {
  it("submits the explosion demo with and without the watchdog and says where to watch", async () => {
    const db = await createTestDatabase();
    const server = await startServer({ DATABASE_URL: db.url, GRADGUARD_WORKER_CONCURRENCY: "0" });
    const env = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", GRADGUARD_URL: server.url, GRADGUARD_TOKEN: TEST_ADMIN_TOKEN };
    const result = spawnSync("npm", ["run", "--silent", "demo"], { cwd: ROOT, encoding: "utf8", env });
    expect(result.status, result.stderr).toBe(0);
    const jobs = await db.prisma.job.findMany({ orderBy: { createdAt: "asc" } });
    expect(jobs.map((j) => (j.spec as { watchdog: { policy: string } }).watchdog.policy)).toEqual(["gradguard", "off"]);
    for (const job of jobs) expect(result.stdout).toContain(`/jobs/${job.id}\n`);
    expect(result.stdout).toContain(`/compare?jobs=${jobs.map((job) => job.id).join(",")}`);

    const refused = spawnSync("npm", ["run", "--silent", "demo"], { cwd: ROOT, encoding: "utf8", env: { ...env, GRADGUARD_TOKEN: "not-a-token" } });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain("401");
    process.kill(server.pid, "SIGTERM");
    await server.exited;
  });
});
