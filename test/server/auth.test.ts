import { Writable } from "node:stream";
import { pino } from "pino";
import { beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../server/app.ts";
import { createTestApp, TEST_CONFIG, type TestApp } from "../helpers/app.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { demoSpec } from "../trainer/fixtures.ts";

let app: TestApp;
let db: TestDatabase;
beforeAll(async () => {
  ({ app, db } = await createTestApp());
});

const as = (token: string | null) => ({ authorization: token === null ? null : `Bearer ${token}` });

async function tokenFor(role: "read" | "write" | "admin"): Promise<string> {
  const response = await app.inject({ method: "POST", url: "/api/v1/tokens", payload: { name: `${role} token`, role } });
  expect(response.statusCode).toBe(201);
  return response.json().token;
}

describe("API tokens", () => {
  it("refuses a request without a token or with an unknown one: 401 problem with WWW-Authenticate", async () => {
    for (const headers of [as(null), as("nope"), { authorization: "Basic abc" }]) {
      const response = await app.inject({ url: "/api/v1/jobs", headers });
      expect(response.statusCode).toBe(401);
      expect(response.headers["www-authenticate"]).toMatch(/^Bearer realm="gradguard"/);
      expect(response.headers["content-type"]).toMatch(/problem\+json/);
    }
  });

  it("gives each role what it may do: read GETs, write submits and commands, admin manages tokens", async () => {
    const read = await tokenFor("read");
    const write = await tokenFor("write");
    expect((await app.inject({ url: "/api/v1/jobs", headers: as(read) })).statusCode).toBe(200);
    const refused = await app.inject({ method: "POST", url: "/api/v1/jobs", payload: demoSpec(), headers: as(read) });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().detail).toBe("this needs a write token; yours is read");
    const job = await app.inject({ method: "POST", url: "/api/v1/jobs", payload: demoSpec(), headers: as(write) });
    expect(job.statusCode).toBe(201);
    expect((await app.inject({ method: "POST", url: `/api/v1/jobs/${job.json().id}/commands`, payload: { type: "pause" }, headers: as(read) })).statusCode).toBe(403);
    expect((await app.inject({ method: "POST", url: `/api/v1/jobs/${job.json().id}/commands`, payload: { type: "pause" }, headers: as(write) })).statusCode).toBe(202);
    expect((await app.inject({ url: "/api/v1/tokens", headers: as(write) })).statusCode).toBe(403);
  });

  it("shows a token once, stores only its hash, and stops accepting it once revoked", async () => {
    const created = (await app.inject({ method: "POST", url: "/api/v1/tokens", payload: { name: "ci", role: "read" } })).json();
    expect(created.token).toMatch(/^gg_[A-Za-z0-9_-]{43}$/);
    expect(created.prefix).toBe(created.token.slice(0, 10));
    const stored = await db.prisma.apiToken.findUniqueOrThrow({ where: { id: created.id } });
    expect(stored.hash).not.toContain(created.token);
    expect(JSON.stringify(stored)).not.toContain(created.token);
    const listed = (await app.inject({ url: "/api/v1/tokens" })).json().items;
    expect(JSON.stringify(listed)).not.toContain(created.token);
    expect((await app.inject({ url: "/api/v1/jobs", headers: as(created.token) })).statusCode).toBe(200);
    expect((await app.inject({ method: "DELETE", url: `/api/v1/tokens/${created.id}` })).json().revokedAt).not.toBeNull();
    expect((await app.inject({ url: "/api/v1/jobs", headers: as(created.token) })).statusCode).toBe(401);
    expect((await app.inject({ method: "DELETE", url: "/api/v1/tokens/00000000-0000-4000-8000-000000000000" })).statusCode).toBe(404);
  });

  it("never writes a token to the log", async () => {
    let output = "";
    const sink = new Writable({
      write: (chunk, _encoding, done) => {
        output += chunk.toString();
        done();
      },
    });
    const logger = pino({ level: "trace", redact: ["req.headers.authorization"] }, sink);
    const logged = await buildApp({ prisma: db.prisma, config: TEST_CONFIG, logger });
    await logged.inject({ url: "/api/v1/jobs", headers: { authorization: `Bearer ${TEST_CONFIG.adminToken}` } });
    await logged.inject({ url: "/api/v1/jobs", headers: { authorization: "Bearer wrong-secret-xyz" } });
    await logged.close();
    expect(output.length).toBeGreaterThan(0);
    expect(output).not.toContain(TEST_CONFIG.adminToken);
    expect(output).not.toContain("wrong-secret-xyz");
  });
});

describe("the HTTP surface", () => {
  it("publishes the OpenAPI document and the docs without a token", async () => {
    const doc = await app.inject({ url: "/docs/json", headers: as(null) });
    expect(doc.statusCode).toBe(200);
    const openapi = doc.json();
    expect(openapi.openapi).toMatch(/^3\./);
    expect(Object.keys(openapi.paths)).toEqual(expect.arrayContaining(["/api/v1/jobs", "/api/v1/jobs/{id}/steps", "/api/v1/jobs/{id}/commands", "/api/v1/datasets", "/api/v1/tokens"]));
    expect(openapi.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    expect((await app.inject({ url: "/docs", headers: as(null) })).statusCode).toBeLessThan(400);
  });

  it("sets security headers", async () => {
    const response = await app.inject({ url: "/api/v1/health" });
    expect(response.headers["x-content-type-options"]).toBe("nosniff");
    expect(response.headers["content-security-policy"]).toBeDefined();
  });

  it("rate-limits with 429 problem+json, and allows configured CORS origins", async () => {
    const { app: limited } = await createTestApp({ rateLimit: 3, corsOrigins: ["https://dash.example"] });
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await limited.inject({ url: "/api/v1/jobs" })).statusCode);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    const limitedResponse = await limited.inject({ url: "/api/v1/jobs" });
    expect(limitedResponse.headers["content-type"]).toMatch(/problem\+json/);
    expect(limitedResponse.json().detail).toMatch(/more than 3 requests/);
    const preflight = await limited.raw.inject({ method: "OPTIONS", url: "/api/v1/jobs", headers: { origin: "https://dash.example", "access-control-request-method": "GET" } });
    expect(preflight.headers["access-control-allow-origin"]).toBe("https://dash.example");
  });
});

describe("the first start", () => {
  it("creates one admin token when none exists, and never a second", async () => {
    const { ensureAdminToken } = await import("../../server/tokens.ts");
    const fresh = await createTestDatabase();
    const [a, b] = await Promise.all([ensureAdminToken(fresh.prisma, undefined), ensureAdminToken(fresh.prisma, undefined)]);
    expect([a, b].filter(Boolean)).toHaveLength(1);
    expect(await ensureAdminToken(fresh.prisma, undefined)).toBeNull();
    expect(await ensureAdminToken(fresh.prisma, "from-the-environment-123")).toBeNull();
    expect(await fresh.prisma.apiToken.count()).toBe(1);
  });
});
