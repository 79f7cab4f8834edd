// `npm run bench:live [seconds] [jobs] [clients] [stepsPerSecond]`: the live path's latency and
// cost. A real server process (npm start's server/main.ts, no worker) serves `clients` socket.io
// clients, each following one of `jobs` jobs; each job gets `stepsPerSecond` steps through the
// trainer's own StepWriter (its batching and flush, 20 layer norms a row), as a trainer would.
// For every row it measures, in this process, from the start of the flush that wrote it to each
// client receiving it; side by side, from the same flush to a bare pg LISTEN client hearing the
// NOTIFY, which is the part the database takes, and from that NOTIFY to the clients, which is the
// server's part. It reads the server's CPU time from /proc and divides it by the rows the clients
// received. Target: p99 flush → client ≤ 100 ms.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { createInterface } from "node:readline";
import pg from "pg";
import { pino } from "pino";
import { io, type Socket } from "socket.io-client";
import type { ClientToServerEvents, ServerToClientEvents } from "../common/live-contract.ts";
import { STEPS_CHANNEL } from "../prisma/channels.ts";
import { createPrismaClient, type PrismaClient } from "../prisma/client.ts";
import { migrate } from "../prisma/migrate.ts";
import { StepWriter } from "../trainer/step-writer.ts";
import { benchDatabase, syntheticStep } from "./database.ts";
import { writeResults } from "./results.ts";

const SECONDS = Number(process.argv[2] ?? 30);
const JOBS = Number(process.argv[3] ?? 10);
const CLIENTS = Number(process.argv[4] ?? 50);
const STEPS_PER_SECOND = Number(process.argv[5] ?? 50);
const WARMUP_SECONDS = 5;
const LAYERS = 20;
const TOKEN = "bench-live-admin-token-0123456789";
const ROOT = new URL("..", import.meta.url).pathname;

const log = pino({ level: "warn" });
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;

/** server/main.ts as its own process; resolves with its URL and pid once it serves. */
async function startServer(databaseUrl: string): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: databaseUrl, PORT: "0", LOG_FORMAT: "json", GRADGUARD_ADMIN_TOKEN: TOKEN, GRADGUARD_WORKER_CONCURRENCY: "0" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  const url = await new Promise<string>((resolve, reject) => {
    child.on("exit", (code) => reject(new Error(`the server exited (${code}) before serving`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const entry = JSON.parse(line) as { msg?: string; url?: string; level?: number };
      if (entry.msg?.startsWith("gradguard is serving") && entry.url) resolve(entry.url);
      else if ((entry.level ?? 0) >= 40) process.stdout.write(`  server: ${line}\n`);
    });
  });
  return {
    url,
    pid: child.pid as number,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** CPU time (user + system) a process has used, in ms. */
async function cpuMs(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]?.split(" ") ?? [];
  // utime and stime are fields 14 and 15, in clock ticks (100 a second on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

interface Flush {
  startedAt: number;
  /** When the bare LISTEN client heard its NOTIFY. */
  notifiedAt?: number;
}

interface BenchJob {
  id: string;
  pushed: number;
  flushedThrough: number;
  /** The flush of each step, and of each flush's last step (the NOTIFY's payload). */
  flushes: Map<number, Flush>;
  writer: StepWriter;
}

/**
 * The Prisma client a job's StepWriter flushes through, noting when each flush starts. A flush is
 * one call (insertSteps: one statement, or a transaction), of the first rows waiting
 * (StepWriter.flushOnce), so which steps it holds follows from the steps pushed so far.
 */
function timedClient(prisma: PrismaClient, job: BenchJob): PrismaClient {
  return new Proxy(prisma, {
    get(target, property) {
      if (property !== "$executeRaw" && property !== "$transaction") return Reflect.get(target, property);
      const flushOnce = Reflect.get(target, property) as (...args: unknown[]) => Promise<unknown>;
      return async (...args: unknown[]) => {
        const flush: Flush = { startedAt: performance.now() };
        const lastStep = Math.min(job.pushed - 1, job.flushedThrough + 256);
        for (let step = job.flushedThrough + 1; step <= lastStep; step++) job.flushes.set(step, flush);
        const result = await flushOnce.apply(target, args);
        job.flushedThrough = lastStep;
        return result;
      };
    },
  });
}

const database = await benchDatabase("live");
const prisma = createPrismaClient(database.url, { maxConnections: JOBS + 2 });
const clients: Socket<ServerToClientEvents, ClientToServerEvents>[] = [];
let server: Awaited<ReturnType<typeof startServer>> | undefined;
const listener = new pg.Client({ connectionString: database.url });
try {
  await migrate(database.url, { log });
  const [version] = await prisma.$queryRawUnsafe<{ version: string }[]>("SELECT version()");
  const postgres = `${database.kind} ${version?.version.split(" on ")[0]}`;
  console.log(`${postgres}; ${JOBS} jobs × ${STEPS_PER_SECOND} steps/s, ${CLIENTS} clients, ${WARMUP_SECONDS} s warm-up + ${SECONDS} s`);
  server = await startServer(database.url);

  const layerNames = Array.from({ length: LAYERS }, (_, i) => `dense_${i}`);
  const jobs = await Promise.all(
    Array.from({ length: JOBS }, async (_, i) => {
      const created = await prisma.job.create({ data: { name: `bench-live-${i}`, spec: {}, status: "running", layerNames } });
      const job: BenchJob = { id: created.id, pushed: 0, flushedThrough: -1, flushes: new Map(), writer: undefined as unknown as StepWriter };
      job.writer = new StepWriter(timedClient(prisma, job), created.id, log);
      return job;
    }),
  );
  const byId = new Map(jobs.map((job) => [job.id, job]));

  let measuring = false;
  const toClient: number[] = [];
  const toNotify: number[] = [];
  const notifyToClient: number[] = [];
  let rowsReceived = 0;
  await listener.connect();
  listener.on("notification", (message) => {
    const received = performance.now();
    const colon = message.payload?.lastIndexOf(":") ?? -1;
    const job = byId.get(message.payload?.slice(0, colon) ?? "");
    const flush = job?.flushes.get(Number(message.payload?.slice(colon + 1)));
    if (!flush) return;
    flush.notifiedAt = received;
    if (measuring) toNotify.push(received - flush.startedAt);
  });
  await listener.query(`LISTEN "${STEPS_CHANNEL}"`);

  for (let i = 0; i < CLIENTS; i++) {
    const job = jobs[i % JOBS];
    if (!job) throw new Error("no jobs");
    const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(server.url, { auth: { token: TOKEN }, transports: ["websocket"] });
    clients.push(socket);
    socket.on("job:steps", (batch) => {
      const received = performance.now();
      if (!measuring) return;
      rowsReceived += batch.step.length;
      const flushes = byId.get(batch.jobId)?.flushes;
      for (const step of batch.step) {
        const flush = flushes?.get(step);
        if (!flush) continue;
        toClient.push(received - flush.startedAt);
        if (flush.notifiedAt !== undefined) notifyToClient.push(received - flush.notifiedAt);
      }
    });
    const result = await socket.timeout(10_000).emitWithAck("job:subscribe", { jobId: job.id, fromStep: 0 });
    if ("error" in result) throw new Error(result.error);
  }

  // The trainers: each job's steps at a steady rate, pushed as a training loop would.
  const started = performance.now();
  const feeding = setInterval(() => {
    const due = Math.floor(((performance.now() - started) / 1000) * STEPS_PER_SECOND);
    for (const job of jobs) while (job.pushed < due) job.writer.push(syntheticStep(job.pushed++, LAYERS));
  }, 5);
  await new Promise((resolve) => setTimeout(resolve, WARMUP_SECONDS * 1000));
  const cpuBefore = await cpuMs(server.pid);
  const measuredAt = performance.now();
  measuring = true;
  await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
  measuring = false;
  const measuredSeconds = (performance.now() - measuredAt) / 1000;
  const serverCpu = (await cpuMs(server.pid)) - cpuBefore;
  clearInterval(feeding);
  for (const job of jobs) await job.writer.close();

  const figures = (path: string, samples: number[]) => {
    samples.sort((a, b) => a - b);
    return { path, samples: samples.length, p50Ms: percentile(samples, 50), p99Ms: percentile(samples, 99), maxMs: samples.at(-1) ?? Number.NaN };
  };
  const rows = [
    figures("flush start → socket.io client (each row, each client)", toClient),
    figures("flush start → bare LISTEN client (the database's part)", toNotify),
    figures("NOTIFY heard → socket.io client (the server's part)", notifyToClient),
  ];
  const cpuPer1000Rows = (serverCpu / rowsReceived) * 1000;
  const serverCpuShare = serverCpu / (measuredSeconds * 1000);
  console.log(
    `\nrows received by the clients: ${rowsReceived.toLocaleString("en")} in ${measuredSeconds.toFixed(1)} s ` +
      `(${Math.round(rowsReceived / measuredSeconds).toLocaleString("en")} rows/s); server CPU ${serverCpu} ms ` +
      `(${(serverCpuShare * 100).toFixed(0)}% of a core), ${cpuPer1000Rows.toFixed(2)} ms per 1,000 rows fanned out; load average ${loadavg()[0]?.toFixed(1)}`,
  );
  const target = (rows[0]?.p99Ms ?? Number.POSITIVE_INFINITY) <= 100;
  console.log(`target p99 flush → client ≤ 100 ms: ${target ? "met" : "NOT met"}`);
  await writeResults("live", {
    backend: `none (PostgreSQL: ${postgres})`,
    setup: { jobs: JOBS, stepsPerSecond: STEPS_PER_SECOND, clients: CLIENTS, layers: LAYERS, seconds: SECONDS, warmupSeconds: WARMUP_SECONDS },
    rowsReceived,
    serverCpuMs: serverCpu,
    serverCpuMsPer1000Rows: cpuPer1000Rows,
    loadAverage: loadavg()[0],
    rows: [...rows, { path: "server CPU per 1,000 rows fanned out (ms)", samples: rowsReceived, p50Ms: cpuPer1000Rows, p99Ms: "-", maxMs: "-" }],
  });
} finally {
  for (const socket of clients) socket.close();
  await listener.end().catch(() => {});
  await server?.stop();
  await prisma.$disconnect();
  await database.close();
}
