// The job spec: the contract between whoever submits a job and the trainer that runs it.
// The TypeBox schema gives the structure (the server validates bodies against it and publishes
// it in OpenAPI); checkJobSpec adds the rules a schema cannot say (shapes that must agree,
// configured caps). A spec is data only: it names layers and generators, never code or paths.
import Type, { type Static } from "typebox";
import Value from "typebox/value";
import { datasetShape } from "./data/datasets.ts";

export const ACTIVATIONS = ["linear", "relu", "relu6", "elu", "selu", "tanh", "sigmoid", "softplus", "softsign", "swish", "gelu"] as const;
export const INITIALIZERS = ["glorotUniform", "glorotNormal", "heUniform", "heNormal", "leCunUniform", "leCunNormal", "zeros", "ones"] as const;

const LayerName = Type.String({ pattern: "^[A-Za-z][A-Za-z0-9_]{0,63}$", description: "Unique layer name; default `<type>_<index>`" });

export const DenseLayerSchema = Type.Object(
  {
    type: Type.Literal("dense"),
    units: Type.Integer({ minimum: 1, maximum: 65536 }),
    activation: Type.Optional(Type.Enum(ACTIVATIONS, { default: "linear" })),
    useBias: Type.Optional(Type.Boolean({ default: true })),
    kernelInitializer: Type.Optional(Type.Enum(INITIALIZERS, { default: "glorotUniform" })),
    inputShape: Type.Optional(
      Type.Array(Type.Integer({ minimum: 1, maximum: 65536 }), { minItems: 1, maxItems: 4, description: "First layer only" }),
    ),
    name: Type.Optional(LayerName),
  },
  { additionalProperties: false },
);

export const LayerSchema = DenseLayerSchema;

export const SpiralsDataSchema = Type.Object(
  {
    kind: Type.Literal("spirals"),
    size: Type.Integer({ minimum: 8, maximum: 1_000_000, description: "Number of examples" }),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, default: 0 })),
    classes: Type.Optional(Type.Integer({ minimum: 2, maximum: 10, default: 2, description: "Number of spiral arms" })),
    noise: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0.1, description: "Std of Gaussian noise on points" })),
  },
  { additionalProperties: false },
);

export const DataSchema = SpiralsDataSchema;

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
    model: Type.Object({ layers: Type.Array(LayerSchema, { minItems: 1, maxItems: 256 }) }, { additionalProperties: false }),
    data: DataSchema,
    loss: Type.Enum(["softmaxCrossEntropy", "meanSquaredError"], { description: "softmaxCrossEntropy expects logits (a linear last layer)" }),
    optimizer: OptimizerSchema,
    batchSize: Type.Integer({ minimum: 1, maximum: 65536 }),
    steps: Type.Integer({ minimum: 1, description: "Training steps; capped by GRADGUARD_MAX_STEPS" }),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, default: 0, description: "Seeds weights and batch order" })),
  },
  { additionalProperties: false },
);

export type LayerSpec = Static<typeof LayerSchema>;
export type DataSpec = Static<typeof DataSchema>;
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
  const { layers } = spec.model;
  const shape = datasetShape(spec.data);

  if (spec.steps > limits.maxSteps) {
    problems.push({ field: "/steps", message: `must be at most ${limits.maxSteps} (the cap set by GRADGUARD_MAX_STEPS)` });
  }
  const first = layers[0];
  if (first && !first.inputShape) {
    problems.push({ field: "/model/layers/0/inputShape", message: `is required on the first layer (the ${spec.data.kind} data has shape [${shape.features}])` });
  } else if (first?.inputShape && (first.inputShape.length !== 1 || first.inputShape[0] !== shape.features)) {
    problems.push({ field: "/model/layers/0/inputShape", message: `must be [${shape.features}] to match the ${spec.data.kind} data` });
  }
  layers.forEach((layer, index) => {
    if (index > 0 && layer.inputShape) {
      problems.push({ field: `/model/layers/${index}/inputShape`, message: "is only allowed on the first layer" });
    }
  });
  const names = layerNames(spec);
  names.forEach((name, index) => {
    if (names.indexOf(name) !== index) problems.push({ field: `/model/layers/${index}/name`, message: `duplicates the name "${name}"` });
  });
  const lastIndex = layers.length - 1;
  const last = layers[lastIndex];
  if (last && last.units !== shape.targets) {
    problems.push({
      field: `/model/layers/${lastIndex}/units`,
      message: `must be ${shape.targets}: the ${spec.data.kind} data has ${shape.targets} targets (data.classes)`,
    });
  }
  if (spec.loss === "softmaxCrossEntropy" && last?.activation && last.activation !== "linear") {
    problems.push({ field: `/model/layers/${lastIndex}/activation`, message: "must be linear: softmaxCrossEntropy applies the softmax itself" });
  }
  if (spec.batchSize > spec.data.size) {
    problems.push({ field: "/batchSize", message: `must be at most data.size (${spec.data.size})` });
  }
  return problems;
}

/** Layer names in model order: the user's, or `<type>_<index>`. Step.layerNorms follows this order. */
export function layerNames(spec: Pick<JobSpec, "model">): string[] {
  return spec.model.layers.map((layer, index) => layer.name ?? `${layer.type}_${index}`);
}
