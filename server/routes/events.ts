// Events: what happened to jobs (watchdog decisions, faults, crashes, retries), per job at
// /jobs/:id/events and across jobs at /events. Both answer the same filters through listEvents.
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { Prisma, PrismaClient } from "../../prisma/client.ts";
import { InvalidRequestProblem, NotFoundProblem, ProblemSchema } from "../errors.ts";
import { toLiveEvent } from "../live/messages.ts";
import { AllEventsQuerySchema, EventListSchema, type EventsQuery, EventsQuerySchema, JobParamsSchema } from "../schemas/jobs.ts";

const eventRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    "/events",
    {
      schema: {
        description: "Events of every job, oldest first, filtered by job, kind, severity and time; page with `after`",
        querystring: AllEventsQuerySchema,
        response: { 200: EventListSchema, 400: ProblemSchema },
      },
    },
    async (request) => listEvents(app.prisma, request.query),
  );

  app.get(
    "/jobs/:id/events",
    {
      schema: {
        description: "One job's events, oldest first, filtered by kind, severity and time; page with `after`",
        params: JobParamsSchema,
        querystring: EventsQuerySchema,
        response: { 200: EventListSchema, 400: ProblemSchema, 404: ProblemSchema },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (!(await app.prisma.job.findUnique({ where: { id }, select: { id: true } }))) throw new NotFoundProblem(`job ${id}`);
      return listEvents(app.prisma, { ...request.query, jobId: id });
    },
  );
};

async function listEvents(prisma: PrismaClient, query: EventsQuery) {
  const { jobId, kind, severity, since, until, after, limit } = query;
  if (since !== undefined && until !== undefined && Date.parse(until) <= Date.parse(since)) {
    const message = "must be later than since";
    throw new InvalidRequestProblem(`querystring/until: ${message}`, [{ in: "querystring", field: "/until", message }]);
  }
  const createdAt: Prisma.DateTimeFilter = { ...(since ? { gte: new Date(since) } : {}), ...(until ? { lt: new Date(until) } : {}) };
  const events = await prisma.event.findMany({
    where: {
      ...(jobId ? { jobId } : {}),
      ...(kind ? { kind } : {}),
      ...(severity ? { severity } : {}),
      ...(since || until ? { createdAt } : {}),
      ...(after ? { id: { gt: BigInt(after) } } : {}),
    },
    orderBy: { id: "asc" },
    take: limit,
  });
  return {
    // The same shape socket.io sends as job:event.
    items: events.map(toLiveEvent),
    nextAfter: events.length === limit ? (events.at(-1)?.id.toString() ?? null) : null,
  };
}

export default eventRoutes;
