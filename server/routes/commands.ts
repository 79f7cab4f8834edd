// /api/v1/jobs/:id/commands: change a running job from outside — its learning rate, clip
// threshold or watchdog policy; pause, resume, checkpoint or stop it. Each command is a row
// plus a NOTIFY; the trainer applies it at its next step boundary and records when and where.
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import Type from "typebox";
import type { Command as CommandRow } from "../../prisma/client.ts";
import { JOB_CONTROL_CHANNEL } from "../../prisma/channels.ts";
import { CommandSchema } from "../../trainer/commands.ts";
import { ConflictProblem, NotFoundProblem, ProblemSchema } from "../errors.ts";
import { JobParamsSchema } from "../schemas/jobs.ts";

const CommandResponseSchema = Type.Object({
  id: Type.String(),
  jobId: Type.String({ format: "uuid" }),
  command: Type.Record(Type.String(), Type.Unknown(), { description: "The command as sent" }),
  status: Type.Enum(["pending", "applied", "rejected"]),
  createdAt: Type.String({ format: "date-time" }),
  appliedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  appliedStep: Type.Union([Type.Integer(), Type.Null()], { description: "It took effect before this step" }),
  error: Type.Union([Type.String(), Type.Null()]),
});

const commandRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    "/jobs/:id/commands",
    { schema: { params: JobParamsSchema, body: CommandSchema, response: { 202: CommandResponseSchema, 400: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema } } },
    async (request, reply) => {
      const { id } = request.params;
      const job = await app.prisma.job.findUnique({ where: { id }, select: { status: true, kind: true } });
      if (!job) throw new NotFoundProblem(`job ${id}`);
      // No gradguard trainer reads an external run's commands: its own loop applies the decisions it gets back.
      if (job.kind === "external") throw new ConflictProblem(`job ${id} is an external run; it takes no commands (its training loop applies the decisions POST /runs/${id}/steps returns)`);
      if (job.status !== "queued" && job.status !== "running") {
        throw new ConflictProblem(`job ${id} is ${job.status}; commands go to queued or running jobs`);
      }
      const [row] = await app.prisma.$transaction([
        app.prisma.command.create({ data: { jobId: id, command: request.body } }),
        app.prisma.$executeRaw`SELECT pg_notify(${JOB_CONTROL_CHANNEL}, ${id})`,
      ]);
      reply.code(202);
      return toResponse(row);
    },
  );

  app.get(
    "/jobs/:id/commands",
    { schema: { params: JobParamsSchema, response: { 200: Type.Object({ items: Type.Array(CommandResponseSchema) }), 400: ProblemSchema, 404: ProblemSchema } } },
    async (request) => {
      const { id } = request.params;
      if (!(await app.prisma.job.findUnique({ where: { id }, select: { id: true } }))) throw new NotFoundProblem(`job ${id}`);
      const rows = await app.prisma.command.findMany({ where: { jobId: id }, orderBy: { id: "asc" }, take: 1000 });
      return { items: rows.map(toResponse) };
    },
  );
};

function toResponse(row: CommandRow) {
  return {
    id: row.id.toString(),
    jobId: row.jobId,
    command: row.command as Record<string, unknown>,
    status: row.status,
    createdAt: row.createdAt.toISOString(),
    appliedAt: row.appliedAt?.toISOString() ?? null,
    appliedStep: row.appliedStep,
    error: row.error,
  };
}

export default commandRoutes;
