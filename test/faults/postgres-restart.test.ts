// Fault: the embedded PostgreSQL dies mid-run (SIGKILL: a crash, the OOM killer). The server
// that started it starts it again; the trainer keeps training, buffers its rows, and catches up;
// /ready says 503 meanwhile and 200 after; no step is lost or stored twice.
import { readFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { adminQuery } from "../helpers/urls.ts";
import { api, startServer } from "../helpers/server-process.ts";
import { waitFor } from "../helpers/wait.ts";
import { expectEveryStepOnce, faultSpec, scenario, submit, waitForJob, waitForSteps } from "./ledger.ts";

scenario("embedded PostgreSQL killed mid-run, started again by the server");

const STEPS = 10_000;
const dataDir = await mkdtemp(path.join(tmpdir(), "gradguard-fault-pg-"));
const clusterDir = path.join(dataDir, "postgres");
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

/** The postmaster the server started: its pid and port, from postmaster.pid. */
async function postmaster(): Promise<{ pid: number; port: number }> {
  const [pid, , , port] = (await readFile(path.join(clusterDir, "postmaster.pid"), "utf8")).split("\n");
  return { pid: Number(pid), port: Number(port) };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("the embedded PostgreSQL dies mid-run", () => {
  it("the server starts it again, the trainer catches up, /ready fails meanwhile, and every step is stored once", async () => {
    const server = await startServer({ GRADGUARD_DATA_DIR: dataDir });
    const { pid, port } = await postmaster();
    const jobId = await submit(server.url, faultSpec("through a database outage", STEPS));
    await waitForSteps(server.url, jobId, 150);

    process.kill(pid, "SIGKILL");
    await waitFor("PostgreSQL to die", async () => (alive(pid) ? undefined : true));
    expect(await server.waitForLog((l) => l.component === "embedded-postgres" && l.level === 50)).toMatchObject({ signal: "SIGKILL", port });
    const notReady = await waitFor("/ready to fail", async () => {
      const response = await fetch(`${server.url}/api/v1/ready`);
      return response.status === 503 ? response : undefined;
    });
    expect(notReady.headers.get("content-type")).toMatch(/problem\+json/);
    // The trainer goes on training while its writes fail.
    await server.waitForLog((l) => l.msg === "writing steps failed; will retry" && l.jobId === jobId);

    await server.waitForLog((l) => l.msg === "embedded PostgreSQL started again", 60_000);
    expect((await postmaster()).port).toBe(port);
    await waitFor("/ready to pass again", async () => ((await fetch(`${server.url}/api/v1/ready`)).status === 200 ? true : undefined));
    await server.waitForLog((l) => l.msg === "step writes resumed" && l.jobId === jobId);
    const job = await waitForJob(server.url, jobId, "succeeded");
    expect(job.attempts).toBe(1); // caught up, not restarted

    const password = (await readFile(path.join(dataDir, "postgres.password"), "utf8")).trim();
    const url = `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/gradguard`;
    await expectEveryStepOnce(async (sql, params) => (await adminQuery(url, sql, params)).rows, jobId, STEPS);
    // The server outlived the outage and still serves.
    expect((await api(server.url, `/jobs/${jobId}`)).status).toBe(200);
    process.kill(server.pid, "SIGTERM");
    expect(await server.exited).toBe(0);
  }, 120_000);
});
