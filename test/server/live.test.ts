// The live channel (server/live) with real socket.io clients against the real app listening on
// a port, fed by the NOTIFY triggers of a real database: handshake, bad requests, catch-up then
// live rows with no gap and no duplicate, events, statuses, unsubscribe, reconnects, a lost
// LISTEN connection, rows deleted and written again, and two instances sharing broadcasts.
import type { Socket } from "node:net";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LiveAlert } from "../../common/live-contract.ts";
import { createPrismaClient } from "../../prisma/client.ts";
import { buildApp } from "../../server/app.ts";
import { MAX_SUBSCRIPTIONS_PER_CLIENT } from "../../server/live/hub.ts";
import livePlugin from "../../server/live/plugin.ts";
import { createToken } from "../../server/tokens.ts";
import { insertSteps, writeSteps as writeStepsIn } from "../../trainer/step-writer.ts";
import type { StepRecord, TrainingEvent } from "../../trainer/train-loop.ts";
import { TEST_ADMIN_TOKEN, TEST_CONFIG } from "../helpers/app.ts";
import { createTestDatabase, silentLog, type TestDatabase } from "../helpers/database.ts";
import { connectLive, handshakeError, type LiveClient, LiveCollector } from "../helpers/live-client.ts";
import { stepRecord } from "../helpers/steps.ts";
import { waitFor } from "../helpers/wait.ts";

let db: TestDatabase;
let app: FastifyInstance;
let url: string;
const clients: LiveClient[] = [];
const apps: FastifyInstance[] = [];

async function startApp(prisma = db.prisma): Promise<{ app: FastifyInstance; url: string }> {
  const started = await buildApp({ prisma, config: TEST_CONFIG, logger: silentLog, databaseUrl: db.url });
  apps.push(started);
  return { app: started, url: await started.listen({ port: 0, host: "127.0.0.1" }) };
}

async function client(at = url, token?: string): Promise<LiveClient> {
  const socket = await connectLive(at, token);
  clients.push(socket);
  return socket;
}

beforeAll(async () => {
  db = await createTestDatabase();
  ({ app, url } = await startApp());
});

afterAll(async () => {
  for (const socket of clients) socket.close();
  for (const started of apps) await started.close();
});

function record(step: number, layers = 2): StepRecord {
  return stepRecord(step, { layerNorms: Array.from({ length: layers }, (_, i) => 0.5 + ((step + i) % 7) / 100) });
}

async function newJob(): Promise<string> {
  const job = await db.prisma.job.create({ data: { name: "live", spec: {}, status: "running", layerNames: ["a", "b"] } });
  return job.id;
}

/** Steps from…to, written as the trainer writes them: a batch per statement. */
async function writeSteps(jobId: string, from: number, to: number, batch = 50, events: TrainingEvent[] = [], layers = 2): Promise<void> {
  for (let start = from; start <= to; start += batch) {
    const rows = [];
    for (let step = start; step <= Math.min(to, start + batch - 1); step++) rows.push(record(step, layers));
    const last = rows.at(-1)?.step ?? start;
    await insertSteps(
      db.prisma,
      jobId,
      rows,
      events.filter((event) => event.step >= start && event.step <= last),
    );
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function restSteps(jobId: string): Promise<Record<string, unknown>> {
  const response = await app.inject({ url: `/api/v1/jobs/${jobId}/steps`, headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
  const { nextFrom: _nextFrom, ...columns } = response.json() as Record<string, unknown>;
  return columns;
}

describe("the handshake", () => {
  it("refuses a client without a token or with a bad one, and accepts a read token", async () => {
    expect(await handshakeError(url, {})).toMatch(/send an API token/);
    expect(await handshakeError(url, { token: 42 })).toMatch(/send an API token/);
    expect(await handshakeError(url, { token: "gg_not-a-token" })).toMatch(/unknown or revoked/);
    const { token, id } = await createToken(db.prisma, "viewer", "read");
    const socket = await client(url, token);
    expect(socket.connected).toBe(true);
    await db.prisma.apiToken.update({ where: { id }, data: { revokedAt: new Date() } });
    expect(await handshakeError(url, { token })).toMatch(/unknown or revoked/);
  });
});

describe("bad requests", () => {
  it("are answered with an error naming the field, and the connection goes on", async () => {
    const socket = await client();
    const subscribe = (payload: unknown) => socket.timeout(5_000).emitWithAck("job:subscribe", payload as never);
    expect(await subscribe({})).toEqual({ error: "/jobId: is required; /fromStep: is required" });
    expect(await subscribe("job")).toEqual({ error: "/: must be object" });
    expect(await subscribe({ jobId: "42", fromStep: 0 })).toEqual({ error: '/jobId: must match format "uuid"' });
    const jobId = await newJob();
    expect(await subscribe({ jobId, fromStep: -1 })).toEqual({ error: "/fromStep: must be >= 0" });
    expect(await subscribe({ jobId, fromStep: 1.5 })).toEqual({ error: "/fromStep: must be integer" });
    expect(await subscribe({ jobId, fromStep: "0" })).toEqual({ error: "/fromStep: must be integer" });
    expect(await subscribe({ jobId, fromStep: 0, since: 3 })).toEqual({ error: "/since: is not a known field" });
    const unknown = "00000000-0000-4000-8000-000000000000";
    expect(await subscribe({ jobId: unknown, fromStep: 0 })).toEqual({ error: `/jobId: job ${unknown} does not exist` });
    expect(await socket.timeout(5_000).emitWithAck("job:unsubscribe", { id: jobId } as never)).toEqual({
      error: "/jobId: is required; /id: is not a known field",
    });
    // Without an ack function the request is still handled, and nothing breaks.
    socket.emit("job:subscribe", { jobId, fromStep: "x" } as never, undefined as never);
    expect(await subscribe({ jobId, fromStep: 0 })).toMatchObject({ data: { job: { jobId, status: "running", attempts: 0 } } });
  });
});

describe("a connection", () => {
  it(`follows at most ${MAX_SUBSCRIPTIONS_PER_CLIENT} jobs at once`, async () => {
    const socket = await client();
    const jobs = await db.prisma.job.createManyAndReturn({ data: Array.from({ length: MAX_SUBSCRIPTIONS_PER_CLIENT + 1 }, (_, i) => ({ name: `many-${i}`, spec: {} })) });
    const subscribe = (jobId: string) => socket.timeout(5_000).emitWithAck("job:subscribe", { jobId, fromStep: 0 });
    const answers = await Promise.all(jobs.slice(0, MAX_SUBSCRIPTIONS_PER_CLIENT).map((job) => subscribe(job.id)));
    expect(answers.every((answer) => "data" in answer)).toBe(true);
    const last = jobs.at(-1)?.id as string;
    expect(await subscribe(last)).toEqual({ error: `/jobId: a connection may follow at most ${MAX_SUBSCRIPTIONS_PER_CLIENT} jobs at once; unsubscribe from one first` });
    await socket.timeout(5_000).emitWithAck("job:unsubscribe", { jobId: jobs[0]?.id as string });
    expect(await subscribe(last)).toMatchObject({ data: { job: { jobId: last } } });
  });
});

describe("subscribing", () => {
  it("sends the stored rows in pages, then live ones, gapless and equal to what REST returns", async () => {
    const jobId = await newJob();
    await writeSteps(jobId, 0, 1199, 256);
    const collector = new LiveCollector(await client(), jobId);
    // Rows keep coming while the catch-up runs.
    const writing = writeSteps(jobId, 1200, 1999, 20);
    const status = await collector.follow(0);
    expect(status).toMatchObject({ jobId, name: "live", status: "running", paused: false });
    await writing;
    await collector.waitForStep(1999);
    expect(collector.violations).toEqual([]);
    expect(collector.steps).toEqual(range(0, 1999));
    // The catch-up came in pages, not in one message.
    expect(collector.batches[0]?.step.length).toBeLessThanOrEqual(500);
    expect({ jobId, layerNames: ["a", "b"], ...collector.merged() }).toEqual(await restSteps(jobId));
  });

  it("from a later step: only the rows and events from there on, then live events", async () => {
    const jobId = await newJob();
    const event = (step: number, kind: string): TrainingEvent => ({ step, kind, severity: "warning", message: `${kind} at ${step}`, detail: { step } });
    await writeSteps(jobId, 0, 99, 50, [event(10, "clip"), event(60, "clip")]);
    const collector = new LiveCollector(await client(), jobId);
    await collector.follow(50);
    await writeSteps(jobId, 100, 149, 50, [event(120, "lrLowered")]);
    await collector.waitForStep(149);
    await waitFor("the live event", async () => (collector.events.length >= 2 ? true : undefined));
    expect(collector.steps).toEqual(range(50, 149));
    expect(collector.events.map((e) => [e.step, e.kind, e.message])).toEqual([
      [60, "clip", "clip at 60"],
      [120, "lrLowered", "lrLowered at 120"],
    ]);
    expect(collector.events[0]).toMatchObject({ jobId, severity: "warning", detail: { step: 60 } });
  });

  it("stops after job:unsubscribe", async () => {
    const [stopped, other] = [await newJob(), await newJob()];
    const socket = await client();
    const [a, b] = [new LiveCollector(socket, stopped), new LiveCollector(socket, other)];
    await a.follow(0);
    await b.follow(0);
    await writeSteps(stopped, 0, 9);
    await a.waitForStep(9);
    expect(await socket.timeout(5_000).emitWithAck("job:unsubscribe", { jobId: stopped })).toEqual({ data: true });
    await writeSteps(stopped, 10, 19);
    // The other job's rows, written after, arrive after the server has heard about the first's.
    await writeSteps(other, 0, 9);
    await b.waitForStep(9);
    expect(a.steps).toEqual(range(0, 9));
  });

  it("sends status changes to subscribers, and every job's to jobs:watch watchers until jobs:unwatch", async () => {
    const jobId = await newJob();
    const subscriber = new LiveCollector(await client(), jobId);
    await subscriber.follow(0);
    const watcherSocket = await client();
    const watcher = new LiveCollector(watcherSocket, jobId);
    expect(await watcherSocket.timeout(5_000).emitWithAck("jobs:watch")).toEqual({ data: true });

    await db.prisma.job.update({ where: { id: jobId }, data: { paused: true } });
    await db.prisma.job.update({ where: { id: jobId }, data: { heartbeatAt: new Date() } }); // not a status change
    await db.prisma.job.update({ where: { id: jobId }, data: { status: "succeeded", lastStep: 9 } });
    const created = await db.prisma.job.create({ data: { name: "another", spec: {} } });
    await waitFor("the statuses", async () => (watcher.statuses.some((s) => s.jobId === created.id) ? true : undefined));
    await waitFor("the subscriber's statuses", async () => (subscriber.statuses.some((s) => s.status === "succeeded") ? true : undefined));
    expect(watcher.statuses.filter((s) => s.jobId === jobId).at(-1)).toEqual({
      jobId,
      name: "live",
      status: "succeeded",
      paused: true,
      attempts: 0,
      lastStep: 9,
      error: null,
    });
    expect(watcher.statuses.find((s) => s.jobId === created.id)).toMatchObject({ status: "queued", name: "another" });
    // Subscribers hear only their job.
    expect(subscriber.statuses.every((s) => s.jobId === jobId)).toBe(true);

    expect(await watcherSocket.timeout(5_000).emitWithAck("jobs:unwatch")).toEqual({ data: true });
    const later = await db.prisma.job.create({ data: { name: "later", spec: {} } });
    await db.prisma.job.update({ where: { id: jobId }, data: { paused: false } });
    await waitFor("the subscriber's last status", async () => (subscriber.statuses.at(-1)?.paused === false ? true : undefined));
    expect(watcher.statuses.some((s) => s.jobId === later.id)).toBe(false);
  });
});

describe("reconnecting", () => {
  it("resumes from the last step + 1 with no gap and no duplicate", async () => {
    const jobId = await newJob();
    const socket = await client();
    const collector = new LiveCollector(socket, jobId);
    await collector.follow(0);
    await writeSteps(jobId, 0, 99);
    await collector.waitForStep(99);
    socket.io.engine.close(); // as a network drop: the client reconnects by itself
    await writeSteps(jobId, 100, 199);
    await waitFor("the reconnection", async () => (collector.subscriptions === 2 ? true : undefined));
    await writeSteps(jobId, 200, 299);
    await collector.waitForStep(299);
    expect(collector.violations).toEqual([]);
    expect(collector.steps).toEqual(range(0, 299));
  });

  it("goes on when the server's LISTEN and adapter connections are killed", async () => {
    const jobId = await newJob();
    const collector = new LiveCollector(await client(), jobId);
    await collector.follow(0);
    await writeSteps(jobId, 0, 49);
    await collector.waitForStep(49);
    // The rows go in with the kill, in one transaction: their NOTIFY finds no listener, and
    // only the server's re-read after reconnecting can find them. Nothing is written after.
    const killed = await db.prisma.$transaction(async (tx) => {
      const backends = await tx.$queryRaw<{ killed: boolean }[]>`
        SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
        WHERE datname = current_database() AND application_name LIKE 'gradguard-live%'`;
      await writeStepsIn(tx, jobId, range(50, 149).map(record));
      return backends;
    });
    expect(killed.length).toBeGreaterThanOrEqual(2);
    await collector.waitForStep(149);
    expect(app.live.stats().listening).toBe(true);
    expect(collector.violations).toEqual([]);
    expect(collector.steps).toEqual(range(0, 149));
  });
});

describe("rows deleted and written again (a job resumed from a checkpoint)", () => {
  it("are not sent again to who had them, and are sent to who subscribes meanwhile", async () => {
    const jobId = await newJob();
    const before = new LiveCollector(await client(), jobId);
    await before.follow(0);
    await writeSteps(jobId, 0, 199);
    await before.waitForStep(199);
    await db.prisma.step.deleteMany({ where: { jobId, step: { gte: 100 } } });
    await writeSteps(jobId, 100, 149);
    const meanwhile = new LiveCollector(await client(), jobId);
    await meanwhile.follow(0);
    await writeSteps(jobId, 150, 299);
    await before.waitForStep(299);
    await meanwhile.waitForStep(299);
    expect(before.violations).toEqual([]);
    expect(before.steps).toEqual(range(0, 299));
    expect(meanwhile.violations).toEqual([]);
    expect(meanwhile.steps).toEqual(range(0, 299));
  });
});

describe("two server instances", () => {
  it("share broadcastAlert, and each client gets each row once", async () => {
    const second = createPrismaClient(db.url, { maxConnections: 2 });
    const other = await startApp(second);
    // Each has heard the other (heartbeats through the adapter): both are listening.
    for (const instance of [app, other.app]) {
      await waitFor("the instances to see each other", async () => ((await instance.live.serverCount()) === 2 ? true : undefined));
    }
    const jobId = await newJob();
    const here = new LiveCollector(await client(url), jobId);
    const there = new LiveCollector(await client(other.url), jobId);
    await here.follow(0);
    await there.follow(0);
    await writeSteps(jobId, 0, 199, 10);

    const alert: LiveAlert = {
      id: "1",
      jobId,
      jobName: "live",
      rule: "diverged",
      severity: "critical",
      title: "live diverged",
      message: "the loss went to NaN at step 120",
      step: 120,
      count: 1,
      acknowledgedBy: null,
      eventId: null,
      createdAt: new Date().toISOString(),
      acknowledgedAt: null,
    };
    app.live.broadcastAlert(alert);
    // Over NOTIFY's 8,000 bytes: through the adapter's table.
    const long = { ...alert, id: "2", message: "x".repeat(20_000) };
    other.app.live.broadcastAlert(long);
    for (const collector of [here, there]) {
      await waitFor("both alerts", async () => (collector.alerts.length >= 2 ? true : undefined));
      await collector.waitForStep(199);
    }
    expect(there.alerts.map((a) => a.id).sort()).toEqual(["1", "2"]);
    expect(here.alerts.map((a) => a.id).sort()).toEqual(["1", "2"]);
    expect(here.alerts.find((a) => a.id === "2")?.message).toHaveLength(20_000);
    expect(there.alerts.find((a) => a.id === "1")).toEqual(alert);
    for (const collector of [here, there]) {
      expect(collector.violations).toEqual([]);
      expect(collector.steps).toEqual(range(0, 199));
    }
    await other.app.close();
    await second.$disconnect();
  });
});

describe("a client that stops reading", () => {
  it("is taken out of the room instead of buffering without bound, and catches up gaplessly when it reads again", async () => {
    // The live plugin alone, with a small allowance of queued packets.
    const slowApp = Fastify();
    apps.push(slowApp);
    await slowApp.register(livePlugin, { prisma: db.prisma, log: silentLog, adminToken: TEST_ADMIN_TOKEN, databaseUrl: db.url, corsOrigins: undefined, maxQueuedPackets: 2 });
    const slowUrl = await slowApp.listen({ port: 0, host: "127.0.0.1" });
    const jobId = await newJob();
    const socket = await client(slowUrl);
    const collector = new LiveCollector(socket, jobId);
    await collector.follow(0);
    await writeSteps(jobId, 0, 9);
    await collector.waitForStep(9);

    // The websocket's TCP connection stops being read: the kernel's buffers fill, then the server's.
    const tcp = (socket.io.engine.transport as unknown as { ws: { _socket: Socket } }).ws._socket;
    tcp.pause();
    // About 1 MB a thousand rows, until the server has had enough (4 MB or so on this machine).
    let last = 9;
    const evicted = () => slowApp.live.stats().lagEvictions > 0;
    while (!evicted() && last < 40_000) {
      await writeSteps(jobId, last + 1, last + 1000, 500, [], 200);
      last += 1000;
      // Sent to the one client (into its buffer), or it was taken out of the room.
      await waitFor("the server to send them", async () => (evicted() || slowApp.live.stats().rowsSent > last ? true : undefined));
    }
    expect(evicted()).toBe(true);
    tcp.resume();
    await collector.waitForStep(last, 30_000);
    expect(collector.violations).toEqual([]);
    expect(collector.steps).toEqual(range(0, last));
  });
});
