// /api/v1/runs: the watchdog for any framework. A PyTorch, JAX or Keras loop registers a run,
// then sends its norms step by step (in batches) and applies the decisions it gets back: the
// same watchdog code as gradguard's own trainer decides, and the steps, events and alerts are
// stored like a job's, so the API and the dashboard show them the same way.
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import Type, { type Static } from "typebox";
import { Prisma, type PrismaClient, prepared } from "../../prisma/client.ts";
import { insertEventsSql, insertStepsSql } from "../../trainer/step-writer.ts";
import type { StepRecord, TrainingEvent } from "../../trainer/train-loop.ts";
import {
  clipCoefficient,
  type Decision,
  decide,
  InvalidWatchdogConfigError,
  initialState,
  resolveWatchdogConfig,
  type WatchdogConfig,
  WatchdogSpecSchema,
  type WatchdogState,
} from "../../trainer/watchdog/index.ts";
import { ConflictProblem, InvalidRequestProblem, NotFoundProblem, ProblemSchema } from "../errors.ts";
import { JobParamsSchema } from "../schemas/jobs.ts";

/** JSON has no NaN or Infinity: a non-finite value is sent as null (and its step is skipped). */
const Measured = Type.Union([Type.Number(), Type.Null()]);

const RunStepSchema = Type.Object(
  {
    step: Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1 }),
    loss: Measured,
    gradNorm: Type.Union([Type.Number({ minimum: 0 }), Type.Null()], { description: "Global L2 norm of the gradients, before clipping" }),
    layerNorms: Type.Optional(Type.Array(Measured, { maxItems: 4096, description: "Per-layer norms, in the run's layerNames order" })),
    lr: Type.Optional(Type.Union([Type.Number({ minimum: 0 }), Type.Null()], { description: "The scheduled learning rate (before the watchdog's lrScale)" })),
    weightNorm: Type.Optional(Type.Union([Type.Number({ minimum: 0 }), Type.Null()], { description: "Global L2 norm of the weights; enables the update-size detector" })),
  },
  { additionalProperties: false },
);

const DecisionSchema = Type.Object({
  step: Type.Integer(),
  clipTo: Type.Union([Type.Number(), Type.Null()], { description: "Clip the global gradient norm to this (null: do not clip)" }),
  lrScale: Type.Number({ description: "Multiply the base learning rate by this from this step on" }),
  skip: Type.Boolean({ description: "Do not apply this step's update" }),
  rollback: Type.Boolean({ description: "Restore your last checkpoint from before step rollbackBefore" }),
  rollbackBefore: Type.Union([Type.Integer(), Type.Null()]),
  stop: Type.Union([Type.String(), Type.Null()], { description: "Stop training: it diverged (the explanation)" }),
  action: Type.String(),
});
type DecisionResponse = Static<typeof DecisionSchema>;

const RunSchema = Type.Object({
  id: Type.String({ format: "uuid", description: "Also a job id: /jobs/:id/steps and /jobs/:id/events work on it" }),
  name: Type.String(),
  layerNames: Type.Array(Type.String()),
  policy: Type.String(),
  lastStep: Type.Integer({ description: "-1 before the first step" }),
});

const runRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const recentRuns = new RecentRuns(RECENT_RUNS);
  app.post(
    "/runs",
    {
      schema: {
        body: Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 200 }),
            layerNames: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 4096, description: "Names of the layers whose norms you will send; default none" })),
            watchdog: Type.Optional(WatchdogSpecSchema),
          },
          { additionalProperties: false },
        ),
        response: { 201: RunSchema, 400: ProblemSchema },
      },
    },
    async (request, reply) => {
      const { name, watchdog } = request.body;
      const layerNames = request.body.layerNames ?? [];
      let config: WatchdogConfig;
      try {
        config = resolveWatchdogConfig(watchdog);
      } catch (error) {
        if (!(error instanceof InvalidWatchdogConfigError)) throw error;
        throw new InvalidRequestProblem(error.message, error.problems.map((p) => ({ in: "body" as const, field: `/watchdog${p.field}`, message: p.message })));
      }
      const spec = { kind: "external", name, layerNames, watchdog: { policy: config.policy, ...watchdog } };
      const job = await app.prisma.job.create({
        data: {
          kind: "external",
          name,
          spec,
          status: "running",
          layerNames,
          startedAt: new Date(),
          backend: "external",
          externalRun: { create: { config: json(config), state: json(initialState(config, layerNames)) } },
        },
      });
      reply.code(201).header("location", `${app.prefix}/runs/${job.id}`);
      return { id: job.id, name, layerNames, policy: config.policy, lastStep: -1 };
    },
  );

  app.post(
    "/runs/:id/steps",
    {
      schema: {
        params: JobParamsSchema,
        body: Type.Object({ steps: Type.Array(RunStepSchema, { minItems: 1, maxItems: 10_000 }) }, { additionalProperties: false }),
        response: { 200: Type.Object({ decisions: Type.Array(DecisionSchema) }), 400: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema },
      },
    },
    async (request) => {
      const { id } = request.params;
      const steps = [...request.body.steps].sort((a, b) => a.step - b.step);
      steps.forEach((s, i) => {
        if (i > 0 && steps[i - 1]?.step === s.step) {
          throw new InvalidRequestProblem(`step ${s.step} appears twice in this batch`, [{ in: "body", field: "/steps", message: `step ${s.step} appears twice` }]);
        }
      });
      const decisions = await decideSteps(app.prisma, recentRuns, id, steps);
      return { decisions: request.body.steps.map((s) => decisions.get(s.step) as DecisionResponse) };
    },
  );
};

type RunStep = Static<typeof RunStepSchema>;

/** Rounds of read → decide → store a request may lose to concurrent requests on the same run. */
const MAX_ATTEMPTS = 10;
/** How many runs' watchdog states this server remembers (a few kB of JSON each). */
const RECENT_RUNS = 500;

/** A run as stored after its last accepted step. */
interface RunSnapshot {
  config: WatchdogConfig;
  state: WatchdogState;
  lastStep: number;
}

/**
 * The runs this server stored last, as it stored them, so that the next request on the same run
 * can decide without reading the run first: one round trip a request instead of two, and no 6 kB
 * state to read and parse. Nothing depends on it being right: the write is conditional on the
 * run's lastStep and status, so a snapshot that another server or request has overtaken, or a
 * run stopped meanwhile, stores nothing, and the request reads the run as if it had no snapshot.
 * The least recently stored go first.
 */
class RecentRuns {
  private readonly runs = new Map<string, RunSnapshot>();

  constructor(private readonly capacity: number) {}

  get(jobId: string): RunSnapshot | undefined {
    return this.runs.get(jobId);
  }

  set(jobId: string, run: RunSnapshot): void {
    this.runs.delete(jobId);
    this.runs.set(jobId, run);
    if (this.runs.size > this.capacity) this.runs.delete(this.runs.keys().next().value as string);
  }

  forget(jobId: string): void {
    this.runs.delete(jobId);
  }
}

/**
 * Decides each new step in order from the run's watchdog state, answers steps at or before the
 * last decided one from their stored decisions, and stores the new steps, events, decisions (one
 * row for the request) and state in ONE statement (the profile showed the server waiting on
 * PostgreSQL through seven round trips). The statement stores only if the run is still running
 * and still at the lastStep its state was read at; a concurrent request that got there first
 * makes this one read and decide again. The state comes from `recentRuns` when this server wrote
 * the run last and the request brings new steps; else from PostgreSQL, which also says whether
 * the run exists and still takes steps.
 */
async function decideSteps(prisma: PrismaClient, recentRuns: RecentRuns, jobId: string, steps: RunStep[]): Promise<Map<number, DecisionResponse>> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const recent = attempt === 0 ? recentRuns.get(jobId) : undefined;
    const run = recent && (steps.at(-1)?.step as number) > recent.lastStep ? recent : await readRun(prisma, jobId);
    const answers = await storedAnswers(prisma, jobId, run, steps);
    const { state, records, events, fresh } = decideFresh(run, steps.filter((s) => s.step > run.lastStep), answers);
    if (fresh.length === 0) return answers;
    const lastStep = fresh.at(-1)?.step as number;
    const stop = fresh.find((f) => f.decision.stop !== null)?.decision.stop ?? null;
    const stored = Prisma.sql`EXISTS (SELECT 1 FROM run)`;
    const [result] = await prisma.$queryRaw<{ stored: boolean }[]>(prepared(Prisma.sql`
      WITH run AS (
        UPDATE "ExternalRun" SET "state" = ${JSON.stringify(state)}::jsonb, "lastStep" = ${lastStep}::int
        WHERE "jobId" = ${jobId}::uuid AND "lastStep" = ${run.lastStep}::int
          AND EXISTS (SELECT 1 FROM "Job" WHERE id = ${jobId}::uuid AND status = 'running')
        RETURNING "jobId"),
      steps AS (${insertStepsSql(jobId, records, stored)}),
      events AS (${insertEventsSql(jobId, events, stored)}),
      decisions AS (
        INSERT INTO "RunDecisionBatch" ("jobId", "firstStep", "lastStep", "decisions")
        SELECT ${jobId}::uuid, ${fresh[0]?.step}::int, ${lastStep}::int, ${JSON.stringify(fresh.map((f) => f.decision))}::json
        WHERE ${stored}
        ON CONFLICT DO NOTHING),
      job AS (
        UPDATE "Job" SET "lastStep" = GREATEST(COALESCE("lastStep", -1), ${lastStep}::int),
          "status" = CASE WHEN ${stop}::text IS NULL THEN "status" ELSE 'diverged' END,
          "error" = COALESCE(${stop}::text, "error"),
          "finishedAt" = CASE WHEN ${stop}::text IS NULL THEN "finishedAt" ELSE now() END
        WHERE id = ${jobId}::uuid AND ${stored})
      SELECT ${stored} AS stored`));
    if (result?.stored) {
      if (stop === null) recentRuns.set(jobId, { config: run.config, state, lastStep });
      else recentRuns.forget(jobId);
      return answers;
    }
    recentRuns.forget(jobId);
  }
  throw new ConflictProblem(`run ${jobId} is being written by other requests; send its steps from one client, in order`);
}

/** The run as stored; a run that does not exist or no longer takes steps is a problem. */
async function readRun(prisma: PrismaClient, jobId: string): Promise<RunSnapshot> {
  const [run] = await prisma.$queryRaw<(RunSnapshot & { status: string })[]>`
    SELECT r.config, r.state, r."lastStep", j.status::text AS status
    FROM "ExternalRun" r JOIN "Job" j ON j.id = r."jobId" WHERE r."jobId" = ${jobId}::uuid`;
  if (!run) throw new NotFoundProblem(`run ${jobId}`);
  if (run.status !== "running") throw new ConflictProblem(`run ${jobId} is ${run.status}; it takes no more steps`);
  return run;
}

/** Decisions already given for the steps at or before the run's last one; a step older than that and never sent is a conflict. */
async function storedAnswers(prisma: PrismaClient, jobId: string, run: { lastStep: number; state: WatchdogState }, steps: RunStep[]): Promise<Map<number, DecisionResponse>> {
  const layerCount = run.state.layerNames.length;
  for (const s of steps) {
    if ((s.layerNorms?.length ?? 0) !== layerCount && s.step > run.lastStep) {
      throw new InvalidRequestProblem(`step ${s.step} has ${s.layerNorms?.length ?? 0} layer norms; the run has ${layerCount} layers`, [
        { in: "body", field: "/steps", message: `layerNorms must have ${layerCount} entries` },
      ]);
    }
  }
  const answers = new Map<number, DecisionResponse>();
  const old = steps.filter((s) => s.step <= run.lastStep).map((s) => s.step);
  if (old.length === 0) return answers;
  const wanted = new Set(old);
  const batches = await prisma.runDecisionBatch.findMany({
    where: { jobId, firstStep: { lte: Math.max(...old) }, lastStep: { gte: Math.min(...old) } },
  });
  for (const batch of batches) {
    for (const decision of batch.decisions as DecisionResponse[]) if (wanted.has(decision.step)) answers.set(decision.step, decision);
  }
  for (const step of old) {
    if (!answers.has(step)) {
      throw new ConflictProblem(`step ${step} is older than the last decided step (${run.lastStep}) and was never sent; send steps in order`);
    }
  }
  return answers;
}

/** The watchdog's decision on each new step, in order (pure: nothing is stored here); adds them to `answers`. */
function decideFresh(run: { config: WatchdogConfig; state: WatchdogState }, newSteps: RunStep[], answers: Map<number, DecisionResponse>) {
  let state = run.state;
  const records: StepRecord[] = [];
  const events: TrainingEvent[] = [];
  const fresh: { step: number; decision: DecisionResponse }[] = [];
  for (const s of newSteps) {
    const loss = measured(s.loss);
    const gradNorm = measured(s.gradNorm);
    const lr = measured(s.lr);
    const weightNorm = measured(s.weightNorm);
    const layerNorms = (s.layerNorms ?? []).map(measured);
    const updateRatio = weightNorm > 0 ? (lr * state.ladder.lrScale * gradNorm) / weightNorm : Number.NaN;
    const result = decide(run.config, state, { step: s.step, loss, gradNorm, layerNorms, lr, updateRatio, weightNorm });
    state = result.state;
    const decision = toResponse(s.step, gradNorm, result.decision);
    fresh.push({ step: s.step, decision });
    answers.set(s.step, decision);
    events.push(...result.decision.events);
    const nonFinite = !Number.isFinite(loss) || !Number.isFinite(gradNorm);
    const clipCoef = clipCoefficient(gradNorm, decision.clipTo);
    records.push({
      step: s.step,
      loss,
      gradNorm,
      layerNorms,
      weightNorm,
      updateRatio,
      gradNormAfter: decision.skip ? 0 : gradNorm * clipCoef,
      clipCoef,
      action: result.decision.action,
      lr: lr * result.decision.lrScale,
      nonFinite,
      stepMs: 0,
      valLoss: null,
    });
  }
  return { state, records, events, fresh };
}

/** A value as sent: null (JSON's stand-in for a non-finite number) or absent is NaN. */
function measured(value: number | null | undefined): number {
  return value === null || value === undefined ? Number.NaN : value;
}

/**
 * An external run reports no optimizer state, so its update ratio is SGD's, lr·‖g‖/‖w‖, and a
 * bound on the update (stepScale) is the same as clipping the gradient by that factor: it is
 * sent as a clipTo, the one mitigation every training loop already applies.
 */
function toResponse(step: number, gradNorm: number, decision: Decision): DecisionResponse {
  const boundTo = decision.stepScale < 1 ? gradNorm * decision.stepScale : null;
  return {
    step,
    clipTo: boundTo !== null && (decision.clipTo === null || boundTo < decision.clipTo) ? boundTo : decision.clipTo,
    lrScale: decision.lrScale,
    skip: decision.skip,
    rollback: decision.rollbackBefore !== null,
    rollbackBefore: decision.rollbackBefore,
    stop: decision.stop,
    action: decision.action,
  };
}

/** A JSON-safe value for Prisma's Json columns (the watchdog keeps only finite numbers). */
function json(value: unknown): Prisma.InputJsonValue {
  return value as Prisma.InputJsonValue;
}

export default runRoutes;
