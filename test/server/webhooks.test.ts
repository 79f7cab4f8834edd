// Webhooks against real HTTP receivers on 127.0.0.1: registration and its SSRF guard, the
// outbox and its retries, the delivery log, signatures checked with docs/webhooks.md's own code.
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { retryDelayMs } from "../../server/alerts/dispatcher.ts";
import { isPrivateAddress, postWebhook } from "../../server/alerts/outbound.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import type { TestDatabase } from "../helpers/database.ts";
import { waitFor } from "../helpers/wait.ts";
import { type Receiver, runningJob, startReceiver, testAlertSettings, writeEvents } from "./alerts-fixtures.ts";

const SECRET = "receiver-secret-0123456789";
let app: TestApp;
let db: TestDatabase;
let receiver: Receiver;
beforeAll(async () => {
  ({ app, db } = await createTestApp({ alerts: testAlertSettings() }));
  receiver = await startReceiver();
});
afterAll(async () => {
  await app.raw.close();
  await receiver.close();
});

async function register(body: Record<string, unknown>, on: TestApp = app) {
  return on.inject({ method: "POST", url: "/api/v1/webhooks", payload: { secret: SECRET, ...body } });
}

/** A finished job (the silence rule leaves it alone) with one event that raises an alert. */
async function raise(kind: string, severity: "info" | "warning" | "critical" = "critical"): Promise<string> {
  const jobId = await runningJob(db.prisma, `job-${kind}`, 5);
  await db.prisma.job.update({ where: { id: jobId }, data: { status: "succeeded" } });
  await writeEvents(db.prisma, jobId, [{ step: 5, kind, severity, message: `${kind} at step 5` }]);
  return jobId;
}

/** docs/webhooks.md's code blocks, exactly as a reader copies them. */
async function documentedSnippet(language: "js" | "python"): Promise<string> {
  const doc = await readFile(new URL("../../docs/webhooks.md", import.meta.url), "utf8");
  const fence = "```";
  const match = doc.match(new RegExp(`${fence}${language}\\n([\\s\\S]*?)${fence}`));
  if (!match?.[1]) throw new Error(`docs/webhooks.md has no ${language} block`);
  return match[1];
}

describe("a receiver that fails twice, then succeeds", () => {
  it("gets one logical delivery: three attempts with the same delivery id and body, logged, signed as documented", async () => {
    const hook = await register({ url: receiver.url, events: { rules: ["diverged"] } });
    expect(hook.statusCode).toBe(201);
    const webhookId = hook.json().id;
    receiver.received.length = 0;
    receiver.answers.push(500, 503);
    const jobId = await raise("diverged");

    const [delivery] = await waitFor("the delivery to succeed", async () => {
      const items = (await app.inject({ url: `/api/v1/webhooks/${webhookId}/deliveries` })).json().items;
      return items[0]?.status === "delivered" ? items : undefined;
    });
    expect(receiver.received).toHaveLength(3);
    expect(receiver.received.map((r) => r.headers["gradguard-delivery"])).toEqual([delivery.id, delivery.id, delivery.id]);
    expect(receiver.received.map((r) => r.headers["gradguard-attempt"])).toEqual(["1", "2", "3"]);
    expect(new Set(receiver.received.map((r) => r.body)).size).toBe(1);
    expect(delivery).toMatchObject({ attempts: 3, nextAttemptAt: null, finishedAt: expect.any(String) });
    expect(delivery.log.map((a: { attempt: number; statusCode: number }) => [a.attempt, a.statusCode])).toEqual([
      [1, 500],
      [2, 503],
      [3, 200],
    ]);
    expect(delivery.log[0].error).toBe("the receiver answered 500");

    const body = JSON.parse(receiver.received[2]?.body ?? "{}");
    const [alert] = (await app.inject({ url: `/api/v1/alerts?jobId=${jobId}` })).json().items;
    expect(body).toEqual({ type: "alert", deliveryId: delivery.id, alert });

    // The Node snippet of the docs, imported as written.
    const file = join(tmpdir(), `verify-${randomUUID()}.mjs`);
    await writeFile(file, await documentedSnippet("js"));
    const { verifyGradguardSignature } = (await import(file)) as { verifyGradguardSignature: (s: string, h: string, b: string) => boolean };
    for (const request of receiver.received) {
      const header = request.headers["gradguard-signature"] as string;
      expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
      expect(verifyGradguardSignature(SECRET, header, request.body)).toBe(true);
      expect(verifyGradguardSignature("another-secret-0123456", header, request.body)).toBe(false);
      expect(verifyGradguardSignature(SECRET, header, `${request.body} `)).toBe(false);
    }
    // The Python snippet, run by python3 on the same request.
    const request = receiver.received[0] as (typeof receiver.received)[number];
    const python = spawnSync(
      "python3",
      ["-c", `${await documentedSnippet("python")}\nimport sys, json\na = json.load(sys.stdin)\nprint(json.dumps([verify_gradguard_signature(a["s"], a["h"], a["b"].encode()), verify_gradguard_signature("x" * 16, a["h"], a["b"].encode())]))`],
      { input: JSON.stringify({ s: SECRET, h: request.headers["gradguard-signature"], b: request.body }), encoding: "utf8" },
    );
    expect(python.stderr).toBe("");
    expect(JSON.parse(python.stdout)).toEqual([true, false]);
    await app.inject({ method: "DELETE", url: `/api/v1/webhooks/${webhookId}` });
  });
});

describe("formats and filters", () => {
  it("posts Slack messages (text + blocks) and only to webhooks whose filter matches", async () => {
    const slack = await startReceiver();
    try {
      const slackHook = (await register({ url: slack.url, format: "slack", events: { rules: ["rollback"] } })).json();
      const infoOnly = (await register({ url: receiver.url, events: { severities: ["info"] } })).json();
      const jobId = await raise("rollback", "warning");
      const message = await waitFor("the Slack message", async () => (slack.received[0] ? JSON.parse(slack.received[0].body) : undefined));
      expect(message.text).toBe("WARNING: job-rollback rolled back to a checkpoint at step 5. rollback at step 5");
      expect(message.blocks.map((b: { type: string }) => b.type)).toEqual(["header", "section", "context"]);
      expect(JSON.stringify(message.blocks)).toContain(jobId);
      const rows = await db.prisma.alertDelivery.findMany({ where: { webhookId: { in: [slackHook.id, infoOnly.id] } } });
      expect(rows.map((r) => r.webhookId)).toEqual([slackHook.id]);
    } finally {
      await slack.close();
    }
  });
});

describe("registration", () => {
  it("lists webhooks without their secret, deletes them, and answers 404 after", async () => {
    const created = (await register({ url: receiver.url })).json();
    expect(created).toMatchObject({ url: receiver.url, format: "json", events: { rules: [], severities: [] } });
    const listed = await app.inject({ url: "/api/v1/webhooks" });
    expect(listed.body).not.toContain(SECRET);
    expect(listed.json().items.map((w: { id: string }) => w.id)).toContain(created.id);
    expect((await app.inject({ method: "DELETE", url: `/api/v1/webhooks/${created.id}` })).statusCode).toBe(200);
    expect((await app.inject({ method: "DELETE", url: `/api/v1/webhooks/${created.id}` })).statusCode).toBe(404);
    expect((await app.inject({ url: `/api/v1/webhooks/${created.id}/deliveries` })).statusCode).toBe(404);
  });

  it("needs an admin token", async () => {
    const write = (await app.inject({ method: "POST", url: "/api/v1/tokens", payload: { name: "writer", role: "write" } })).json().token;
    const response = await app.inject({ method: "POST", url: "/api/v1/webhooks", payload: { url: receiver.url, secret: SECRET }, headers: { authorization: `Bearer ${write}` } });
    expect(response.statusCode).toBe(403);
    expect((await app.inject({ url: "/api/v1/webhooks", headers: { authorization: `Bearer ${write}` } })).statusCode).toBe(403);
  });

  it.each([
    [{ url: "http://127.0.0.1:1/x" }, "/secret", { secret: undefined }],
    [{ url: "http://127.0.0.1:1/x", secret: "short" }, "/secret", {}],
    [{ url: "ftp://example.com/x" }, "/url", {}],
    [{ url: "not a url" }, "/url", {}],
    [{ url: "http://user:pw@example.com/x" }, "/url", {}],
    [{ url: "http://127.0.0.1:1/x", format: "xml" }, "/format", {}],
    [{ url: "http://127.0.0.1:1/x", events: { rules: ["boom"] } }, "/events/rules/0", {}],
    [{ url: "http://127.0.0.1:1/x", events: { severities: ["loud"] } }, "/events/severities/0", {}],
    [{ url: "http://127.0.0.1:1/x", colour: "red" }, "/colour", {}],
    [{ url: 42 }, "/url", {}],
  ])("refuses %j with a 400 problem naming %s", async (body, field, override) => {
    const response = await app.inject({ method: "POST", url: "/api/v1/webhooks", payload: { secret: SECRET, ...body, ...override } });
    expect(response.statusCode).toBe(400);
    expect(response.headers["content-type"]).toMatch(/problem\+json/);
    expect(response.json().errors.map((e: { field: string }) => e.field)).toContain(field);
    expect(await db.prisma.webhook.count({ where: { url: String(body.url) } })).toBe(0);
  });
});

describe("SSRF", () => {
  it("refuses loopback, link-local, private, unique-local and unspecified targets without GRADGUARD_WEBHOOK_ALLOW_PRIVATE", async () => {
    const guarded = await createTestApp({ alerts: testAlertSettings({ webhookAllowPrivate: false }) });
    try {
      for (const url of ["http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]/x", "http://169.254.169.254/latest/meta-data", "http://10.1.2.3/x", "http://192.168.0.1/x", "http://[fd00::1]/x", "http://0.0.0.0/x", "http://[::ffff:127.0.0.1]/x"]) {
        const response = await register({ url }, guarded.app);
        expect(response.statusCode, url).toBe(400);
        expect(response.json().errors).toEqual([{ in: "body", field: "/url", message: expect.stringContaining("GRADGUARD_WEBHOOK_ALLOW_PRIVATE=true") }]);
      }
      expect(await guarded.db.prisma.webhook.count()).toBe(0);
    } finally {
      await guarded.app.raw.close();
    }
  });

  it("checks again at delivery time, by name and by address, and sends nothing", async () => {
    receiver.received.length = 0;
    const port = new URL(receiver.url).port;
    for (const url of [receiver.url, `http://localhost:${port}/hook`]) {
      const result = await postWebhook({ url, body: "{}", headers: {}, timeoutMs: 2_000, allowPrivate: false });
      expect(result.statusCode, url).toBeUndefined();
      expect(result.error, url).toMatch(/private address/);
    }
    expect(receiver.received).toEqual([]);
    expect((await postWebhook({ url: receiver.url, body: "{}", headers: {}, timeoutMs: 2_000, allowPrivate: true })).statusCode).toBe(200);
  });

  it("classifies addresses", () => {
    for (const address of ["127.0.0.1", "10.0.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "0.0.0.0", "::1", "::", "fe80::1", "fc00::1", "::ffff:10.0.0.1", "100.64.0.1"]) {
      expect(isPrivateAddress(address), address).toBe(true);
    }
    for (const address of ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1"]) expect(isPrivateAddress(address), address).toBe(false);
  });
});

it("waits a random time below base·2^(attempt−1), capped at an hour (full jitter)", () => {
  expect([1, 2, 3, 4].map((attempt) => retryDelayMs(attempt, 1_000, () => 0.999_999))).toEqual([999, 1_999, 3_999, 7_999]);
  expect(retryDelayMs(3, 1_000, () => 0)).toBe(0);
  expect(retryDelayMs(40, 1_000, () => 0.999_999)).toBe(3_599_996);
});
