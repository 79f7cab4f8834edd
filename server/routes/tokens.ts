// /api/v1/tokens (admin): create, list and revoke API tokens. A token is returned once, at
// creation; afterwards only its name, role and first characters are shown. GET /api/v1/session
// (any token) says which role and name the caller's own token has.
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import Type from "typebox";
import { NotFoundProblem, ProblemSchema } from "../errors.ts";
import { createToken, ROLES } from "../tokens.ts";

const TokenSchema = Type.Object({
  id: Type.String({ format: "uuid" }),
  name: Type.String(),
  role: Type.Enum(ROLES),
  prefix: Type.String({ description: "The token's first characters" }),
  createdAt: Type.String({ format: "date-time" }),
  lastUsedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  revokedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
});

const admin = { role: "admin" as const };

const tokenRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    "/tokens",
    {
      config: admin,
      schema: {
        body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }), role: Type.Enum(ROLES) }, { additionalProperties: false }),
        response: { 201: Type.Intersect([TokenSchema, Type.Object({ token: Type.String({ description: "Shown this once" }) })]), 400: ProblemSchema },
      },
    },
    async (request, reply) => {
      const created = await createToken(app.prisma, request.body.name, request.body.role);
      reply.code(201);
      return { ...toResponse(created), token: created.token };
    },
  );

  app.get("/tokens", { config: admin, schema: { response: { 200: Type.Object({ items: Type.Array(TokenSchema) }) } } }, async () => {
    const rows = await app.prisma.apiToken.findMany({ orderBy: { createdAt: "asc" } });
    return { items: rows.map(toResponse) };
  });

  // Any valid token may ask who it is: the dashboard hides the controls a read token cannot use.
  app.get(
    "/session",
    { config: { role: "read" }, schema: { response: { 200: Type.Object({ role: Type.Enum(ROLES), name: Type.String({ description: "The token's name" }) }) } } },
    async (request) => {
      const caller = request.caller as NonNullable<typeof request.caller>;
      if (caller.tokenId === "environment") return { role: caller.role, name: "GRADGUARD_ADMIN_TOKEN" };
      const row = await app.prisma.apiToken.findUniqueOrThrow({ where: { id: caller.tokenId }, select: { name: true } });
      return { role: caller.role, name: row.name };
    },
  );

  app.delete(
    "/tokens/:id",
    { config: admin, schema: { params: Type.Object({ id: Type.String({ format: "uuid" }) }, { additionalProperties: false }), response: { 200: TokenSchema, 400: ProblemSchema, 404: ProblemSchema } } },
    async (request) => {
      const { count } = await app.prisma.apiToken.updateMany({ where: { id: request.params.id, revokedAt: null }, data: { revokedAt: new Date() } });
      const row = await app.prisma.apiToken.findUnique({ where: { id: request.params.id } });
      if (!row || (count === 0 && !row.revokedAt)) throw new NotFoundProblem(`token ${request.params.id}`);
      return toResponse(row);
    },
  );
};

function toResponse(row: { id: string; name: string; role: (typeof ROLES)[number]; prefix: string; createdAt: Date; lastUsedAt: Date | null; revokedAt: Date | null }) {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    prefix: row.prefix,
    createdAt: row.createdAt.toISOString(),
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    revokedAt: row.revokedAt?.toISOString() ?? null,
  };
}

export default tokenRoutes;
