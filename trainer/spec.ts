// The job spec: the contract between whoever submits a job and the trainer that runs it.
// The TypeBox schema gives the structure (the server validates bodies against it and publishes
// it in OpenAPI); checkJobSpec adds the rules a schema cannot say (shapes that must agree,
// configured caps). A spec is data only: it names layers and generators, never code or paths.
import Type, { type Static } from "typebox";
import Value from "typebox/value";
import { checkDataSpec, dataSize, datasetShape } from "./data/datasets.ts";
import { DataSchema } from "./data/spec.ts";
import { FaultsSchema } from "./faults.ts";
import { checkModelSpec, ModelSchema } from "./model-spec.ts";
import { OptimizerSchema } from "./optimizer.ts";
import { DEFAULT_POLICY, InvalidWatchdogConfigError, resolveWatchdogConfig, WatchdogSpecSchema } from "./watchdog/index.ts";

export const CheckpointSchema = Type.Object(
  {
    everySteps: Type.Optional(Type.Integer({ minimum: 1, default: 100, description: "Steps between checkpoints" })),
    keep: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 3, description: "Checkpoints kept per job (older ones are deleted)" })),
  },
  { additionalProperties: false },
);

export const ValidationSchema = Type.Object(
  {
    fraction: Type.Optional(Type.Number({ minimum: 0, maximum: 0.9, default: 0.1, description: "Share of the data held out; 0: no validation" })),
    everySteps: Type.Optional(Type.Integer({ minimum: 1, default: 50, description: "Steps between validation losses (and the last step)" })),
  },
  { additionalProperties: false },
);

export const JobSpecSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    model: ModelSchema,
    data: DataSchema,
    loss: Type.Enum(["softmaxCrossEntropy", "meanSquaredError"], { description: "softmaxCrossEntropy expects logits (a linear last layer)" }),
    optimizer: OptimizerSchema,
    batchSize: Type.Integer({ minimum: 1, maximum: 65536 }),
    steps: Type.Optional(Type.Integer({ minimum: 1, description: "Training steps; capped by GRADGUARD_MAX_STEPS. Give steps or epochs" })),
    epochs: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: "Passes over the training data; sets steps" })),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, default: 0, description: "Seeds weights and batch order" })),
    validation: Type.Optional(ValidationSchema),
    checkpoint: Type.Optional(CheckpointSchema),
    faults: Type.Optional(FaultsSchema),
    watchdog: Type.Optional(WatchdogSpecSchema),
  },
  { additionalProperties: false },
);

/**
 * A spec with every default filled in and `steps` resolved (from `epochs` when given): what the
 * trainer runs and what the job stores.
 */
export type JobSpec = Static<typeof JobSpecSchema> & {
  steps: number;
  seed: number;
  data: { seed: number };
  validation: { fraction: number; everySteps: number };
  checkpoint: { everySteps: number; keep: number };
};

/**
 * Caps that keep one job from exhausting the machine (GRADGUARD_MAX_* in common/config.ts). A
 * refused spec names the variable, so whoever runs the server knows what to raise.
 */
export interface SpecLimits {
  maxSteps: number;
  /** Most weights (trainable or not) a model may have; default 50,000,000 (DEFAULT_MAX_PARAMETERS). */
  maxParameters?: number;
  /** Most input numbers in one batch, batchSize × numbers per example; default DEFAULT_MAX_BATCH_VALUES. */
  maxBatchValues?: number;
}

/** 40 MB of float32 inputs per batch: far above any preset, far below what hurts a worker. */
export const DEFAULT_MAX_BATCH_VALUES = 10_000_000;

/** A rule a spec breaks: the JSON pointer of the field and what is wrong with it. */
export interface SpecProblem {
  field: string;
  message: string;
}

export class InvalidSpecError extends Error {
  constructor(readonly problems: SpecProblem[]) {
    super(`invalid job spec: ${problems.map((p) => `${p.field || "/"}: ${p.message}`).join("; ")}`);
    this.name = "InvalidSpecError";
  }
}

/** Fills in defaults and resolves `epochs` into `steps`; call after the structure is valid. */
export function withDefaults(input: Static<typeof JobSpecSchema>): JobSpec {
  const spec = Value.Default(JobSpecSchema, Value.Clone(input)) as Static<typeof JobSpecSchema>;
  spec.validation = { fraction: 0.1, everySteps: 50, ...spec.validation };
  spec.checkpoint = { everySteps: 100, keep: 3, ...spec.checkpoint };
  // The stored spec names the policy that guarded the job, even when the user left it out.
  spec.watchdog = { policy: DEFAULT_POLICY, ...spec.watchdog };
  if (spec.epochs !== undefined && spec.steps === undefined) spec.steps = stepsForEpochs(spec as JobSpec, spec.epochs);
  return spec as JobSpec;
}

function trainingExamples(spec: JobSpec): number {
  return Math.floor(dataSize(spec.data) * (1 - spec.validation.fraction));
}

function stepsForEpochs(spec: JobSpec, epochs: number): number {
  return Math.ceil(trainingExamples(spec) / spec.batchSize) * epochs;
}

/** Structure, then the rules across fields; throws InvalidSpecError naming every bad field. */
export function parseJobSpec(input: unknown, limits: SpecLimits): JobSpec {
  if (!Value.Check(JobSpecSchema, input)) {
    const problems = [...Value.Errors(JobSpecSchema, input)].map((e) => ({ field: e.instancePath, message: e.message }));
    throw new InvalidSpecError(problems);
  }
  const spec = withDefaults(input);
  const problems = checkJobSpec(spec, limits);
  if (problems.length > 0) throw new InvalidSpecError(problems);
  return spec;
}

/** The rules a schema cannot express. Empty when the spec can run. */
export function checkJobSpec(spec: JobSpec, limits: SpecLimits): SpecProblem[] {
  const problems: SpecProblem[] = [];
  if (spec.steps === undefined) {
    problems.push({ field: "/steps", message: "is required (or give epochs)" });
  } else if (spec.epochs !== undefined && spec.steps !== stepsForEpochs(spec, spec.epochs)) {
    problems.push({ field: "/epochs", message: "give steps or epochs, not both" });
  } else if (spec.steps > limits.maxSteps) {
    problems.push({ field: "/steps", message: `must be at most ${limits.maxSteps} (the cap set by GRADGUARD_MAX_STEPS)` });
  }
  problems.push(...checkDataSpec(spec.data));
  problems.push(
    ...checkModelSpec(spec.model, { kind: spec.data.kind, ...datasetShape(spec.data) }, spec.loss === "softmaxCrossEntropy", { maxParameters: limits.maxParameters }),
  );
  const valuesPerExample = datasetShape(spec.data).featureShape.reduce((a, b) => a * b, 1);
  const maxBatchValues = limits.maxBatchValues ?? DEFAULT_MAX_BATCH_VALUES;
  if (spec.batchSize * valuesPerExample > maxBatchValues) {
    problems.push({
      field: "/batchSize",
      message: `must be at most ${Math.floor(maxBatchValues / valuesPerExample)}: ${spec.batchSize} examples of ${valuesPerExample} numbers exceed the ${maxBatchValues} numbers per batch allowed by GRADGUARD_MAX_BATCH_VALUES`,
    });
  }
  const trainExamples = trainingExamples(spec);
  if (spec.batchSize > trainExamples) {
    problems.push({ field: "/batchSize", message: `must be at most the ${trainExamples} training examples (data.size less the validation share)` });
  }
  // The preset merged with the overrides must make sense together.
  try {
    resolveWatchdogConfig(spec.watchdog);
  } catch (error) {
    if (!(error instanceof InvalidWatchdogConfigError)) throw error;
    for (const problem of error.problems) problems.push({ field: `/watchdog${problem.field}`, message: problem.message });
  }
  spec.faults?.forEach((fault, index) => {
    if (fault.step >= spec.steps) problems.push({ field: `/faults/${index}/step`, message: `must be below steps (${spec.steps}): the fault would never strike` });
  });
  return problems;
}

