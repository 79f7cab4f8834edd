// Alerts end to end inside the app: events written by the trainer's writer → the evaluator
// (its background passes, as in production) → stored alerts → GET /alerts and ack.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../server/app.ts";
import { createTestApp, TEST_CONFIG, type TestApp } from "../helpers/app.ts";
import { silentLog, type TestDatabase } from "../helpers/database.ts";
import { waitFor } from "../helpers/wait.ts";
import { runningJob, testAlertSettings, writeEvents } from "./alerts-fixtures.ts";

let app: TestApp;
let db: TestDatabase;
const settings = testAlertSettings({ silentMs: 400 });
beforeAll(async () => {
  ({ app, db } = await createTestApp({ alerts: settings }));
});
afterAll(async () => {
  await app.raw.close();
});

const alertsOf = async (jobId: string) => (await app.inject({ url: `/api/v1/alerts?jobId=${jobId}` })).json().items as Record<string, unknown>[];
/** A job whose events are evaluated but that the silence rule leaves alone (it is not running). */
async function finishedJob(name: string): Promise<string> {
  const jobId = await runningJob(db.prisma, name, 10);
  await db.prisma.job.update({ where: { id: jobId }, data: { status: "succeeded" } });
  return jobId;
}
const inboxEmpty = async () => ((await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "AlertInbox"`))[0]?.n === 0 ? true : undefined);

describe("alert rules on stored events", () => {
  it("turns a burst of 300 non-finite steps over several flushes into ONE alert, even with two evaluating servers", async () => {
    const second = await buildApp({ prisma: db.prisma, config: { ...TEST_CONFIG, alerts: settings }, logger: silentLog, databaseUrl: db.url });
    await second.ready();
    try {
      const jobId = await finishedJob("burst");
      for (let flush = 0; flush < 6; flush++) {
        await writeEvents(db.prisma, jobId, Array.from({ length: 50 }, (_, i) => ({ step: flush * 50 + i })));
      }
      await waitFor("the inbox to be evaluated", inboxEmpty);
      const alerts = await waitFor("the alert", async () => {
        const items = await alertsOf(jobId);
        return items[0]?.count === 300 ? items : undefined;
      });
      expect(alerts).toHaveLength(1);
      expect(alerts[0]).toMatchObject({
        jobId,
        jobName: "burst",
        rule: "nonFinite",
        severity: "warning",
        title: "Non-finite gradients or loss in burst",
        step: 0,
        count: 300,
        acknowledgedAt: null,
        acknowledgedBy: null,
      });
      expect(alerts[0]?.eventId).toMatch(/^\d+$/);
    } finally {
      await second.close();
    }
  });

  it("never loses an event whose id was taken before another that committed first", async () => {
    const jobId = await finishedJob("out-of-order");
    const slow = new pg.Client({ connectionString: db.url });
    await slow.connect();
    try {
      await slow.query("BEGIN");
      // Takes the smaller id, then stays uncommitted while a later event commits and is evaluated.
      await slow.query(`INSERT INTO "Event" ("jobId", step, kind, severity, message, detail) VALUES ($1, 1, 'diverged', 'critical', 'stopped as diverged', '{}')`, [jobId]);
      await writeEvents(db.prisma, jobId, [{ step: 2, kind: "rollback", message: "rolled back" }]);
      await waitFor("the later event's alert", async () => ((await alertsOf(jobId)).length === 1 ? true : undefined));
      await slow.query("COMMIT");
      const rules = await waitFor("the earlier event's alert", async () => {
        const items = await alertsOf(jobId);
        return items.length === 2 ? items.map((a) => a.rule) : undefined;
      });
      expect(rules.sort()).toEqual(["diverged", "rollback"]);
    } finally {
      await slow.end();
    }
  });

  it("raises a silent alert for a running job that stops writing steps, and none for a paused one", async () => {
    const silent = await runningJob(db.prisma, "stuck", 41);
    const paused = await runningJob(db.prisma, "on-hold", 7);
    await db.prisma.job.update({ where: { id: paused }, data: { paused: true } });
    const [alert] = await waitFor("the silent alert", async () => {
      const items = await alertsOf(silent);
      return items.length > 0 ? items : undefined;
    });
    expect(alert).toMatchObject({ rule: "silent", severity: "critical", title: "stuck stopped reporting", step: 41, eventId: null });
    expect(await alertsOf(paused)).toEqual([]);
  });
});

describe("GET /alerts and acknowledging", () => {
  let jobId: string;
  let ids: string[];
  beforeAll(async () => {
    jobId = await finishedJob("listed");
    await writeEvents(db.prisma, jobId, [
      { step: 1, kind: "lrLowered", severity: "info", message: "lr 0.1 → 0.05" },
      { step: 2, kind: "rollback", message: "rolled back to step 0" },
      { step: 3, kind: "diverged", severity: "critical", message: "stopped" },
    ]);
    ids = await waitFor("three alerts", async () => {
      const items = await alertsOf(jobId);
      return items.length === 3 ? items.map((a) => a.id as string) : undefined;
    });
  });

  it("lists newest first, filters by severity and acknowledged, and pages with a cursor", async () => {
    const first = (await app.inject({ url: `/api/v1/alerts?jobId=${jobId}&limit=2` })).json();
    expect(first.items.map((a: { rule: string }) => a.rule)).toEqual(["diverged", "rollback"]);
    const second = (await app.inject({ url: `/api/v1/alerts?jobId=${jobId}&limit=2&cursor=${first.nextCursor}` })).json();
    expect(second).toEqual({ items: [expect.objectContaining({ rule: "lrLowered", severity: "info" })], nextCursor: null });
    const critical = (await app.inject({ url: `/api/v1/alerts?jobId=${jobId}&severity=critical` })).json().items;
    expect(critical.map((a: { rule: string }) => a.rule)).toEqual(["diverged"]);
    expect((await app.inject({ url: `/api/v1/alerts?jobId=${jobId}&acknowledged=true` })).json().items).toEqual([]);
  });

  it("acknowledges once (write role), then answers 409", async () => {
    const id = ids[0] as string;
    const read = (await app.inject({ method: "POST", url: "/api/v1/tokens", payload: { name: "viewer", role: "read" } })).json().token;
    expect((await app.inject({ method: "POST", url: `/api/v1/alerts/${id}/ack`, headers: { authorization: `Bearer ${read}` } })).statusCode).toBe(403);
    const acked = await app.inject({ method: "POST", url: `/api/v1/alerts/${id}/ack` });
    expect(acked.statusCode).toBe(200);
    expect(acked.json()).toMatchObject({ id, acknowledgedBy: "environment", acknowledgedAt: expect.any(String) });
    const again = await app.inject({ method: "POST", url: `/api/v1/alerts/${id}/ack` });
    expect(again.statusCode).toBe(409);
    expect(again.headers["content-type"]).toMatch(/problem\+json/);
    expect(again.json().detail).toContain("already acknowledged");
    const open = (await app.inject({ url: `/api/v1/alerts?jobId=${jobId}&acknowledged=false` })).json().items;
    expect(open.map((a: { id: string }) => a.id)).not.toContain(id);
    expect((await app.inject({ method: "POST", url: "/api/v1/alerts/999999999/ack" })).statusCode).toBe(404);
  });

  it.each([
    ["/api/v1/alerts?severity=loud", "/severity", "GET"],
    ["/api/v1/alerts?limit=0", "/limit", "GET"],
    ["/api/v1/alerts?jobId=nope", "/jobId", "GET"],
    ["/api/v1/alerts?cursor=-1", "/cursor", "GET"],
    ["/api/v1/alerts?acknowledged=maybe", "/acknowledged", "GET"],
    ["/api/v1/alerts?colour=red", "/colour", "GET"],
    ["/api/v1/alerts/abc/ack", "/id", "POST"],
  ] as const)("refuses %s with a 400 problem naming %s", async (url, field, method) => {
    const response = await app.inject({ method, url });
    expect(response.statusCode).toBe(400);
    expect(response.headers["content-type"]).toMatch(/problem\+json/);
    expect(response.json().errors.map((e: { field: string }) => e.field)).toContain(field);
  });
});
