// GET /api/v1/health: the API answers and the database does too.
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import Type from "typebox";
import { ProblemSchema } from "../errors.ts";

const HealthSchema = Type.Object({ status: Type.Literal("ok"), database: Type.Literal("ok") });

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    "/health",
    { schema: { response: { 200: HealthSchema, 503: ProblemSchema } } },
    async (request, reply) => {
      try {
        await app.prisma.$queryRaw`SELECT 1`;
        return { status: "ok" as const, database: "ok" as const };
      } catch (error) {
        request.log.warn({ err: error }, "health check: database unreachable");
        return reply
          .code(503)
          .type("application/problem+json")
          .send({ type: "about:blank", title: "Service Unavailable", status: 503, detail: "the database does not answer" });
      }
    },
  );
};

export default healthRoutes;
