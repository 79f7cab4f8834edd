// Access per role for EVERY route the app registers: no token, read, write and admin. The
// routes are read from the app itself, so a new route fails here until its role is declared in
// ROLES below (and, for a role other than the method's default, in its `config.role`).
import { beforeAll, describe, expect, it } from "vitest";
import { type Role, roleAllows } from "../../server/tokens.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";

/** Who may call each route: `public` needs no token. HEAD follows GET. */
const ROLES: Record<string, Role | "public"> = {
  "GET /api/v1/health": "public",
  "GET /api/v1/ready": "public",
  "POST /api/v1/jobs": "write",
  "GET /api/v1/jobs": "read",
  "GET /api/v1/jobs/:id": "read",
  "DELETE /api/v1/jobs/:id": "admin",
  "GET /api/v1/jobs/:id/steps": "read",
  "POST /api/v1/jobs/:id/cancel": "write",
  "POST /api/v1/jobs/:id/retry": "write",
  "GET /api/v1/jobs/:id/events": "read",
  "GET /api/v1/events": "read",
  "POST /api/v1/jobs/:id/commands": "write",
  "GET /api/v1/jobs/:id/commands": "read",
  "POST /api/v1/datasets": "write",
  "GET /api/v1/datasets": "read",
  "GET /api/v1/datasets/:id": "read",
  "POST /api/v1/tokens": "admin",
  "GET /api/v1/tokens": "admin",
  "DELETE /api/v1/tokens/:id": "admin",
  "GET /api/v1/session": "read",
  "POST /api/v1/runs": "write",
  "POST /api/v1/runs/:id/steps": "write",
  "GET /api/v1/presets": "read",
  "GET /api/v1/alerts": "read",
  "POST /api/v1/alerts/:id/ack": "write",
  "POST /api/v1/webhooks": "admin",
  "GET /api/v1/webhooks": "admin",
  "DELETE /api/v1/webhooks/:id": "admin",
  "GET /api/v1/webhooks/:id/deliveries": "admin",
  // Outside the API: Prometheus scrapes with a token of any role.
  "GET /metrics": "read",
};

/**
 * The role a route needs. Outside /api, GETs not in ROLES are the docs and the dashboard's
 * static files (their names change with each build), which are public.
 */
function roleOf(route: string): Role | "public" | undefined {
  return ROLES[route] ?? (route.startsWith("GET /") && !route.startsWith("GET /api/") ? "public" : undefined);
}

let app: TestApp;
const tokens: Partial<Record<Role, string>> = {};
beforeAll(async () => {
  ({ app } = await createTestApp());
  for (const role of ["read", "write", "admin"] as const) {
    const created = await app.inject({ method: "POST", url: "/api/v1/tokens", payload: { name: `${role} caller`, role } });
    tokens[role] = created.json().token;
  }
});

/** Every route as "METHOD /path", read from Fastify's own route tree (hidden routes included). */
function registeredRoutes(): string[] {
  const routes: string[] = [];
  const parents: string[] = [];
  for (const line of app.raw.printRoutes({ commonPrefix: false }).split("\n")) {
    const match = /^([│├└─\s]*?)(?:[├└]── )(\S+)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!match) continue;
    const depth = ((match[1] ?? "").length) / 4;
    parents.length = depth;
    const path = parents.join("") + match[2];
    parents.push(match[2] as string);
    for (const method of (match[3] ?? "").split(", ").filter((m) => m && m !== "HEAD")) routes.push(`${method} ${path}`);
  }
  return routes;
}

/** A request that reaches the route's handler without changing anything: unknown ids, empty bodies. */
function probe(route: string, token: string | undefined) {
  const [method, path] = route.split(" ") as [string, string];
  const url = path.replace(/:[a-zA-Z]+/g, "00000000-0000-4000-8000-000000000000").replace("*", "x");
  const withBody = method === "POST" || method === "PUT" || method === "PATCH";
  return app.inject({
    method: method as "GET",
    url,
    headers: { authorization: token ? `Bearer ${token}` : null },
    ...(withBody ? { payload: {} } : {}),
  });
}

describe("roles", () => {
  it("reads a sensible list of routes from the app", () => {
    const routes = registeredRoutes();
    expect(routes).toContain("GET /api/v1/jobs/:id/steps");
    expect(routes).toContain("DELETE /api/v1/jobs/:id");
    expect(routes).toContain("GET /docs/json");
  });

  it("knows the role of every route, and every route it knows exists", () => {
    const routes = registeredRoutes();
    expect(routes.filter((r) => roleOf(r) === undefined), "declare who may call these in ROLES (test/server/roles.test.ts)").toEqual([]);
    expect(Object.keys(ROLES).filter((r) => !routes.includes(r)), "these are in ROLES but not registered").toEqual([]);
  });

  it("gives each route exactly its role: 401 without a token, 403 below the role, through at or above it", async () => {
    const failures: string[] = [];
    for (const route of registeredRoutes()) {
      const needed = roleOf(route);
      if (!needed) continue; // reported by the test above
      const anonymous = await probe(route, undefined);
      if (needed === "public" ? anonymous.statusCode === 401 : anonymous.statusCode !== 401) failures.push(`${route} without a token: ${anonymous.statusCode}`);
      for (const role of ["read", "write", "admin"] as const) {
        const { statusCode } = await probe(route, tokens[role]);
        const allowed = needed === "public" || roleAllows(role, needed);
        if (allowed ? statusCode === 401 || statusCode === 403 || statusCode >= 500 : statusCode !== 403) failures.push(`${route} as ${role}: ${statusCode}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it("documents every API route in the OpenAPI document, with its error responses", async () => {
    const doc = (await app.inject({ url: "/docs/json", headers: { authorization: null } })).json() as {
      paths: Record<string, Record<string, { responses: Record<string, unknown>; parameters?: unknown[]; requestBody?: unknown }>>;
    };
    const missing: string[] = [];
    for (const route of registeredRoutes().filter((r) => r.split(" ")[1]?.startsWith("/api/"))) {
      const [method, path] = route.split(" ") as [string, string];
      const operation = doc.paths[path.replace(/:([a-zA-Z]+)/g, "{$1}")]?.[method.toLowerCase()];
      if (!operation) {
        missing.push(`${route}: not in the document`);
        continue;
      }
      const statuses = Object.keys(operation.responses);
      if (!statuses.some((s) => s.startsWith("2"))) missing.push(`${route}: no success response`);
      const takesInput = (operation.parameters?.length ?? 0) > 0 || operation.requestBody !== undefined;
      if (takesInput && !statuses.includes("400")) missing.push(`${route}: takes input but declares no 400`);
      if (path.includes(":") && !statuses.includes("404")) missing.push(`${route}: has an id but declares no 404`);
      const guarded = roleOf(route) !== "public";
      for (const status of ["401", "403", "429"]) {
        if (guarded && !statuses.includes(status)) missing.push(`${route}: needs a token but declares no ${status}`);
      }
    }
    expect(missing).toEqual(KNOWN_DOCUMENTATION_GAPS);
  });
});

/** Gaps in routes this file's author does not own, reported to the lead; empty it once fixed. */
const KNOWN_DOCUMENTATION_GAPS: string[] = [];
