// GET /api/v1/session: any valid token learns its own role and name (the dashboard hides the
// controls a read token cannot use).
import { beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "../helpers/app.ts";

let app: TestApp;
beforeAll(async () => {
  ({ app } = await createTestApp());
});

describe("GET /api/v1/session", () => {
  it("tells each token its role and name, and refuses a missing or revoked one", async () => {
    expect((await app.inject({ url: "/api/v1/session" })).json()).toEqual({ role: "admin", name: "GRADGUARD_ADMIN_TOKEN" });
    const created = (await app.inject({ method: "POST", url: "/api/v1/tokens", payload: { name: "wall screen", role: "read" } })).json();
    const asReader = { authorization: `Bearer ${created.token}` };
    expect((await app.inject({ url: "/api/v1/session", headers: asReader })).json()).toEqual({ role: "read", name: "wall screen" });
    expect((await app.inject({ url: "/api/v1/session", headers: { authorization: null } })).statusCode).toBe(401);
    await app.inject({ method: "DELETE", url: `/api/v1/tokens/${created.id}` });
    expect((await app.inject({ url: "/api/v1/session", headers: asReader })).statusCode).toBe(401);
  });
});
