// Bearer-token authentication and role checks for /api/v1. A route's required role is its
// `config.role`; by default GET and HEAD need `read` and anything else `write`. Routes with
// `config.public` (health, readiness) need no token.
import fp from "fastify-plugin";
import type { PrismaClient } from "../../prisma/client.ts";
import { HttpProblem, ProblemSchema } from "../errors.ts";
import { type Caller, findCaller, type Role, roleAllows } from "../tokens.ts";

declare module "fastify" {
  interface FastifyContextConfig {
    role?: Role;
    public?: boolean;
  }
  interface FastifyRequest {
    caller?: Caller;
  }
}

export default fp<{ prisma: PrismaClient; adminToken: string | undefined }>(
  async (app, { prisma, adminToken }) => {
    // Every guarded route can answer 401, 403 and 429 (the rate limit): say so in its OpenAPI
    // entry, so clients see the whole contract without each route repeating it.
    app.addHook("onRoute", (route) => {
      if (route.config?.public || !route.url.startsWith("/api/") || !route.schema) return;
      const response = (route.schema.response ?? {}) as Record<string, unknown>;
      route.schema.response = { 401: ProblemSchema, 403: ProblemSchema, 429: ProblemSchema, ...response };
    });
    app.addHook("onRequest", async (request, reply) => {
      const config = request.routeOptions.config;
      if (config.public || !request.url.startsWith("/api/")) return;
      const header = request.headers.authorization;
      const token = header?.startsWith("Bearer ") ? header.slice(7).trim() : undefined;
      if (!token) {
        reply.header("www-authenticate", 'Bearer realm="gradguard"');
        throw new HttpProblem(401, "Unauthorized", "send an API token: Authorization: Bearer <token>", "urn:gradguard:problem:unauthorized");
      }
      const caller = await findCaller(prisma, adminToken, token);
      if (!caller) {
        reply.header("www-authenticate", 'Bearer realm="gradguard", error="invalid_token"');
        throw new HttpProblem(401, "Unauthorized", "the API token is unknown or revoked", "urn:gradguard:problem:unauthorized");
      }
      const needed: Role = config.role ?? (request.method === "GET" || request.method === "HEAD" ? "read" : "write");
      if (!roleAllows(caller.role, needed)) {
        throw new HttpProblem(403, "Forbidden", `this needs a ${needed} token; yours is ${caller.role}`, "urn:gradguard:problem:forbidden");
      }
      request.caller = caller;
    });
  },
  { name: "auth", dependencies: [] },
);
