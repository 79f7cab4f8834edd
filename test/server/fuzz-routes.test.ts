// Property-based, over EVERY route of the app's own OpenAPI document (a new route is covered
// without touching this file): random and malformed bodies, huge and deeply nested ones, wrong
// types, NaN/Infinity, enormous numbers, unicode and SQL-looking text in the body, the path and
// the query. Always a 4xx problem+json or a success — never a 5xx — and a refused request
// leaves every table as it was.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import type { TestDatabase } from "../helpers/database.ts";
import { demoSpec } from "../trainer/fixtures.ts";

interface Operation {
  parameters?: { in: string; name: string }[];
  requestBody?: { content: Record<string, { schema: unknown }> };
}
interface Route {
  method: string;
  /** With {name} placeholders, as in the document. */
  path: string;
  query: string[];
  /** Property names anywhere in the body schema, so random objects hit real fields. */
  fields: string[];
  contentType: string | undefined;
}

let app: TestApp;
let db: TestDatabase;
let routes: Route[];
let tables: string[];
/** Ids that exist, so routes get past their 404 into their validation. */
const ids: string[] = [];
/** Rows per table after the previous request. */
let counts: Record<string, number> = {};
const tally = { tried: 0, fiveHundreds: [] as string[], rowsChanged: [] as string[] };

beforeAll(async () => {
  ({ app, db } = await createTestApp());
  const doc = (await app.inject({ url: "/docs/json", headers: { authorization: null } })).json() as { paths: Record<string, Record<string, Operation>> };
  routes = Object.entries(doc.paths).flatMap(([path, operations]) =>
    Object.entries(operations).map(([method, operation]) => ({
      method: method.toUpperCase(),
      path,
      query: (operation.parameters ?? []).filter((p) => p.in === "query").map((p) => p.name),
      fields: [...propertyNames(operation.requestBody)],
      contentType: Object.keys(operation.requestBody?.content ?? {})[0],
    })),
  );
  tables = (await db.query<{ table_name: string }>(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)).map(
    (t) => t.table_name,
  );
  ids.push((await app.inject({ method: "POST", url: "/api/v1/jobs", payload: demoSpec() })).json().id);
  ids.push((await app.inject({ method: "POST", url: "/api/v1/runs", payload: { name: "r", layerNames: ["a"] } })).json().id);
  counts = await rowCounts();
});
afterAll(() => {
  console.log(`bad inputs tried: ${tally.tried}; 5xx seen: ${tally.fiveHundreds.length}; refused requests that changed rows: ${tally.rowsChanged.length}`);
});

function propertyNames(schema: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(schema)) for (const item of schema) propertyNames(item, into);
  else if (schema && typeof schema === "object") {
    for (const [key, value] of Object.entries(schema)) {
      if (key === "properties" && value && typeof value === "object") for (const name of Object.keys(value)) into.add(name);
      propertyNames(value, into);
    }
  }
  return into;
}

async function rowCounts(): Promise<Record<string, number>> {
  const [row] = await db.query<Record<string, number>>(`SELECT ${tables.map((t) => `(SELECT count(*)::int FROM "${t}") AS "${t}"`).join(", ")}`);
  return row ?? {};
}

const nastyText = fc.constantFrom(
  "NaN",
  "Infinity",
  "-Infinity",
  "-1",
  "1e309",
  "-0",
  "9007199254740993",
  "'; DROP TABLE \"Job\"; --",
  "1 OR 1=1",
  "\u0000",
  "\uFEFF",
  "\uD800",
  "ℕ𝔞𝔫 ﷽ 👩‍👩‍👧",
  "../../etc/passwd",
  "%2e%2e%2f",
  "__proto__",
  "constructor",
  "{{7*7}}",
  "",
  " ",
);
const scalar = fc.oneof(nastyText, fc.string(), fc.string({ unit: "binary", maxLength: 20 }), fc.integer(), fc.double(), fc.constantFrom(-1, 0, 2 ** 31, 2 ** 53, 1e308, -1e308), fc.boolean(), fc.constant(null));

/** Any JSON; objects use the route's own field names half the time. */
function jsonValue(fields: string[]): fc.Arbitrary<unknown> {
  const key = fields.length > 0 ? fc.oneof(fc.constantFrom(...fields, "__proto__", "constructor"), fc.string({ maxLength: 8 })) : fc.string({ maxLength: 8 });
  return fc.letrec((tie) => ({
    any: fc.oneof({ depthSize: "small" }, scalar, fc.array(tie("any"), { maxLength: 5 }), fc.dictionary(key, tie("any"), { maxKeys: 6 })),
  })).any;
}

/** Body text that is not valid JSON, or JSON that JSON.parse reads but no schema should accept. */
const malformedJson = fc.oneof(
  fc.constantFrom("{", "}", "[1,", '{"a":}', "{'a':1}", '{"a":NaN}', '{"a":Infinity}', "[-Infinity]", "nul", "undefined", '{"a":1}{"b":2}', '"\\ud800"', "\u0000", ""),
  fc.string().map((s) => `{"x":${s}`),
  fc.nat({ max: 20_000 }).map((depth) => "[".repeat(depth) + "]".repeat(depth)),
  fc.nat({ max: 20_000 }).map((depth) => `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`),
);

function fillPath(path: string, segment: string): string {
  // A lone surrogate cannot be percent-encoded; a client would have sent U+FFFD.
  return path.replace(/\{[^}]+\}/g, encodeURIComponent(segment.replace(/\p{Surrogate}/gu, "\uFFFD")));
}

/** Sends one request and records what must never happen. */
async function probe(route: Route, options: { segment: string; query: Record<string, string>; body?: string; contentType?: string; token?: boolean }): Promise<number> {
  const url = `${fillPath(route.path, options.segment)}?${new URLSearchParams(options.query)}`;
  const headers: Record<string, string | null> = {};
  if (options.body !== undefined) headers["content-type"] = options.contentType ?? route.contentType ?? "application/json";
  if (options.token === false) headers.authorization = null;
  const response = await app.inject({ method: route.method as "GET", url, headers, ...(options.body === undefined ? {} : { payload: options.body }) });
  tally.tried++;
  const what = `${route.method} ${url} ${options.body?.slice(0, 200) ?? ""} → ${response.statusCode} ${response.body.slice(0, 200)}`;
  if (response.statusCode >= 500) tally.fiveHundreds.push(what);
  if (response.statusCode >= 400) expect(response.headers["content-type"], what).toMatch(/^application\/problem\+json/);
  // Counted after every request: a refused one must leave them as the previous one did.
  const after = await rowCounts();
  if (response.statusCode >= 400 && JSON.stringify(after) !== JSON.stringify(counts)) tally.rowsChanged.push(`${what}: ${JSON.stringify(counts)} → ${JSON.stringify(after)}`);
  counts = after;
  return response.statusCode;
}

const segment = fc.oneof(fc.constantFrom("ID0", "ID1"), fc.uuid(), nastyText, fc.string({ maxLength: 40 }));
const realSegment = (s: string) => (s === "ID0" ? (ids[0] ?? s) : s === "ID1" ? (ids[1] ?? s) : s);

function queryOf(route: Route) {
  const name = route.query.length > 0 ? fc.oneof(fc.constantFrom(...route.query), fc.string({ maxLength: 6 })) : fc.string({ maxLength: 6 });
  return fc.dictionary(name, fc.oneof(nastyText, scalar.map(String)), { maxKeys: 4 });
}

describe("every route, bad input", () => {
  it("reads the routes from the app's OpenAPI document", () => {
    expect(routes.length).toBeGreaterThan(20);
    expect(routes.some((r) => r.method === "POST" && r.path === "/api/v1/jobs")).toBe(true);
  });

  it("random path segments, query strings and JSON bodies: never a 5xx, nothing stored when refused", async () => {
    for (const route of routes) {
      const takesBody = route.method !== "GET" && route.method !== "DELETE";
      await fc.assert(
        fc.asyncProperty(segment, queryOf(route), jsonValue(route.fields), async (id, query, body) => {
          await probe(route, { segment: realSegment(id), query, ...(takesBody ? { body: JSON.stringify(body) } : {}) });
        }),
        { numRuns: takesBody ? 40 : 15 },
      );
    }
  });

  it("malformed JSON, NaN/Infinity literals and deep nesting: 400, never a 5xx", async () => {
    for (const route of routes.filter((r) => r.method === "POST")) {
      await fc.assert(
        fc.asyncProperty(malformedJson, async (body) => {
          const status = await probe(route, { segment: ids[0] ?? "", query: {}, body, contentType: "application/json" });
          // A route without a body schema may ignore a well-formed (if absurd) body.
          if (route.contentType) expect(status, `${route.method} ${route.path} ${body.slice(0, 80)}`).toBeGreaterThanOrEqual(400);
        }),
        { numRuns: 25 },
      );
    }
  });

  it("a 10 MB body and a 10^6-element array: 413 (or 415 for the wrong type), never a 5xx", async () => {
    const huge = JSON.stringify({ name: "x".repeat(10 * 1024 * 1024) });
    const million = JSON.stringify({ name: "m", layerNames: Array(1_000_000).fill(0), steps: Array(1_000_000).fill(1) });
    for (const route of routes.filter((r) => r.method === "POST")) {
      for (const body of [huge, million]) {
        const status = await probe(route, { segment: ids[0] ?? "", query: {}, body });
        expect([413, 415], `${route.method} ${route.path}`).toContain(status);
      }
    }
  });

  it("without a token: 401 problem for every route that needs one, and nothing stored", async () => {
    for (const route of routes) {
      const takesBody = route.method !== "GET" && route.method !== "DELETE";
      await fc.assert(
        fc.asyncProperty(segment, jsonValue(route.fields), async (id, body) => {
          const status = await probe(route, { segment: realSegment(id), query: {}, token: false, ...(takesBody ? { body: JSON.stringify(body) } : {}) });
          if (!route.path.endsWith("/health") && !route.path.endsWith("/ready")) expect(status, `${route.method} ${route.path}`).toBe(401);
        }),
        { numRuns: 5 },
      );
    }
  });

  it("saw no 5xx and no half-stored row", () => {
    expect(tally.fiveHundreds).toEqual([]);
    expect(tally.rowsChanged).toEqual([]);
  });
});
