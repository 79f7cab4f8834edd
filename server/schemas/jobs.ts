// The jobs resource at the API boundary: request and response schemas (validation, types and
// OpenAPI from one place). The job spec itself is the trainer's contract (trainer/spec.ts).
import Type, { type Static } from "typebox";

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
  paused: Type.Boolean({ description: "Held by a pause command" }),
  createdAt: Type.String({ format: "date-time" }),
  startedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  finishedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  // The stored spec, with defaults filled in. Typed loosely here: fast-json-stringify cannot
  // compile the spec's unions, and the spec was validated against JobSpecSchema on the way in.
  spec: Type.Record(Type.String(), Type.Unknown(), { description: "The job spec (see POST /jobs), with every default filled in" }),
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
  weightNorm: NullableNumbers,
  updateRatio: NullableNumbers,
  gradNormAfter: NullableNumbers,
  clipCoef: NullableNumbers,
  action: Type.Array(Type.String({ description: "What the watchdog did: none, clip, lowerLr, skip, rollback, stop" })),
  valLoss: Type.Array(Type.Union([Type.Number(), Type.Null()], { description: "null where not measured" })),
  nextFrom: Type.Union([Type.Integer(), Type.Null()], { description: "Pass as `from` for the next page; null at the end" }),
});
export type StepsResponse = Static<typeof StepsSchema>;

export const EventSchema = Type.Object({
  id: Type.String({ description: "Increasing; pass the last one as `after` to page" }),
  jobId: Type.String({ format: "uuid" }),
  step: Type.Integer(),
  kind: Type.String(),
  severity: Type.Enum(["info", "warning", "critical"]),
  message: Type.String(),
  detail: Type.Record(Type.String(), Type.Unknown()),
  createdAt: Type.String({ format: "date-time" }),
});

export const EventsQuerySchema = Type.Object(
  {
    kind: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    severity: Type.Optional(Type.Enum(["info", "warning", "critical"])),
    after: Type.Optional(Type.String({ pattern: "^[0-9]{1,18}$", description: "Only events with a larger id" })),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 200 }),
  },
  { additionalProperties: false },
);
