// /api/v1/runs: the watchdog for any framework. A PyTorch, JAX or Keras loop registers a run,
// then sends its norms step by step (in batches) and applies the decisions it gets back: the
// same watchdog code as gradguard's own trainer decides, and the steps, events and alerts are
// stored like a job's, so the API and the dashboard show them the same way.
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import Type, { type Static } from "typebox";
import type { Prisma } from "../../prisma/client.ts";
import { writeSteps } from "../../trainer/step-writer.ts";
import type { StepRecord, TrainingEvent } from "../../trainer/train-loop.ts";
import {
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
      const decisions = await app.prisma.$transaction((tx) => decideSteps(tx, id, steps));
      return { decisions: request.body.steps.map((s) => decisions.get(s.step) as DecisionResponse) };
    },
  );
};

type RunStep = Static<typeof RunStepSchema>;

/**
 * Decides each new step in order under a row lock on the run (so concurrent requests queue),
 * answers steps at or before the last decided one from their stored decisions, and stores the
 * new steps, events and decisions in the same transaction.
 */
async function decideSteps(tx: Prisma.TransactionClient, jobId: string, steps: RunStep[]): Promise<Map<number, DecisionResponse>> {
  const [run] = await tx.$queryRaw<{ config: WatchdogConfig; state: WatchdogState; lastStep: number; status: string }[]>`
    SELECT r.config, r.state, r."lastStep", j.status::text AS status
    FROM "ExternalRun" r JOIN "Job" j ON j.id = r."jobId" WHERE r."jobId" = ${jobId}::uuid FOR UPDATE OF r`;
  if (!run) throw new NotFoundProblem(`run ${jobId}`);
  if (run.status !== "running") throw new ConflictProblem(`run ${jobId} is ${run.status}; it takes no more steps`);
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
  if (old.length > 0) {
    const stored = await tx.runDecision.findMany({ where: { jobId, step: { in: old } } });
    for (const row of stored) answers.set(row.step, row.decision as DecisionResponse);
    for (const step of old) {
      if (!answers.has(step)) {
        throw new ConflictProblem(`step ${step} is older than the last decided step (${run.lastStep}) and was never sent; send steps in order`);
      }
    }
  }

  let state = run.state;
  const records: StepRecord[] = [];
  const events: TrainingEvent[] = [];
  const fresh: { step: number; decision: DecisionResponse }[] = [];
  for (const s of steps.filter((x) => x.step > run.lastStep)) {
    const number = (value: number | null | undefined) => (value === null || value === undefined ? Number.NaN : value);
    const gradNorm = number(s.gradNorm);
    const lr = number(s.lr);
    const weightNorm = number(s.weightNorm);
    const layerNorms = (s.layerNorms ?? []).map(number);
    const updateRatio = weightNorm > 0 ? (lr * state.ladder.lrScale * gradNorm) / weightNorm : Number.NaN;
    const result = decide(run.config, state, { step: s.step, loss: number(s.loss), gradNorm, layerNorms, lr, updateRatio });
    state = result.state;
    const decision = toResponse(s.step, result.decision);
    fresh.push({ step: s.step, decision });
    answers.set(s.step, decision);
    events.push(...result.decision.events);
    const nonFinite = !Number.isFinite(number(s.loss)) || !Number.isFinite(gradNorm);
    const clipCoef = decision.clipTo !== null && gradNorm > decision.clipTo ? decision.clipTo / gradNorm : 1;
    records.push({
      step: s.step,
      loss: number(s.loss),
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
  if (fresh.length > 0) {
    await writeSteps(tx, jobId, records, events);
    await tx.runDecision.createMany({ data: fresh.map((f) => ({ jobId, step: f.step, decision: f.decision })), skipDuplicates: true });
    const lastStep = fresh.at(-1)?.step as number;
    await tx.externalRun.update({ where: { jobId }, data: { state: json(state), lastStep } });
    const stop = fresh.find((f) => f.decision.stop !== null);
    if (stop) {
      await tx.job.update({ where: { id: jobId }, data: { status: "diverged", error: stop.decision.stop, finishedAt: new Date() } });
    }
  }
  return answers;
}

function toResponse(step: number, decision: Decision): DecisionResponse {
  return {
    step,
    clipTo: decision.clipTo,
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
