// The jobs resource at the API boundary: request and response schemas (validation, types and
// OpenAPI from one place). The job spec itself is the trainer's contract (trainer/spec.ts).
import Type, { type Static } from "typebox";
import { JobSpecSchema } from "../../trainer/spec.ts";

export const JOB_STATUSES = ["queued", "running", "succeeded", "failed", "cancelled", "diverged"] as const;

export const JobSchema = Type.Object({
  id: Type.String({ format: "uuid" }),
  name: Type.String(),
  kind: Type.Enum(["training", "external"], {
    description: "training: gradguard trains it. external: a run trained elsewhere that sends its norms to POST /runs/:id/steps; it takes no commands",
  }),
  status: Type.Enum(JOB_STATUSES),
  attempts: Type.Integer({ description: "How many times a trainer has started this job" }),
  priority: Type.Integer({ description: "Queue order: higher first, then oldest first" }),
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

export const PRIORITY_RANGE = { minimum: -100, maximum: 100 } as const;

/** POST /jobs: a job spec, plus where the job goes in the queue (kept out of the stored spec). */
export const CreateJobSchema = Type.Object(
  {
    ...JobSpecSchema.properties,
    priority: Type.Optional(
      Type.Integer({ ...PRIORITY_RANGE, description: "Queue order: a higher priority is trained first; equal priorities in submission order. Default 0" }),
    ),
  },
  { additionalProperties: false },
);

export const ListJobsQuerySchema = Type.Object(
  {
    status: Type.Optional(Type.Enum(JOB_STATUSES)),
    name: Type.Optional(
      Type.String({ minLength: 1, maxLength: 200, description: "Only jobs whose name contains this, ignoring case (`%` and `_` are plain characters)" }),
    ),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: "`nextCursor` of the previous page" })),
    limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
  },
  { additionalProperties: false },
);

export const JobListSchema = Type.Object({
  items: Type.Array(JobSchema, { description: "Newest first" }),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: "Pass as `cursor` for the next page; null on the last page" }),
});

export const RetryJobSchema = Type.Object(
  {
    from: Type.Enum(["checkpoint", "scratch"], {
      description:
        "checkpoint: keep the steps and events before the job's last checkpoint and train on from it; scratch: delete its steps, events and checkpoints and train from step 0",
    }),
  },
  { additionalProperties: false },
);

export const StepsQuerySchema = Type.Object(
  {
    // Steps are int4 in the database.
    from: Type.Integer({ minimum: 0, maximum: 2_147_483_647, default: 0, description: "First step to return" }),
    to: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 2_147_483_647, description: "Last step to return (inclusive); at least `from`. Default: the last stored" }),
    ),
    limit: Type.Integer({
      minimum: 1,
      maximum: 100_000,
      default: 10_000,
      description: "Most steps per page. Not used with `maxPoints`, whose answer always covers the whole range",
    }),
    maxPoints: Type.Optional(
      Type.Integer({
        minimum: 10,
        maximum: 100_000,
        description:
          "Most points to return for the range `from`…`to`. A range that holds no more steps than this comes back step by step, " +
          "as without it; a longer one comes back downsampled into buckets (see the response's `downsampled`)",
      }),
    ),
    fields: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 400,
        description:
          "Comma-separated columns to return, e.g. `loss,gradNorm`: step, loss, gradNorm, layerNorms, lr, nonFinite, stepMs, weightNorm, " +
          "updateRatio, gradNormAfter, clipCoef, action, valLoss. `step` and `nonFinite` always come back. Default: all",
      }),
    ),
  },
  { additionalProperties: false },
);

const NullableNumbers = Type.Array(Type.Union([Type.Number(), Type.Null()]));
const MIN = "Downsampled only: per bucket, the smallest finite value (null when the bucket has none; NaN and ±Infinity are left out)";
const MAX = "Downsampled only: per bucket, the largest finite value (null when the bucket has none; NaN and ±Infinity are left out)";
const minOf = () => Type.Optional(Type.Array(Type.Union([Type.Number(), Type.Null()]), { description: MIN }));
const maxOf = () => Type.Optional(Type.Array(Type.Union([Type.Number(), Type.Null()]), { description: MAX }));

/**
 * Columnar, the shape charts consume: entry i of every array belongs to the same point.
 * Non-finite values are null, with nonFinite set. Two shapes share these names:
 * - step by step (no `downsampled`): one entry per stored step, paged by `limit`/`nextFrom`;
 * - downsampled (`downsampled` present, only with `maxPoints`): one entry per bucket.
 */
export const StepsSchema = Type.Object(
  {
    jobId: Type.String({ format: "uuid" }),
    layerNames: Type.Array(Type.String()),
    downsampled: Type.Optional(
      Type.Object(
        {
          bucketSize: Type.Integer({
            description:
              "Steps per bucket. Bucket k holds the stored steps from k·bucketSize to (k+1)·bucketSize − 1 that fall within from…to, so " +
              "the buckets cover the range without gap or overlap and keep their edges when the range moves. It is rounded up to a multiple " +
              "of 16, 64 or 256 when large enough (so buckets line up with precomputed summaries): there are at most maxPoints buckets, " +
              "and at least about half as many",
          }),
        },
        {
          description:
            "Present only when the range held more steps than maxPoints. Then each entry is a bucket: `step` is its last step and " +
            "`stepMin` its first; each numeric series gives its value at `step` (`loss`) and the bucket's finite min and max " +
            "(`lossMin`, `lossMax`), so a one-step spike always shows; `layerNorms` is the per-layer max; `nonFinite` is true when any step in the bucket was; `action` is the bucket's most severe action. " +
            "`nextFrom` is null",
        },
      ),
    ),
    step: Type.Array(Type.Integer(), { description: "The step; downsampled: the bucket's last stored step" }),
    stepMin: Type.Optional(Type.Array(Type.Integer(), { description: "Downsampled only: the bucket's first stored step" })),
    loss: Type.Optional(NullableNumbers),
    lossMin: minOf(),
    lossMax: maxOf(),
    gradNorm: Type.Optional(NullableNumbers),
    gradNormMin: minOf(),
    gradNormMax: maxOf(),
    layerNorms: Type.Optional(
      Type.Array(NullableNumbers, {
        description:
          "Per step, like every column: entry i is an array with each layer's norm, in the order of layerNames. Downsampled: per bucket, each layer's largest finite norm (null when it has none); " +
          "neither a last value nor a min is sent, to keep the answer small, and a layer's spike is what this column is for",
      }),
    ),
    lr: Type.Optional(NullableNumbers),
    lrMin: minOf(),
    lrMax: maxOf(),
    nonFinite: Type.Array(Type.Boolean(), { description: "The loss or a gradient was NaN or infinite; downsampled: at any step of the bucket" }),
    stepMs: Type.Optional(NullableNumbers),
    stepMsMin: minOf(),
    stepMsMax: maxOf(),
    weightNorm: Type.Optional(NullableNumbers),
    weightNormMin: minOf(),
    weightNormMax: maxOf(),
    updateRatio: Type.Optional(NullableNumbers),
    updateRatioMin: minOf(),
    updateRatioMax: maxOf(),
    gradNormAfter: Type.Optional(NullableNumbers),
    gradNormAfterMin: minOf(),
    gradNormAfterMax: maxOf(),
    clipCoef: Type.Optional(NullableNumbers),
    clipCoefMin: minOf(),
    clipCoefMax: maxOf(),
    action: Type.Optional(
      Type.Array(
        Type.String({
          description:
            "What the watchdog did: none, clip, lowerLr, skip, rollback, stop; downsampled: the most severe in the bucket, in that order",
        }),
      ),
    ),
    valLoss: Type.Optional(Type.Array(Type.Union([Type.Number(), Type.Null()], { description: "null where not measured" }))),
    valLossMin: minOf(),
    valLossMax: maxOf(),
    nextFrom: Type.Union([Type.Integer(), Type.Null()], { description: "Pass as `from` for the next page; null at the end" }),
  },
  {
    description:
      "A job's steps in columns. Step by step unless `downsampled` is present; see it for the bucket shape. Columns not named in " +
      "`fields` are left out.",
  },
);
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

const eventFilters = {
  kind: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  severity: Type.Optional(Type.Enum(["info", "warning", "critical"])),
  since: Type.Optional(Type.String({ format: "date-time", description: "Only events recorded at or after this time" })),
  until: Type.Optional(Type.String({ format: "date-time", description: "Only events recorded before this time" })),
  after: Type.Optional(Type.String({ pattern: "^[0-9]{1,18}$", description: "Only events with a larger id: the previous page's `nextAfter`" })),
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 200 }),
};

/** GET /jobs/:id/events. */
export const EventsQuerySchema = Type.Object(eventFilters, { additionalProperties: false });

/** GET /events: the same filters, across jobs. */
export const AllEventsQuerySchema = Type.Object(
  { ...eventFilters, jobId: Type.Optional(Type.String({ format: "uuid", description: "Only this job's events" })) },
  { additionalProperties: false },
);
export type EventsQuery = Static<typeof AllEventsQuerySchema>;

export const EventListSchema = Type.Object({
  items: Type.Array(EventSchema, { description: "Oldest first (by id)" }),
  nextAfter: Type.Union([Type.String(), Type.Null()], {
    description: "Pass as `after` for the next page; null when this page was not full (to follow new events, pass the last id you have)",
  }),
});
