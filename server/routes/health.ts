// GET /api/v1/health: the process answers (liveness). GET /api/v1/ready: the database answers
// and the job queue can be read (readiness: route traffic here). Neither needs a token.
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import Type from "typebox";
import { HttpProblem, ProblemSchema } from "../errors.ts";

const open = { public: true };

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get("/health", { config: open, schema: { security: [], response: { 200: Type.Object({ status: Type.Literal("ok") }) } } }, async () => ({ status: "ok" as const }));

  app.get(
    "/ready",
    {
      config: open,
      schema: {
        security: [],
        response: { 200: Type.Object({ status: Type.Literal("ready"), database: Type.Literal("ok"), queuedJobs: Type.Integer(), runningJobs: Type.Integer() }), 503: ProblemSchema },
      },
    },
    async (request) => {
      try {
        const counts = await app.prisma.job.groupBy({ by: ["status"], where: { status: { in: ["queued", "running"] } }, _count: true });
        const count = (status: string) => counts.find((c) => c.status === status)?._count ?? 0;
        return { status: "ready" as const, database: "ok" as const, queuedJobs: count("queued"), runningJobs: count("running") };
      } catch (error) {
        request.log.warn({ err: error }, "readiness check: database unreachable");
        throw new HttpProblem(503, "Service Unavailable", "the database does not answer");
      }
    },
  );
};

export default healthRoutes;
