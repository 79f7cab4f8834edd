// The job spec: the contract between whoever submits a job and the trainer that runs it.
// The TypeBox schema gives the structure (the server validates bodies against it and publishes
// it in OpenAPI); checkJobSpec adds the rules a schema cannot say (shapes that must agree,
// configured caps). A spec is data only: it names layers and generators, never code or paths.
import Type, { type Static } from "typebox";
import Value from "typebox/value";
import { datasetShape } from "./data/datasets.ts";
import { DataSchema } from "./data/spec.ts";
import { checkModelSpec, ModelSchema } from "./model-spec.ts";

export const OptimizerSchema = Type.Object(
  {
    type: Type.Enum(["sgd", "adam"]),
    learningRate: Type.Number({ exclusiveMinimum: 0, maximum: 1000 }),
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
    steps: Type.Integer({ minimum: 1, description: "Training steps; capped by GRADGUARD_MAX_STEPS" }),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, default: 0, description: "Seeds weights and batch order" })),
  },
  { additionalProperties: false },
);

/** A spec with every default filled in: what the trainer runs and what the job stores. */
export type JobSpec = Static<typeof JobSpecSchema> & { seed: number; data: { seed: number; classes: number; noise: number } };

export interface SpecLimits {
  maxSteps: number;
}

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

/** Fills in defaults; call after the structure is known to be valid. */
export function withDefaults(spec: Static<typeof JobSpecSchema>): JobSpec {
  return Value.Default(JobSpecSchema, Value.Clone(spec)) as JobSpec;
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
  if (spec.steps > limits.maxSteps) {
    problems.push({ field: "/steps", message: `must be at most ${limits.maxSteps} (the cap set by GRADGUARD_MAX_STEPS)` });
  }
  problems.push(...checkModelSpec(spec.model, { kind: spec.data.kind, ...datasetShape(spec.data) }, spec.loss === "softmaxCrossEntropy"));
  if (spec.batchSize > spec.data.size) {
    problems.push({ field: "/batchSize", message: `must be at most data.size (${spec.data.size})` });
  }
  return problems;
}
