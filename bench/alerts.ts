// `npm run bench:alerts [alerts]`: alert latency, from the commit of the trainer's flush that
// holds the triggering event to the webhook receiver getting the POST. The path is the real
// one: a trainer-side Prisma client writes steps and a `diverged` event with the trainer's own
// writer; the app (as server/main.ts builds it) hears NOTIFY job_events, evaluates, writes the
// alert and its outbox row in one transaction, and its dispatcher signs and POSTs to a receiver
// on 127.0.0.1. Meanwhile 10 other jobs stream 50 steps/s each. Each alert is for a job of its
// own (so no cool-down folds them), one every 20–60 ms.
//
// Side by side: the same with the evaluator woken only by its 1 s poll (no LISTEN), and a bare
// POST to the same receiver (the floor). Target: p99 ≤ 500 ms with LISTEN.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { loadConfig } from "../common/config.ts";
import { createPrismaClient, type PrismaClient } from "../prisma/client.ts";
import { connect } from "../prisma/connect.ts";
import { postWebhook } from "../server/alerts/outbound.ts";
import { buildApp } from "../server/app.ts";
import { type Receiver, runningJob, startReceiver, writeSteps } from "../test/server/alerts-fixtures.ts";
import { adminQuery, withDatabase } from "../test/helpers/urls.ts";
import { insertSteps } from "../trainer/step-writer.ts";
import { writeResults } from "./results.ts";

const ALERTS = Number(process.argv[2] ?? 200);
const STREAMING_JOBS = 10;
const TOKEN = "bench-alerts-admin-token-0123456789";
const log = pino({ level: "warn" });

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A fresh database on DATABASE_URL's server, or an embedded PostgreSQL in a temporary folder. */
async function openBenchDatabase() {
  const dataDir = await mkdtemp(path.join(tmpdir(), "gradguard-bench-alerts-"));
  const adminUrl = process.env.DATABASE_URL;
  const name = `gg_bench_alerts_${process.pid}`;
  if (adminUrl) await adminQuery(adminUrl, `CREATE DATABASE "${name}"`);
  const connection = await connect({ databaseUrl: adminUrl ? withDatabase(adminUrl, name) : undefined, dataDir }, log);
  return {
    connection,
    kind: adminUrl ? "external (DATABASE_URL)" : "embedded",
    close: async () => {
      await connection.close();
      if (adminUrl) await adminQuery(adminUrl, `DROP DATABASE "${name}" WITH (FORCE)`);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Steps of the streaming jobs, 50 a second each in flushes of 5, until stopped. */
function streamSteps(trainer: PrismaClient, jobIds: string[]): () => Promise<void> {
  let stopped = false;
  const loops = jobIds.map(async (jobId) => {
    for (let step = 0; !stopped; step += 5) {
      await writeSteps(trainer, jobId, step, 5);
      await sleep(100);
    }
  });
  return async () => {
    stopped = true;
    await Promise.all(loops);
  };
}

async function measure(mode: "listen" | "poll", databaseUrl: string, receiver: Receiver, server: PrismaClient, trainer: PrismaClient): Promise<number[]> {
  const app = await buildApp({
    prisma: server,
    config: { maxSteps: 1_000_000, maxDatasetBytes: 1024 * 1024, adminToken: TOKEN, corsOrigins: undefined, rateLimit: 1_000_000, alerts: { ...loadConfig({}).alerts, webhookAllowPrivate: true } },
    logger: log,
    ...(mode === "listen" ? { databaseUrl } : {}),
  });
  await app.ready();
  const hook = await app.inject({ method: "POST", url: "/api/v1/webhooks", headers: { authorization: `Bearer ${TOKEN}` }, payload: { url: receiver.url, secret: "bench-secret-0123456789" } });
  if (hook.statusCode !== 201) throw new Error(`webhook registration failed: ${hook.body}`);

  const streaming = await Promise.all(Array.from({ length: STREAMING_JOBS }, (_, i) => runningJob(trainer, `${mode}-stream-${i}`)));
  const stopStreaming = streamSteps(trainer, streaming);
  const committedAt = new Map<string, number>();
  const latencies: number[] = [];
  const allReceived = new Promise<void>((resolve) => {
    receiver.onRequest = (request) => {
      const jobId = (JSON.parse(request.body) as { alert: { jobId: string } }).alert.jobId;
      const committed = committedAt.get(jobId);
      if (committed === undefined) return;
      committedAt.delete(jobId);
      latencies.push(request.at - committed);
      if (latencies.length === ALERTS) resolve();
    };
  });
  for (let i = 0; i < ALERTS; i++) {
    const jobId = await runningJob(trainer, `${mode}-diverging-${i}`, 99);
    // The flush that holds the triggering step: its last steps and the watchdog's event.
    await insertSteps(
      trainer,
      jobId,
      [],
      [{ step: 100, kind: "diverged", severity: "critical", message: "stopped as diverged: loss is NaN", detail: {} }],
    );
    committedAt.set(jobId, performance.now());
    await sleep(20 + Math.random() * 40);
  }
  await Promise.race([allReceived, sleep(30_000)]);
  await stopStreaming();
  receiver.onRequest = undefined;
  await app.inject({ method: "DELETE", url: `/api/v1/webhooks/${hook.json().id}`, headers: { authorization: `Bearer ${TOKEN}` } });
  await app.close();
  if (latencies.length < ALERTS) throw new Error(`${mode}: only ${latencies.length} of ${ALERTS} alerts arrived within 30 s`);
  return latencies;
}

async function barePosts(receiver: Receiver): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < ALERTS; i++) {
    const started = performance.now();
    await postWebhook({ url: receiver.url, body: JSON.stringify({ alert: { jobId: "bare" } }), headers: {}, timeoutMs: 5_000, allowPrivate: true });
    latencies.push(performance.now() - started);
  }
  return latencies;
}

const database = await openBenchDatabase();
const receiver = await startReceiver();
// Two clients, as in production: the server's and a trainer's.
const server = database.connection.prisma;
const trainer = createPrismaClient(database.connection.database.url, { maxConnections: 4 });
try {
  const rows: Record<string, unknown>[] = [];
  const row = (path: string, latencies: number[]) => {
    const figures = { path, alerts: latencies.length, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), maxMs: Math.max(...latencies) };
    console.log(JSON.stringify(figures));
    rows.push(figures);
    return figures;
  };
  const listen = row("flush commit → webhook received (NOTIFY job_events)", await measure("listen", database.connection.database.url, receiver, server, trainer));
  row("flush commit → webhook received (1 s poll only)", await measure("poll", database.connection.database.url, receiver, server, trainer));
  const bare = row("bare POST to the receiver (floor)", await barePosts(receiver));
  rows.push({ path: "ratio NOTIFY path ÷ bare POST (the p50 and p99 columns are ratios)", alerts: ALERTS, p50Ms: listen.p50Ms / bare.p50Ms, p99Ms: listen.p99Ms / bare.p99Ms, maxMs: "" });
  console.log(listen.p99Ms <= 500 ? `target met: p99 ${listen.p99Ms.toFixed(1)} ms ≤ 500 ms` : `TARGET MISSED: p99 ${listen.p99Ms.toFixed(1)} ms > 500 ms`);
  await writeResults("alerts", { backend: "n/a", database: database.kind, streamingJobs: STREAMING_JOBS, stepsPerSecondPerJob: 50, rows });
} finally {
  await receiver.close();
  await trainer.$disconnect();
  await database.close();
}
