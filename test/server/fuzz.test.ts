// Property-based: whatever a client sends — random JSON, wrong types, NaN-ish strings, huge
// numbers, deep nesting, SQL-looking text — every route answers a 4xx problem, never a 5xx.
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import type { TestDatabase } from "../helpers/database.ts";
import { demoSpec } from "../trainer/fixtures.ts";

let app: TestApp;
let db: TestDatabase;
let jobId: string;
let runId: string;
beforeAll(async () => {
  ({ app, db } = await createTestApp());
  jobId = (await app.inject({ method: "POST", url: "/api/v1/jobs", payload: demoSpec() })).json().id;
  runId = (await app.inject({ method: "POST", url: "/api/v1/runs", payload: { name: "r", layerNames: ["a"] } })).json().id;
});

const nasty = fc.oneof(
  fc.constantFrom("NaN", "Infinity", "-1", "1e309", "'; DROP TABLE \"Job\"; --", "\u0000", "ℕ𝔞𝔫", "../../etc/passwd", "__proto__", ""),
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
);
const value = fc.letrec((tie) => ({
  any: fc.oneof({ depthSize: "small" }, nasty, fc.array(tie("any"), { maxLength: 5 }), fc.dictionary(fc.oneof(fc.string(), fc.constantFrom("name", "steps", "model", "layers", "type", "units", "step", "gradNorm", "value")), tie("any"), { maxKeys: 6 })),
})).any;

/** A valid body with one field replaced by something arbitrary, at any depth. */
function mutated(valid: unknown): fc.Arbitrary<unknown> {
  return fc.tuple(fc.nat(), value).map(([seed, replacement]) => {
    const copy = structuredClone(valid) as Record<string, unknown>;
    const paths: (string | number)[][] = [];
    const walk = (node: unknown, path: (string | number)[]) => {
      if (node && typeof node === "object") {
        for (const [k, v] of Object.entries(node)) {
          paths.push([...path, Array.isArray(node) ? Number(k) : k]);
          walk(v, [...path, Array.isArray(node) ? Number(k) : k]);
        }
      }
    };
    walk(copy, []);
    const path = paths[seed % paths.length] ?? [];
    let target: Record<string | number, unknown> = copy;
    for (const key of path.slice(0, -1)) target = target[key] as Record<string | number, unknown>;
    target[path.at(-1) as string] = replacement;
    return copy;
  });
}

async function expectNo5xx(method: "GET" | "POST", url: string, payload?: unknown) {
  const response = await app.inject({ method, url, ...(payload === undefined ? {} : { payload: JSON.stringify(payload), headers: { "content-type": "application/json" } }) });
  expect(response.statusCode, `${method} ${url} ${JSON.stringify(payload)?.slice(0, 300)} → ${response.body.slice(0, 300)}`).toBeLessThan(500);
  if (response.statusCode >= 400) expect(response.headers["content-type"]).toMatch(/problem\+json/);
}

const runs = { numRuns: 150 };

describe("no input makes a 5xx", () => {
  it("POST /jobs with arbitrary bodies and with one field of a valid spec mutated", async () => {
    const before = await db.prisma.job.count();
    await fc.assert(fc.asyncProperty(value, (body) => expectNo5xx("POST", "/api/v1/jobs", body)), runs);
    let created = 0;
    await fc.assert(
      fc.asyncProperty(mutated(demoSpec()), async (body) => {
        const response = await app.inject({ method: "POST", url: "/api/v1/jobs", payload: JSON.stringify(body), headers: { "content-type": "application/json" } });
        expect(response.statusCode, `${JSON.stringify(body).slice(0, 400)} → ${response.body.slice(0, 300)}`).toBeLessThan(500);
        if (response.statusCode === 201) created++;
      }),
      { numRuns: 300 },
    );
    // Nothing half-stored: every row is a job that was answered 201.
    expect(await db.prisma.job.count()).toBe(before + created);
  });

  it("commands, runs, tokens and datasets with arbitrary bodies", async () => {
    await fc.assert(fc.asyncProperty(value, (body) => expectNo5xx("POST", `/api/v1/jobs/${jobId}/commands`, body)), runs);
    await fc.assert(fc.asyncProperty(value, (body) => expectNo5xx("POST", "/api/v1/runs", body)), runs);
    await fc.assert(fc.asyncProperty(value, (body) => expectNo5xx("POST", `/api/v1/runs/${runId}/steps`, body)), runs);
    await fc.assert(fc.asyncProperty(mutated({ steps: [{ step: 1, loss: 1, gradNorm: 1, layerNorms: [1], lr: 0.1, weightNorm: 1 }] }), (body) => expectNo5xx("POST", `/api/v1/runs/${runId}/steps`, body)), runs);
    await fc.assert(fc.asyncProperty(value, (body) => expectNo5xx("POST", "/api/v1/tokens", body)), runs);
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 300 }), async (csv) => {
        const response = await app.inject({ method: "POST", url: "/api/v1/datasets?name=f&target=y", headers: { "content-type": "text/csv" }, payload: csv });
        expect(response.statusCode, JSON.stringify(csv)).toBeLessThan(500);
      }),
      runs,
    );
  });

  it("GET routes with arbitrary ids and query strings", async () => {
    const segment = fc.oneof(fc.uuid(), nasty.map(String));
    const query = fc.dictionary(fc.constantFrom("status", "limit", "from", "to", "maxPoints", "fields", "kind", "severity", "after", "x"), nasty.map(String), { maxKeys: 4 });
    await fc.assert(
      fc.asyncProperty(segment, query, fc.constantFrom("", "/steps", "/events", "/commands"), (id, params, tail) =>
        expectNo5xx("GET", `/api/v1/jobs/${encodeURIComponent(id)}${tail}?${new URLSearchParams(params as Record<string, string>)}`),
      ),
      { numRuns: 300 },
    );
  });
});
