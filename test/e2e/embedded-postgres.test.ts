// `npm start` with no DATABASE_URL: a real PostgreSQL under GRADGUARD_DATA_DIR, kept across
// restarts, stopped with the server, and recovered after the server was killed outright.
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { api, startServer } from "../helpers/server-process.ts";
import { waitFor } from "../helpers/wait.ts";
import { demoSpec } from "../trainer/fixtures.ts";

const dataDir = await mkdtemp(path.join(tmpdir(), "gradguard-embedded-"));
afterAll(() => rm(dataDir, { recursive: true, force: true }));
const postmasterPid = path.join(dataDir, "postgres", "postmaster.pid");

describe("npm start without DATABASE_URL", () => {
  let jobId = "";

  it("starts an embedded PostgreSQL, says so, and trains a job on it", async () => {
    // No GRADGUARD_ADMIN_TOKEN: the first start creates an admin token and shows it once.
    const server = await startServer({ GRADGUARD_DATA_DIR: dataDir, GRADGUARD_ADMIN_TOKEN: "" });
    expect(server.lines.some((l) => l.msg === "using embedded PostgreSQL" && l.dataDir === dataDir)).toBe(true);
    // On stderr, after the "serving" line on stdout: the two pipes may arrive in either order.
    const shown = await server.waitForLog((l) => /^\s*gg_[A-Za-z0-9_-]{43}$/.test(l.msg));
    const firstToken = shown.msg.trim();
    const asFirst = { authorization: `Bearer ${firstToken}` };
    expect((await api(server.url, "/jobs", { headers: asFirst })).status).toBe(200);
    expect((await api(server.url, "/jobs", { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    const submitted = await api<{ id: string }>(server.url, "/jobs", { method: "POST", body: JSON.stringify({ ...demoSpec(), steps: 50 }), headers: asFirst });
    jobId = submitted.body.id;
    await waitFor("the job to succeed", async () => {
      const { body } = await api<{ status: string }>(server.url, `/jobs/${jobId}`, { headers: asFirst });
      return body.status === "succeeded" ? true : undefined;
    });
    process.kill(server.pid, "SIGTERM");
    expect(await server.exited).toBe(0);
    expect(existsSync(postmasterPid)).toBe(false); // the database was stopped with the server
  });

  it("keeps the data across a restart, and shows no second admin token", async () => {
    const quiet = await startServer({ GRADGUARD_DATA_DIR: dataDir, GRADGUARD_ADMIN_TOKEN: "" });
    process.kill(quiet.pid, "SIGTERM");
    await quiet.exited; // every line it printed, stderr's too, has been read
    expect(quiet.lines.some((l) => /gg_[A-Za-z0-9_-]{43}/.test(l.msg))).toBe(false);

    const server = await startServer({ GRADGUARD_DATA_DIR: dataDir });
    const { body } = await api<{ status: string; lastStep: number }>(server.url, `/jobs/${jobId}`);
    expect(body).toMatchObject({ status: "succeeded", lastStep: 49 });
    expect((await api<{ step: number[] }>(server.url, `/jobs/${jobId}/steps`)).body.step).toHaveLength(50);

    // Killed outright, the server leaves its PostgreSQL running; the next start takes it over.
    process.kill(server.pid, "SIGKILL");
    await server.exited;
    expect(existsSync(postmasterPid)).toBe(true);

    const again = await startServer({ GRADGUARD_DATA_DIR: dataDir });
    expect(again.lines.some((l) => String(l.msg).startsWith("stopping an embedded PostgreSQL left running"))).toBe(true);
    expect((await api<{ status: string }>(again.url, `/jobs/${jobId}`)).body.status).toBe("succeeded");
    process.kill(again.pid, "SIGTERM");
    expect(await again.exited).toBe(0);
  });

  it("refuses a second server on the same data directory while the first runs", async () => {
    const first = await startServer({ GRADGUARD_DATA_DIR: dataDir });
    const second = startServer({ GRADGUARD_DATA_DIR: dataDir });
    await expect(second).rejects.toThrow(/already running .*another gradguard is using this GRADGUARD_DATA_DIR/s);
    expect((await api(first.url, "/health")).status).toBe(200);
    process.kill(first.pid, "SIGTERM");
    expect(await first.exited).toBe(0);
  });

  it("fails fast with the variable's name when the configuration is wrong", async () => {
    await expect(startServer({ GRADGUARD_DATA_DIR: dataDir, PORT: "eighty" })).rejects.toThrow(/PORT: must be integer \(got \\?"eighty\\?"\)/);
  });
});
