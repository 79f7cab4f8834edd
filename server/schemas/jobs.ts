// The jobs resource at the API boundary: request and response schemas (validation, types and
// OpenAPI from one place). The job spec itself is the trainer's contract (trainer/spec.ts).
import Type, { type Static } from "typebox";
import { JobSpecSchema } from "../../trainer/spec.ts";

export const JOB_STATUSES = ["queued", "running", "succeeded", "failed", "cancelled", "diverged"] as const;

export const JobSchema = Type.Object({
  id: Type.String({ format: "uuid" }),
  name: Type.String(),
  status: Type.Enum(JOB_STATUSES),
  attempts: Type.Integer({ description: "How many times a trainer has started this job" }),
  error: Type.Union([Type.String(), Type.Null()]),
  backend: Type.Union([Type.String(), Type.Null()], { description: "tfjs backend of the last attempt" }),
  layerNames: Type.Array(Type.String()),
  lastStep: Type.Union([Type.Integer(), Type.Null()], { description: "Last step stored; null before the first" }),
  createdAt: Type.String({ format: "date-time" }),
  startedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  finishedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  spec: JobSpecSchema,
});
export type JobResponse = Static<typeof JobSchema>;

export const JobParamsSchema = Type.Object({ id: Type.String({ format: "uuid" }) }, { additionalProperties: false });

export const ListJobsQuerySchema = Type.Object(
  {
    status: Type.Optional(Type.Enum(JOB_STATUSES)),
    limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
  },
  { additionalProperties: false },
);

export const StepsQuerySchema = Type.Object(
  {
    from: Type.Integer({ minimum: 0, default: 0, description: "First step to return" }),
    limit: Type.Integer({ minimum: 1, maximum: 100_000, default: 10_000, description: "Most steps to return" }),
  },
  { additionalProperties: false },
);

const NullableNumbers = Type.Array(Type.Union([Type.Number(), Type.Null()]));

/** Columnar, the shape charts consume. Non-finite values are null, with nonFinite set. */
export const StepsSchema = Type.Object({
  jobId: Type.String({ format: "uuid" }),
  layerNames: Type.Array(Type.String()),
  step: Type.Array(Type.Integer()),
  loss: NullableNumbers,
  gradNorm: NullableNumbers,
  layerNorms: Type.Array(NullableNumbers),
  lr: NullableNumbers,
  nonFinite: Type.Array(Type.Boolean()),
  stepMs: Type.Array(Type.Number()),
  nextFrom: Type.Union([Type.Integer(), Type.Null()], { description: "Pass as `from` for the next page; null at the end" }),
});
export type StepsResponse = Static<typeof StepsSchema>;
