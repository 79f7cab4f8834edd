// Bearer-token authentication and role checks for /api/v1. A route's required role is its
// `config.role`; by default GET and HEAD need `read` and anything else `write`. Routes with
// `config.public` (health, readiness) need no token.
import fp from "fastify-plugin";
import type { PrismaClient } from "../../prisma/client.ts";
import { HttpProblem } from "../errors.ts";
import { hashToken, type Role, roleAllows, sameSecret } from "../tokens.ts";

declare module "fastify" {
  interface FastifyContextConfig {
    role?: Role;
    public?: boolean;
  }
  interface FastifyRequest {
    /** Who is calling: a stored token's id, or "environment" for GRADGUARD_ADMIN_TOKEN. */
    caller?: { tokenId: string; role: Role };
  }
}

export default fp<{ prisma: PrismaClient; adminToken: string | undefined }>(
  async (app, { prisma, adminToken }) => {
    app.addHook("onRequest", async (request, reply) => {
      const config = request.routeOptions.config;
      if (config.public || !request.url.startsWith("/api/")) return;
      const header = request.headers.authorization;
      const token = header?.startsWith("Bearer ") ? header.slice(7).trim() : undefined;
      if (!token) {
        reply.header("www-authenticate", 'Bearer realm="gradguard"');
        throw new HttpProblem(401, "Unauthorized", "send an API token: Authorization: Bearer <token>", "urn:gradguard:problem:unauthorized");
      }
      let caller: { tokenId: string; role: Role } | undefined;
      if (adminToken && sameSecret(token, adminToken)) {
        caller = { tokenId: "environment", role: "admin" };
      } else {
        const row = await prisma.apiToken.findUnique({ where: { hash: hashToken(token) } });
        if (row && row.revokedAt === null) {
          caller = { tokenId: row.id, role: row.role };
          // Best effort and at most once a minute per token: not a write on every request.
          const now = new Date();
          if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() > 60_000) {
            void prisma.apiToken.update({ where: { id: row.id }, data: { lastUsedAt: now } }).catch(() => {});
          }
        }
      }
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
