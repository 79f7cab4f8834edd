// Events across jobs (GET /api/v1/events) and per job (GET /api/v1/jobs/:id/events): the same
// filters — kind, severity, time — and pages by id.
import { beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import type { TestDatabase } from "../helpers/database.ts";
import { demoSpec } from "../trainer/fixtures.ts";

let app: TestApp;
let db: TestDatabase;
let jobA: string;
let jobB: string;
const at = (minute: number) => new Date(Date.UTC(2026, 10, 26, 12, minute));

beforeAll(async () => {
  ({ app, db } = await createTestApp());
  const submit = async (name: string) => (await app.inject({ method: "POST", url: "/api/v1/jobs", payload: { ...demoSpec(), name } })).json().id as string;
  jobA = await submit("a");
  jobB = await submit("b");
  // Six events, one a minute from 12:00, alternating between the two jobs.
  const rows = [
    { jobId: jobA, kind: "clip", severity: "warning" },
    { jobId: jobB, kind: "clip", severity: "warning" },
    { jobId: jobA, kind: "skip", severity: "critical" },
    { jobId: jobB, kind: "faultInjected", severity: "info" },
    { jobId: jobA, kind: "clip", severity: "warning" },
    { jobId: jobB, kind: "diverged", severity: "critical" },
  ] as const;
  for (const [minute, row] of rows.entries()) {
    await db.prisma.event.create({ data: { ...row, step: minute, message: `${row.kind} at minute ${minute}`, detail: { minute }, createdAt: at(minute) } });
  }
});

type EventList = { items: { id: string; jobId: string; kind: string; detail: { minute: number } }[]; nextAfter: string | null };

async function minutes(url: string): Promise<number[]> {
  const response = await app.inject({ url });
  expect(response.statusCode).toBe(200);
  return (response.json() as EventList).items.map((e) => e.detail.minute);
}

function expectFieldProblem(response: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, field: string) {
  expect(response.statusCode).toBe(400);
  expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
  expect((response.json() as { errors: { in: string; field: string }[] }).errors[0]).toMatchObject({ in: "querystring", field });
}

describe("GET /api/v1/events", () => {
  it("lists every job's events oldest first, filtered by job, kind, severity and time", async () => {
    expect(await minutes("/api/v1/events")).toEqual([0, 1, 2, 3, 4, 5]);
    expect(await minutes(`/api/v1/events?jobId=${jobB}`)).toEqual([1, 3, 5]);
    expect(await minutes("/api/v1/events?kind=clip")).toEqual([0, 1, 4]);
    expect(await minutes("/api/v1/events?severity=critical")).toEqual([2, 5]);
    expect(await minutes(`/api/v1/events?since=${at(2).toISOString()}&until=${at(4).toISOString()}`)).toEqual([2, 3]);
    expect(await minutes(`/api/v1/events?since=${at(3).toISOString()}&severity=critical&jobId=${jobA}`)).toEqual([]);
    expect(await minutes(`/api/v1/events?until=${encodeURIComponent("2026-11-26T13:01:00+01:00")}`)).toEqual([0]);
  });

  it("pages by id: nextAfter until a page is not full", async () => {
    const first = (await app.inject({ url: "/api/v1/events?limit=4" })).json() as EventList;
    expect(first.items.map((e) => e.detail.minute)).toEqual([0, 1, 2, 3]);
    expect(first.nextAfter).toBe(first.items[3]?.id);
    const second = (await app.inject({ url: `/api/v1/events?limit=4&after=${first.nextAfter}` })).json() as EventList;
    expect(second.items.map((e) => e.detail.minute)).toEqual([4, 5]);
    expect(second.nextAfter).toBeNull();
    // The filters hold across pages.
    const clips = (await app.inject({ url: "/api/v1/events?kind=clip&limit=2" })).json() as EventList;
    expect(await minutes(`/api/v1/events?kind=clip&limit=2&after=${clips.nextAfter}`)).toEqual([4]);
  });

  it("answers bad filters with 400 naming the parameter", async () => {
    expectFieldProblem(await app.inject({ url: "/api/v1/events?since=yesterday" }), "/since");
    expectFieldProblem(await app.inject({ url: "/api/v1/events?jobId=42" }), "/jobId");
    expectFieldProblem(await app.inject({ url: "/api/v1/events?after=-3" }), "/after");
    expectFieldProblem(await app.inject({ url: "/api/v1/events?severity=loud" }), "/severity");
    expectFieldProblem(await app.inject({ url: "/api/v1/events?limit=1001" }), "/limit");
    expectFieldProblem(await app.inject({ url: "/api/v1/events?page=2" }), "/page");
    expectFieldProblem(await app.inject({ url: `/api/v1/events?since=${at(3).toISOString()}&until=${at(3).toISOString()}` }), "/until");
  });
});

describe("GET /api/v1/jobs/:id/events", () => {
  it("takes the same filters for one job, and 404 for an unknown job", async () => {
    expect(await minutes(`/api/v1/jobs/${jobA}/events`)).toEqual([0, 2, 4]);
    expect(await minutes(`/api/v1/jobs/${jobA}/events?kind=clip&since=${at(1).toISOString()}`)).toEqual([4]);
    const page = (await app.inject({ url: `/api/v1/jobs/${jobA}/events?limit=2` })).json() as EventList;
    expect(await minutes(`/api/v1/jobs/${jobA}/events?after=${page.nextAfter}`)).toEqual([4]);
    // The path names the job; a jobId query parameter is not taken here.
    expectFieldProblem(await app.inject({ url: `/api/v1/jobs/${jobA}/events?jobId=${jobB}` }), "/jobId");
    expect((await app.inject({ url: "/api/v1/jobs/00000000-0000-4000-8000-000000000000/events" })).statusCode).toBe(404);
  });
});
