// Alerts reach the dashboard: a real socket.io client of the app gets each new alert as
// `alert`, in the shape GET /api/v1/alerts returns it.
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { LiveAlert } from "../../common/live-contract.ts";
import { buildApp } from "../../server/app.ts";
import { TEST_ADMIN_TOKEN, TEST_CONFIG } from "../helpers/app.ts";
import { createTestDatabase, silentLog, type TestDatabase } from "../helpers/database.ts";
import { connectLive, type LiveClient } from "../helpers/live-client.ts";
import { waitFor } from "../helpers/wait.ts";
import { runningJob, testAlertSettings, writeEvents } from "./alerts-fixtures.ts";

let db: TestDatabase;
let app: FastifyInstance;
let socket: LiveClient;
beforeAll(async () => {
  db = await createTestDatabase();
  app = await buildApp({ prisma: db.prisma, config: { ...TEST_CONFIG, alerts: testAlertSettings() }, logger: silentLog, databaseUrl: db.url });
  socket = await connectLive(await app.listen({ port: 0, host: "127.0.0.1" }));
});
afterAll(async () => {
  socket.close();
  await app.close();
});

it("pushes each new alert to every socket.io client, as the API lists it", async () => {
  const received: LiveAlert[] = [];
  socket.on("alert", (alert) => received.push(alert));
  const jobId = await runningJob(db.prisma, "pushed", 12);
  await writeEvents(db.prisma, jobId, [{ step: 12, kind: "diverged", severity: "critical", message: "stopped as diverged" }]);
  const [pushed] = await waitFor("the pushed alert", async () => (received.length > 0 ? received : undefined));
  const listed = await app.inject({ url: `/api/v1/alerts?jobId=${jobId}`, headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
  expect(listed.json().items).toEqual([pushed]);
  expect(pushed).toMatchObject({ jobId, jobName: "pushed", rule: "diverged", severity: "critical", step: 12, acknowledgedAt: null });
});
