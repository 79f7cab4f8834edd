// /api/v1/jobs: submit, list, read, cancel, retry and delete jobs, and read a job's steps. A
// job's events are served by events.ts.
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import Type from "typebox";
import { JOB_CONTROL_CHANNEL } from "../../prisma/channels.ts";
import type { Job, Prisma } from "../../prisma/client.ts";
import { datasetFacts } from "../../trainer/data/dataset-store.ts";
import { checkJobSpec, type SpecLimits, type SpecProblem, withDefaults } from "../../trainer/spec.ts";
import { TRAINER_LOCK_CLASS } from "../../trainer/worker.ts";
import { ConflictProblem, InvalidRequestProblem, NotFoundProblem, ProblemSchema } from "../errors.ts";
import {
  CreateJobSchema,
  JobListSchema,
  JobParamsSchema,
  type JobResponse,
  JobSchema,
  ListJobsQuerySchema,
  RetryJobSchema,
  StepsQuerySchema,
  type StepsResponse,
  StepsSchema,
} from "../schemas/jobs.ts";
import { readSteps } from "../steps-query.ts";

const jobRoutes: FastifyPluginAsyncTypebox<{ limits: SpecLimits }> = async (app, { limits }) => {
  app.post(
    "/jobs",
    { schema: { body: CreateJobSchema, response: { 201: JobSchema, 400: ProblemSchema } } },
    async (request, reply) => {
      const { priority, ...submitted } = request.body;
      const problems: SpecProblem[] = [];
      const nulAt = nulCharacterAt(submitted);
      if (nulAt !== undefined) problems.push({ field: nulAt, message: "must not contain the character U+0000" });
      const data = submitted.data;
      if (data.kind === "csv") {
        // An upload's size and shape are recorded in the spec: the job says what it trained on.
        const facts = await datasetFacts(app.prisma, data.datasetId);
        for (const key of ["size", "features", "targets"] as const) {
          if (facts && data[key] !== undefined && data[key] !== facts[key]) {
            problems.push({ field: `/data/${key}`, message: `is ${facts[key]} for dataset ${data.datasetId}; leave it out and it is filled in` });
          }
        }
        if (facts) Object.assign(data, facts);
      }
      const spec = withDefaults(submitted);
      problems.push(...checkJobSpec(spec, limits));
      if (problems.length > 0) {
        throw new InvalidRequestProblem(
          problems.map((p) => `body${p.field}: ${p.message}`).join("; "),
          problems.map((p) => ({ in: "body" as const, ...p })),
          "urn:gradguard:problem:invalid-job-spec",
        );
      }
      const job = await app.prisma.job.create({ data: { name: spec.name, spec, priority } });
      reply.code(201).header("location", `${app.prefix}/jobs/${job.id}`);
      return toJobResponse(job);
    },
  );

  app.get(
    "/jobs",
    { schema: { querystring: ListJobsQuerySchema, response: { 200: JobListSchema, 400: ProblemSchema } } },
    async (request) => {
      const { status, name, cursor, limit } = request.query;
      const after = cursor === undefined ? undefined : decodeCursor(cursor);
      const where: Prisma.JobWhereInput = {
        ...(status ? { status } : {}),
        // Prisma passes `contains` to ILIKE as is: escape its wildcards so they match themselves.
        ...(name ? { name: { contains: name.replace(/[\\%_]/g, "\\$&"), mode: "insensitive" } } : {}),
        ...(after ? { OR: [{ createdAt: { lt: after.createdAt } }, { createdAt: after.createdAt, id: { lt: after.id } }] } : {}),
      };
      // One more than asked: whether it exists says whether there is a next page.
      const jobs = await app.prisma.job.findMany({ where, orderBy: [{ createdAt: "desc" }, { id: "desc" }], take: limit + 1 });
      const page = jobs.slice(0, limit);
      const last = page.at(-1);
      return { items: page.map(toJobResponse), nextCursor: jobs.length > limit && last ? encodeCursor(last) : null };
    },
  );

  app.get(
    "/jobs/:id",
    { schema: { params: JobParamsSchema, response: { 200: JobSchema, 400: ProblemSchema, 404: ProblemSchema } } },
    async (request) => toJobResponse(await findJob(request.params.id)),
  );

  app.get(
    "/jobs/:id/steps",
    {
      schema: {
        params: JobParamsSchema,
        querystring: StepsQuerySchema,
        response: { 200: StepsSchema, 400: ProblemSchema, 404: ProblemSchema },
      },
      // A long range is megabytes of numbers, and fast-json-stringify checks each one against the
      // number-or-null union: 80 ms for 2,000 points, against 17 ms for JSON.stringify. The body
      // is built column by column in steps-query.ts, so the schema stays the documented shape.
      serializerCompiler: () => (data) => JSON.stringify(data),
    },
    async (request): Promise<StepsResponse> => readSteps(app.prisma, await findJob(request.params.id), request.query),
  );

  app.post(
    "/jobs/:id/cancel",
    { schema: { params: JobParamsSchema, response: { 200: JobSchema, 400: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema } } },
    async (request) => {
      const { id } = request.params;
      // The update and the NOTIFY commit together: a running trainer hears it within one step.
      const [updated] = await app.prisma.$transaction([
        app.prisma.job.updateMany({
          where: { id, status: { in: ["queued", "running"] } },
          data: { status: "cancelled", finishedAt: new Date(), workerId: null },
        }),
        app.prisma.$executeRaw`SELECT pg_notify(${JOB_CONTROL_CHANNEL}, ${id})`,
      ]);
      const job = await findJob(id);
      if (updated.count === 0) throw new ConflictProblem(`job ${id} is ${job.status}; only a queued or running job can be cancelled`);
      return toJobResponse(job);
    },
  );

  app.post(
    "/jobs/:id/retry",
    {
      schema: {
        description:
          "Queues a failed, diverged or cancelled job again. From its last checkpoint: the steps and events before it are kept and training " +
          "goes on from it. From scratch: its steps, events and checkpoints are deleted and it trains from step 0. Either way it gets a fresh " +
          "budget of automatic crash retries (GRADGUARD_MAX_ATTEMPTS), and a `retried` event records who asked and how.",
        params: JobParamsSchema,
        body: RetryJobSchema,
        response: { 200: JobSchema, 400: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema },
      },
    },
    async (request) => {
      const { id } = request.params;
      const { from } = request.body;
      const by = request.caller?.tokenId ?? "unknown";
      // The job as the retry left it: read afterwards, a worker may already have claimed it.
      const queued = await app.prisma.$transaction(async (tx) => {
        const job = await lockIdleJob(tx, id, "retried");
        if (job.status === "succeeded") throw new ConflictProblem(`job ${id} succeeded; submit its spec again (POST /jobs) to train it anew`);
        let resumeAt = 0;
        if (from === "checkpoint") {
          const checkpoint = await tx.checkpoint.findFirst({ where: { jobId: id }, orderBy: { step: "desc" }, select: { step: true } });
          if (!checkpoint) throw new ConflictProblem(`job ${id} has no checkpoint to resume from; retry it with {"from": "scratch"}`);
          resumeAt = checkpoint.step;
          // Steps from the checkpoint on are trained again, and the events about them come again.
          await tx.step.deleteMany({ where: { jobId: id, step: { gte: resumeAt } } });
          await tx.event.deleteMany({ where: { jobId: id, step: { gte: resumeAt } } });
        } else {
          // The rollup rows follow the deleted steps (triggers of migration 20261126170000_step_rollup).
          await tx.step.deleteMany({ where: { jobId: id } });
          await tx.event.deleteMany({ where: { jobId: id } });
          await tx.checkpoint.deleteMany({ where: { jobId: id } });
        }
        // A command the last run never reached must not surprise the next one.
        await tx.command.updateMany({ where: { jobId: id, status: "pending" }, data: { status: "rejected", error: `the job ended (${job.status}) before it was applied` } });
        const lastStep = resumeAt > 0 ? resumeAt - 1 : null;
        const updated = await tx.job.update({
          where: { id },
          data: {
            status: "queued",
            lastStep,
            attemptsBeforeRetry: job.attempts,
            runAfter: null,
            error: null,
            paused: false,
            workerId: null,
            heartbeatAt: null,
            startedAt: null,
            finishedAt: null,
          },
        });
        await tx.event.create({
          data: {
            jobId: id,
            step: lastStep ?? -1,
            kind: "retried",
            severity: "info",
            message: from === "checkpoint" ? `retried from the checkpoint of step ${resumeAt}` : "retried from scratch",
            detail: { by, from, resumeAt, previousStatus: job.status, previousError: job.error, previousAttempts: job.attempts },
          },
        });
        return updated;
      });
      request.log.info({ jobId: id, from, by }, "job retried");
      return toJobResponse(queued);
    },
  );

  app.delete(
    "/jobs/:id",
    {
      config: { role: "admin" },
      schema: {
        description:
          "Deletes a job that is not running, with all its data: steps, events, checkpoints, commands. Cancel a running job first " +
          "(POST /jobs/:id/cancel): deleting it would pull its data from under its trainer.",
        params: JobParamsSchema,
        response: { 204: Type.Null({ description: "Deleted" }), 400: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      await app.prisma.$transaction(async (tx) => {
        await lockIdleJob(tx, id, "deleted");
        // Steps, their rollups, events, checkpoints, commands and an external run's decisions go
        // with it (ON DELETE CASCADE).
        await tx.job.delete({ where: { id } });
      });
      request.log.info({ jobId: id, by: request.caller?.tokenId }, "job deleted");
      reply.code(204);
    },
  );

  async function findJob(id: string): Promise<Job> {
    const job = await app.prisma.job.findUnique({ where: { id } });
    if (!job) throw new NotFoundProblem(`job ${id}`);
    return job;
  }
};

/**
 * Locks the job's row for the rest of the transaction (a worker's claim skips it meanwhile) and
 * makes sure no trainer is on it: not queued or running, and its last trainer process gone (a
 * cancelled job's trainer flushes its last steps and checkpoint before it exits).
 */
async function lockIdleJob(tx: Prisma.TransactionClient, id: string, change: "retried" | "deleted") {
  const [job] = await tx.$queryRaw<{ status: string; kind: string; attempts: number; error: string | null }[]>`
    SELECT "status"::text AS status, "kind"::text AS kind, "attempts", "error" FROM "Job" WHERE "id" = ${id}::uuid FOR UPDATE`;
  if (!job) throw new NotFoundProblem(`job ${id}`);
  if (change === "retried" && job.kind === "external") {
    throw new ConflictProblem(`job ${id} is an external run: it is trained elsewhere and cannot be retried here; register a new run (POST /runs)`);
  }
  if (job.status === "running") throw new ConflictProblem(`job ${id} is running; cancel it first (POST /jobs/${id}/cancel)`);
  if (job.status === "queued" && change === "retried") throw new ConflictProblem(`job ${id} is queued already; a worker will take it`);
  const [trainer] = await tx.$queryRaw<{ free: boolean }[]>`
    SELECT pg_try_advisory_xact_lock(${TRAINER_LOCK_CLASS}::int, hashtext(${id})) AS free`;
  if (!trainer?.free) throw new ConflictProblem(`job ${id} is ${job.status} but its trainer is still stopping; try again in a few seconds`);
  return job;
}

/** Postgres text and jsonb cannot hold U+0000: the JSON pointer of the first string (or key) with one. */
function nulCharacterAt(value: unknown, path = ""): string | undefined {
  if (typeof value === "string") return value.includes("\u0000") ? path || "/" : undefined;
  if (value === null || typeof value !== "object") return undefined;
  for (const [key, inner] of Object.entries(value)) {
    const at = `${path}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`;
    if (key.includes("\u0000")) return at;
    const found = nulCharacterAt(inner, at);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Opaque to clients: where a page ended, as (createdAt, id) of its last job. */
function encodeCursor(job: Job): string {
  return Buffer.from(JSON.stringify([job.createdAt.toISOString(), job.id])).toString("base64url");
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    decoded = undefined;
  }
  if (Array.isArray(decoded) && decoded.length === 2 && typeof decoded[0] === "string" && typeof decoded[1] === "string" && UUID.test(decoded[1])) {
    const createdAt = new Date(decoded[0]);
    if (!Number.isNaN(createdAt.getTime())) return { createdAt, id: decoded[1] };
  }
  const message = "is not a cursor this API gave out; pass the nextCursor of a previous page";
  throw new InvalidRequestProblem(`querystring/cursor: ${message}`, [{ in: "querystring", field: "/cursor", message }]);
}

function toJobResponse(job: Job): JobResponse {
  return {
    id: job.id,
    name: job.name,
    kind: job.kind,
    status: job.status,
    attempts: job.attempts,
    priority: job.priority,
    error: job.error,
    backend: job.backend,
    layerNames: job.layerNames,
    lastStep: job.lastStep,
    paused: job.paused,
    createdAt: job.createdAt.toISOString(),
    startedAt: job.startedAt?.toISOString() ?? null,
    finishedAt: job.finishedAt?.toISOString() ?? null,
    spec: job.spec as Record<string, unknown>,
  };
}

export default jobRoutes;
