// Alerts through real server processes: a webhook delivery that was failing when its server was
// killed is finished by the next server, with the same delivery id (the outbox is in Postgres).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { api, startServer } from "../helpers/server-process.ts";
import { waitFor } from "../helpers/wait.ts";
import { type Receiver, runningJob, startReceiver, writeEvents } from "../server/alerts-fixtures.ts";

const ENV = {
  GRADGUARD_WORKER_CONCURRENCY: "0",
  GRADGUARD_WEBHOOK_ALLOW_PRIVATE: "true",
  // Retries come 0–2 s apart, and an attempt that dies with its server is taken over 6 s later.
  GRADGUARD_WEBHOOK_RETRY_MS: "2000",
  GRADGUARD_WEBHOOK_TIMEOUT_MS: "1000",
};

let db: TestDatabase;
let receiver: Receiver;
beforeAll(async () => {
  db = await createTestDatabase();
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver.close();
});

interface Delivery {
  id: string;
  status: string;
  attempts: number;
  log: { attempt: number; statusCode: number | null }[];
}

describe("the webhook outbox", () => {
  it("survives a server killed mid-retry: the next server delivers it, same delivery id", async () => {
    const first = await startServer({ ...ENV, DATABASE_URL: db.url });
    const hook = await api<{ id: string }>(first.url, "/webhooks", { method: "POST", body: JSON.stringify({ url: receiver.url, secret: "e2e-secret-0123456789" }) });
    expect(hook.status).toBe(201);
    // Every attempt fails until the receiver is mended.
    receiver.answers.push(...Array(1_000).fill(500));
    const jobId = await runningJob(db.prisma, "killed-mid-retry", 9);
    await db.prisma.job.update({ where: { id: jobId }, data: { status: "diverged" } });
    await writeEvents(db.prisma, jobId, [{ step: 9, kind: "diverged", severity: "critical", message: "stopped as diverged" }]);

    const deliveries = async (url: string) => (await api<{ items: Delivery[] }>(url, `/webhooks/${hook.body.id}/deliveries`)).body.items;
    await waitFor("a failed first attempt", async () => ((await deliveries(first.url))[0]?.log.length ? true : undefined));
    process.kill(first.pid, "SIGKILL");
    await first.exited;
    const failedAttempts = receiver.received.length;
    expect(failedAttempts).toBeGreaterThan(0);

    receiver.answers.length = 0;
    const second = await startServer({ ...ENV, DATABASE_URL: db.url });
    const [delivery] = await waitFor(
      "the delivery to succeed",
      async () => {
        const items = await deliveries(second.url);
        return items[0]?.status === "delivered" ? items : undefined;
      },
      30_000,
    );
    expect(delivery?.log.at(-1)?.statusCode).toBe(200);
    expect(delivery?.log.slice(0, -1).every((a) => a.statusCode === 500)).toBe(true);
    const ids = new Set(receiver.received.map((r) => r.headers["gradguard-delivery"]));
    expect(ids).toEqual(new Set([delivery?.id]));
    expect(receiver.received.filter((r) => r.body === receiver.received[0]?.body)).toHaveLength(receiver.received.length);
    // One alert, one delivery: the restart raised nothing twice.
    expect((await api<{ items: unknown[] }>(second.url, `/alerts?jobId=${jobId}`)).body.items).toHaveLength(1);
    expect(await db.prisma.alertDelivery.count()).toBe(1);
  });
});
