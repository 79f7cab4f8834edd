// `npm run bench:ingest-http [seconds] [connections] [--cpu-prof]`: how many external-run steps
// a real server (`server/main.ts`, its own process, worker off) accepts over HTTP. Autocannon
// keeps `connections` connections busy, each on a run of its own, each request carrying the
// next 100 steps of that run (so none is answered from stored decisions), for `seconds` after
// a short warm-up on other runs. It reports the steps accepted per second (2xx answers only;
// non-2xx answers and errors are counted and reported as failures), p50/p99 latency, and checks
// that every accepted step is stored. Target: 20,000 steps/s. With --cpu-prof the server writes
// a V8 CPU profile (open it in Chrome DevTools, or summarise it with bench/profile-summary.ts)
// to <tmpdir>/gradguard-ingest-profiles/. It also reports the CPU time the server, its embedded
// PostgreSQL and this process (autocannon) spent per 1,000 steps, and the rate those costs would
// allow if the machine's cores did nothing else: the ceiling of this machine, whatever the load.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import { adminQuery, withDatabase } from "../test/helpers/urls.ts";
import { processTreeCpuMs } from "./cpu.ts";
import { writeResults } from "./results.ts";
import { type BenchServer, startBenchServer } from "./server.ts";

const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const SECONDS = Number(args[0] ?? 20);
const CONNECTIONS = Number(args[1] ?? 10);
const PROFILE = process.argv.includes("--cpu-prof");
const BATCH = 100;
const LAYERS = 8;
const WARM_UP_SECONDS = 3;
const TARGET_STEPS_PER_SECOND = 20_000;
const TOKEN = "bench-ingest-admin-token-0123456789";
const PROFILE_DIR = path.join(tmpdir(), "gradguard-ingest-profiles");

interface Server extends BenchServer {
  stop(): Promise<void>;
}

/** The server as a user starts it: embedded PostgreSQL, or a fresh database on DATABASE_URL. */
async function startServer(): Promise<Server> {
  const dataDir = await mkdtemp(path.join(tmpdir(), "gradguard-bench-ingest-"));
  const adminUrl = process.env.DATABASE_URL;
  const database = `gg_bench_ingest_${process.pid}`;
  if (adminUrl) await adminQuery(adminUrl, `CREATE DATABASE "${database}"`);
  const env: NodeJS.ProcessEnv = { GRADGUARD_DATA_DIR: dataDir, GRADGUARD_ADMIN_TOKEN: TOKEN, GRADGUARD_RATE_LIMIT: "1000000" };
  if (adminUrl) env.DATABASE_URL = withDatabase(adminUrl, database);
  const server = await startBenchServer(env, PROFILE ? ["--cpu-prof", "--cpu-prof-dir", PROFILE_DIR] : []);
  return {
    ...server,
    stop: async () => {
      await server.stop();
      if (adminUrl) await adminQuery(adminUrl, `DROP DATABASE "${database}" WITH (FORCE)`);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function call<T>(server: Server, method: string, route: string, body?: unknown): Promise<T> {
  const response = await fetch(`${server.url}/api/v1${route}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

/** Steps from..from+BATCH-1 of a plausible run: a decaying loss, unit-ish norms, a spike every 997 steps. */
function batch(from: number): string {
  const steps = [];
  for (let step = from; step < from + BATCH; step++) {
    const gradNorm = (1 + 0.1 * Math.sin(step * 0.37)) * (step % 997 === 500 ? 50 : 1);
    steps.push({
      step,
      loss: 2 * Math.exp(-step / 5000) + 0.05 * Math.abs(Math.sin(step)),
      gradNorm,
      layerNorms: Array.from({ length: LAYERS }, (_, i) => (gradNorm / Math.sqrt(LAYERS)) * (1 + 0.01 * i)),
      lr: 0.01,
      weightNorm: 30,
    });
  }
  return JSON.stringify({ steps });
}

/** Autocannon with one run per connection; each answered request moves that connection to the next batch. */
async function hammer(server: Server, seconds: number): Promise<{ result: autocannon.Result; runIds: string[] }> {
  const layerNames = Array.from({ length: LAYERS }, (_, i) => `layer_${i}`);
  const runIds: string[] = [];
  for (let i = 0; i < CONNECTIONS; i++) runIds.push((await call<{ id: string }>(server, "POST", "/runs", { name: `ingest-${i}`, layerNames })).id);
  let nextRun = 0;
  const result = await autocannon({
    url: server.url,
    connections: CONNECTIONS,
    duration: seconds,
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    setupClient: (client) => {
      const runId = runIds[nextRun++ % runIds.length] as string;
      let from = 0;
      // The connection's whole request list (one request): setBody then changes that request.
      client.setRequests([{ method: "POST", path: `/api/v1/runs/${runId}/steps`, body: batch(from) }]);
      // Only a 2xx answer moves on: a failed batch is sent again (a retry is answered, not duplicated).
      client.on("response", (status: number) => {
        if (status >= 200 && status < 300) {
          from += BATCH;
          client.setBody(batch(from));
        }
      });
    },
  });
  return { result, runIds };
}

/**
 * CPU ms so far of the PostgreSQL on DATABASE_URL with all its processes, when it runs on this
 * machine and its postmaster.pid can be read (the machine's own PostgreSQL, as root); else NaN.
 */
async function externalDatabaseCpuMs(): Promise<number> {
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl || !["127.0.0.1", "localhost", "::1", "[::1]"].includes(new URL(adminUrl).hostname)) return Number.NaN;
  try {
    const dataDir = (await adminQuery(adminUrl, "SELECT setting FROM pg_settings WHERE name = 'data_directory'")).rows[0]?.setting as string;
    const postmaster = Number((await readFile(path.join(dataDir, "postmaster.pid"), "utf8")).split("\n")[0]);
    const tree = await processTreeCpuMs(postmaster);
    return tree.processMs + tree.descendantsMs;
  } catch {
    return Number.NaN;
  }
}

const server = await startServer();
try {
  console.log(`server ${server.url}; warming up ${WARM_UP_SECONDS} s, then ${SECONDS} s with ${CONNECTIONS} connections, ${BATCH} steps a request`);
  await hammer(server, WARM_UP_SECONDS);
  const load = loadavg()[0] ?? 0;
  const cpuBefore = { tree: await processTreeCpuMs(server.child.pid as number), externalDatabase: await externalDatabaseCpuMs(), bench: process.cpuUsage() };
  const { result, runIds } = await hammer(server, SECONDS);
  const cpuAfter = await processTreeCpuMs(server.child.pid as number);
  const externalDatabaseMs = (await externalDatabaseCpuMs()) - cpuBefore.externalDatabase;
  const benchCpu = process.cpuUsage(cpuBefore.bench);
  const accepted = result["2xx"];
  const failed = result.non2xx + result.errors + result.timeouts;
  let stored = 0;
  for (const id of runIds) stored += ((await call<{ lastStep: number | null }>(server, "GET", `/jobs/${id}`)).lastStep ?? -1) + 1;
  const stepsPerSecond = (accepted * BATCH) / result.duration;
  const perThousandSteps = (ms: number) => Number(((ms * 1000) / (accepted * BATCH)).toFixed(1));
  const cpu = {
    server: perThousandSteps(cpuAfter.processMs - cpuBefore.tree.processMs),
    // An embedded PostgreSQL is the server's child; one on DATABASE_URL is all of its processes (other databases' work included).
    database: perThousandSteps(process.env.DATABASE_URL ? externalDatabaseMs : cpuAfter.descendantsMs - cpuBefore.tree.descendantsMs),
    client: perThousandSteps((benchCpu.user + benchCpu.system) / 1000),
  };
  const row = {
    connections: CONNECTIONS,
    stepsPerRequest: BATCH,
    layers: LAYERS,
    seconds: Number(result.duration.toFixed(1)),
    requests2xx: accepted,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    stepsAccepted: accepted * BATCH,
    stepsStored: stored,
    stepsPerSecond: Math.round(stepsPerSecond),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    serverCpuMsPer1kSteps: cpu.server,
    databaseCpuMsPer1kSteps: cpu.database,
    autocannonCpuMsPer1kSteps: cpu.client,
    // Steps/s the machine's cores would allow at these CPU costs, with nothing else running.
    cpuCeilingStepsPerSecond: Math.round((availableParallelism() * 1_000_000) / (cpu.server + (cpu.database || 0) + cpu.client)),
    target: TARGET_STEPS_PER_SECOND,
    ratioToTarget: Number((stepsPerSecond / TARGET_STEPS_PER_SECOND).toFixed(2)),
    loadAvg1m: Number(load.toFixed(2)),
  };
  await writeResults("ingest-http", { backend: "none", database: process.env.DATABASE_URL ? "external (DATABASE_URL)" : "embedded PostgreSQL 18", rows: [row] });
  if (failed > 0) console.error(`${failed} requests failed (non-2xx ${result.non2xx}, errors ${result.errors}, timeouts ${result.timeouts})`);
  // Requests still in flight when autocannon stops are stored too, unanswered: at most one batch per connection.
  const storedAsAccepted = stored >= accepted * BATCH && stored <= (accepted + CONNECTIONS) * BATCH;
  if (!storedAsAccepted) console.error(`stored ${stored} steps but ${accepted * BATCH} were accepted`);
  process.exitCode = failed > 0 || !storedAsAccepted ? 1 : 0;
} finally {
  await server.stop();
  if (PROFILE) console.log(`CPU profile of the server: ${PROFILE_DIR}`);
}
