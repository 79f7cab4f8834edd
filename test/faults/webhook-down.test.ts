// Fault: the webhook receiver is down (nothing listens on its port) when a real training run
// raises its alerts. The deliveries are retried until it comes back, then every alert arrives
// at least once, each under one delivery id.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { createTestDatabase } from "../helpers/database.ts";
import { api, startServer } from "../helpers/server-process.ts";
import { waitFor } from "../helpers/wait.ts";
import { alertsChecked, expectEveryStepOnce, faultSpec, scenario, submit, waitForJob } from "./ledger.ts";

scenario("webhook receiver down while alerts are raised");

const STEPS = 400;
let receiver: Server | undefined;
afterAll(async () => {
  receiver?.closeAllConnections();
  receiver?.close();
});

/** A port nothing listens on (yet): connections to it are refused. */
async function unusedPort(): Promise<number> {
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address() as AddressInfo;
  probe.close();
  await once(probe, "close");
  return port;
}

interface Delivery {
  id: string;
  alertId: string;
  status: string;
  log: { statusCode: number | null }[];
}

describe("a webhook receiver that is down", () => {
  it("gets every alert once it is back", async () => {
    const db = await createTestDatabase();
    const server = await startServer({ DATABASE_URL: db.url, GRADGUARD_WEBHOOK_ALLOW_PRIVATE: "true", GRADGUARD_WEBHOOK_RETRY_MS: "500", GRADGUARD_WEBHOOK_TIMEOUT_MS: "1000", GRADGUARD_ALERT_COOLDOWN_S: "0" });
    const port = await unusedPort();
    const hook = await api<{ id: string }>(server.url, "/webhooks", { method: "POST", body: JSON.stringify({ url: `http://127.0.0.1:${port}/hook`, secret: "fault-suite-secret-0123" }) });
    expect(hook.status).toBe(201);
    // Two NaN batches: the watchdog skips both steps and each raises a nonFinite alert.
    const jobId = await submit(server.url, faultSpec("alerts while the receiver is down", STEPS, { faults: [{ kind: "nanBatch", step: 50 }, { kind: "nanBatch", step: 300 }] }));
    await waitForJob(server.url, jobId, "succeeded");
    const deliveries = async () => (await api<{ items: Delivery[] }>(server.url, `/webhooks/${hook.body.id}/deliveries`)).body.items;
    await waitFor("failed attempts while the receiver is down", async () => {
      const items = await deliveries();
      return items.length > 0 && items.every((d) => d.log.length >= 2 && d.status !== "delivered") ? true : undefined;
    });

    const received: { delivery: string; body: string }[] = [];
    receiver = createServer((request, response) => {
      let body = "";
      request.on("data", (chunk: Buffer) => {
        body += chunk.toString();
      });
      request.on("end", () => {
        received.push({ delivery: String(request.headers["gradguard-delivery"]), body });
        response.end("ok");
      });
    }).listen(port, "127.0.0.1");
    await once(receiver, "listening");

    const delivered = await waitFor("every delivery to succeed", async () => {
      const items = await deliveries();
      return items.length > 0 && items.every((d) => d.status === "delivered") ? items : undefined;
    }, 30_000);
    const { body: alerts } = await api<{ items: { id: string }[] }>(server.url, `/alerts?jobId=${jobId}`);
    expect(alerts.items.length).toBeGreaterThan(0);
    // Every alert has a delivery, and the receiver got each delivery (under its one id).
    expect(new Set(delivered.map((d) => d.alertId))).toEqual(new Set(alerts.items.map((a) => a.id)));
    expect(new Set(received.map((r) => r.delivery))).toEqual(new Set(delivered.map((d) => d.id)));
    for (const delivery of delivered) expect(delivery.log.slice(0, -1).every((attempt) => attempt.statusCode === null)).toBe(true);
    alertsChecked(alerts.items.length);
    await expectEveryStepOnce(db.query, jobId, STEPS);
    process.kill(server.pid, "SIGTERM");
    expect(await server.exited).toBe(0);
  }, 90_000);
});
