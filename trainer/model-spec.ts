// The `model` part of a job spec: either a list of layers named after tfjs layers, with their
// tfjs config fields, or a Keras/tfjs model topology (JSON, no weights). Data only: no code, no
// paths, no custom classes.
import Type, { type Static } from "typebox";
import type { DatasetShape } from "./data/datasets.ts";
import { taggedUnion, when } from "./data/tagged-union.ts";
import { type INITIALIZER_CLASS_NAMES, inspectModel, ModelBuildError, reportedLayerNames, TOPOLOGY_LAYER_CLASSES } from "./model.ts";
import type { SpecProblem } from "./spec.ts";

export const ACTIVATIONS = [
  "linear",
  "relu",
  "relu6",
  "elu",
  "selu",
  "tanh",
  "sigmoid",
  "hardSigmoid",
  "softplus",
  "softsign",
  "swish",
  "mish",
  "gelu",
  "softmax",
] as const;
export type Activation = (typeof ACTIVATIONS)[number];

/** Initializers by tfjs name. The random ones are seeded from the job seed (see model.ts). */
export const INITIALIZERS = [
  "glorotUniform",
  "glorotNormal",
  "heUniform",
  "heNormal",
  "leCunUniform",
  "leCunNormal",
  "orthogonal",
  "identity",
  "randomNormal",
  "randomUniform",
  "truncatedNormal",
  "zeros",
  "ones",
] as const;
export type InitializerName = (typeof INITIALIZERS)[number];

const Scale = Type.Number({ exclusiveMinimum: 0, maximum: 1000 });
const Real = Type.Number({ minimum: -1000, maximum: 1000 });

/** tfjs's serialized initializers that a spec may use, and the config fields each accepts (never `seed`: it comes from the job seed). */
const SERIALIZED_INITIALIZERS = {
  Zeros: {},
  Ones: {},
  Constant: { value: Real },
  RandomNormal: { mean: Real, stddev: Scale },
  TruncatedNormal: { mean: Real, stddev: Scale },
  RandomUniform: { minval: Real, maxval: Real },
  VarianceScaling: {
    scale: Scale,
    mode: Type.Enum(["fanIn", "fanOut", "fanAvg"]),
    distribution: Type.Enum(["normal", "uniform", "truncatedNormal"]),
  },
  GlorotUniform: {},
  GlorotNormal: {},
  HeUniform: {},
  HeNormal: {},
  LeCunUniform: {},
  LeCunNormal: {},
  Orthogonal: { gain: Scale },
  Identity: { gain: Scale },
} satisfies Record<InitializerClassName, object>;
export type InitializerClassName = (typeof INITIALIZER_CLASS_NAMES)[number];

/** An initializer in tfjs's serialized form, e.g. `{ "className": "RandomNormal", "config": { "stddev": 0.3 } }`. */
export type SerializedInitializer = {
  className: InitializerClassName;
  config?: Record<string, number | string>;
};
export type InitializerSpec = InitializerName | SerializedInitializer;

const SerializedInitializerSchema = taggedUnion(
  "className",
  Object.entries(SERIALIZED_INITIALIZERS).map(([className, fields]) =>
    Type.Object(
      {
        className: Type.Literal(className),
        config: Type.Optional(
          Type.Object(Object.fromEntries(Object.entries(fields).map(([key, schema]) => [key, Type.Optional(schema)])), { additionalProperties: false }),
        ),
      },
      { additionalProperties: false },
    ),
  ),
);

function initializer(defaultName: InitializerName) {
  return Type.Optional(
    Type.Unsafe<InitializerSpec>({
      type: ["string", "object"],
      allOf: [when({ type: "string" }, { enum: [...INITIALIZERS] }), when({ type: "object" }, SerializedInitializerSchema)],
      default: defaultName,
      description: `A tfjs initializer name, or { className, config } in tfjs's serialized form; default ${defaultName}`,
    }),
  );
}

const activation = (defaultName: Activation) => Type.Optional(Type.Enum(ACTIVATIONS, { default: defaultName }));
const flag = (defaultValue: boolean) => Type.Optional(Type.Boolean({ default: defaultValue }));
const count = (maximum: number, description?: string) => Type.Integer({ minimum: 1, maximum, ...(description ? { description } : {}) });
/** A window size or stride: one number for both spatial axes, or [rows, columns]. */
const size2d = () => Type.Union([count(256), Type.Tuple([count(256), count(256)])]);
const padding = <const Modes extends string[]>(modes: [...Modes]) => Type.Optional(Type.Enum(modes, { default: "valid" }));

const LayerName = Type.String({ pattern: "^[A-Za-z][A-Za-z0-9_]{0,63}$", description: "Unique layer name; default `<type>_<index>`" });
const common = {
  name: Type.Optional(LayerName),
  inputShape: Type.Optional(Type.Array(count(65536), { minItems: 1, maxItems: 4, description: "Shape of one example; first layer only" })),
};
const ownFields = <Name extends string>(type: Name) => ({ type: Type.Literal(type), ...common });

export const DenseLayerSchema = Type.Object(
  {
    ...ownFields("dense"),
    units: count(65536),
    activation: activation("linear"),
    useBias: flag(true),
    kernelInitializer: initializer("glorotUniform"),
    biasInitializer: initializer("zeros"),
  },
  { additionalProperties: false },
);

export const Conv1dLayerSchema = Type.Object(
  {
    ...ownFields("conv1d"),
    filters: count(4096),
    kernelSize: count(1024),
    strides: Type.Optional(count(1024)),
    padding: padding(["valid", "same", "causal"]),
    dilationRate: Type.Optional(count(1024)),
    activation: activation("linear"),
    useBias: flag(true),
    kernelInitializer: initializer("glorotUniform"),
    biasInitializer: initializer("zeros"),
  },
  { additionalProperties: false, description: "Over [steps, channels]" },
);

export const Conv2dLayerSchema = Type.Object(
  {
    ...ownFields("conv2d"),
    filters: count(4096),
    kernelSize: size2d(),
    strides: Type.Optional(size2d()),
    padding: padding(["valid", "same"]),
    activation: activation("linear"),
    useBias: flag(true),
    kernelInitializer: initializer("glorotUniform"),
    biasInitializer: initializer("zeros"),
  },
  { additionalProperties: false, description: "Over [rows, columns, channels]" },
);

export const MaxPooling1dLayerSchema = Type.Object(
  { ...ownFields("maxPooling1d"), poolSize: Type.Optional(count(1024)), strides: Type.Optional(count(1024)), padding: padding(["valid", "same"]) },
  { additionalProperties: false, description: "poolSize default 2; strides default poolSize" },
);

export const MaxPooling2dLayerSchema = Type.Object(
  { ...ownFields("maxPooling2d"), poolSize: Type.Optional(size2d()), strides: Type.Optional(size2d()), padding: padding(["valid", "same"]) },
  { additionalProperties: false, description: "poolSize default 2; strides default poolSize" },
);

export const FlattenLayerSchema = Type.Object(ownFields("flatten"), { additionalProperties: false });

export const ReshapeLayerSchema = Type.Object(
  {
    ...ownFields("reshape"),
    targetShape: Type.Array(count(65536), { minItems: 1, maxItems: 4, description: "Shape of one example after, e.g. [8, 8, 1]; same size as before" }),
  },
  { additionalProperties: false },
);

export const DropoutLayerSchema = Type.Object(
  { ...ownFields("dropout"), rate: Type.Number({ minimum: 0, exclusiveMaximum: 1, description: "Fraction of inputs zeroed while training" }) },
  { additionalProperties: false, description: "Seeded from the job seed; a new mask every step" },
);

const epsilon = Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.001 }));

export const BatchNormalizationLayerSchema = Type.Object(
  {
    ...ownFields("batchNormalization"),
    momentum: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0.99 })),
    epsilon,
    center: flag(true),
    scale: flag(true),
  },
  { additionalProperties: false, description: "Over the last axis" },
);

export const LayerNormalizationLayerSchema = Type.Object(
  { ...ownFields("layerNormalization"), epsilon, center: flag(true), scale: flag(true) },
  { additionalProperties: false, description: "Over the last axis" },
);

export const EmbeddingLayerSchema = Type.Object(
  {
    ...ownFields("embedding"),
    inputDim: count(1_000_000, "Vocabulary size: inputs are token ids 0 … inputDim − 1"),
    outputDim: count(4096),
    embeddingsInitializer: initializer("randomUniform"),
  },
  { additionalProperties: false },
);

const recurrentFields = {
  units: count(4096),
  activation: activation("tanh"),
  useBias: flag(true),
  returnSequences: flag(false),
  kernelInitializer: initializer("glorotUniform"),
  recurrentInitializer: initializer("orthogonal"),
  biasInitializer: initializer("zeros"),
};

export const SimpleRnnLayerSchema = Type.Object({ ...ownFields("simpleRNN"), ...recurrentFields }, { additionalProperties: false });

export const LstmLayerSchema = Type.Object(
  { ...ownFields("lstm"), ...recurrentFields, recurrentActivation: activation("hardSigmoid"), unitForgetBias: flag(true) },
  { additionalProperties: false },
);

export const GruLayerSchema = Type.Object(
  { ...ownFields("gru"), ...recurrentFields, recurrentActivation: activation("hardSigmoid") },
  { additionalProperties: false },
);

export const ActivationLayerSchema = Type.Object({ ...ownFields("activation"), activation: Type.Enum(ACTIVATIONS) }, { additionalProperties: false });

const PLAIN_LAYERS = [
  DenseLayerSchema,
  Conv1dLayerSchema,
  Conv2dLayerSchema,
  MaxPooling1dLayerSchema,
  MaxPooling2dLayerSchema,
  FlattenLayerSchema,
  ReshapeLayerSchema,
  DropoutLayerSchema,
  BatchNormalizationLayerSchema,
  LayerNormalizationLayerSchema,
  EmbeddingLayerSchema,
  SimpleRnnLayerSchema,
  LstmLayerSchema,
  GruLayerSchema,
  ActivationLayerSchema,
] as const;

/** A layer inside a residual block: any layer but another block. */
export const PlainLayerSchema = taggedUnion("type", [...PLAIN_LAYERS]);
export type PlainLayerSpec = Static<typeof PlainLayerSchema>;

export const ResidualLayerSchema = Type.Object(
  { ...ownFields("residual"), layers: Type.Array(PlainLayerSchema, { minItems: 1, maxItems: 32 }) },
  {
    additionalProperties: false,
    description:
      "output = input + f(input), f being the block's layers. When f changes the shape, the input goes through a learned linear projection first (a 1×1 convolution for images, dense otherwise)",
  },
);
export type ResidualLayerSpec = Static<typeof ResidualLayerSchema>;

export const LayerSchema = taggedUnion("type", [...PLAIN_LAYERS, ResidualLayerSchema], { description: "A tfjs layer, or a residual block" });
export type LayerSpec = Static<typeof LayerSchema>;
export type LayerType = LayerSpec["type"];

/** Any JSON value; a topology's layer configs are checked by building them, not by a schema. */
type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
const AnyJson = Type.Unsafe<Json>({});
const JsonObject = Type.Unsafe<{ [key: string]: Json }>({ type: "object" });

const TopologyLayerSchema = Type.Object(
  {
    class_name: Type.Enum(TOPOLOGY_LAYER_CLASSES),
    config: JsonObject,
    name: Type.Optional(Type.String({ maxLength: 200 })),
    inbound_nodes: Type.Optional(Type.Array(AnyJson, { maxItems: 64 })),
  },
  // Keras adds bookkeeping fields (module, registered_name, build_config) that tfjs ignores.
  { additionalProperties: true },
);

export const TopologySchema = Type.Object(
  {
    class_name: Type.Enum(["Sequential", "Model", "Functional"]),
    config: Type.Object(
      {
        name: Type.Optional(Type.String({ maxLength: 200 })),
        layers: Type.Array(TopologyLayerSchema, { minItems: 1, maxItems: 256 }),
        input_layers: Type.Optional(Type.Array(AnyJson, { maxItems: 16 })),
        output_layers: Type.Optional(Type.Array(AnyJson, { maxItems: 16 })),
      },
      { additionalProperties: true },
    ),
    keras_version: Type.Optional(Type.String({ maxLength: 100 })),
    backend: Type.Optional(Type.String({ maxLength: 100 })),
  },
  {
    additionalProperties: false,
    description: "The modelTopology of a tfjs model.json, or Keras model.to_json(): architecture only, no weights. One input, one output",
  },
);
export type TopologySpec = Static<typeof TopologySchema>;

export const ModelSchema = Type.Object(
  {
    layers: Type.Optional(Type.Array(LayerSchema, { minItems: 1, maxItems: 256 })),
    topology: Type.Optional(TopologySchema),
  },
  { additionalProperties: false, minProperties: 1, maxProperties: 1, description: "Either `layers` or `topology`" },
);
export type ModelSpec = Static<typeof ModelSchema>;

/** The most parameters (weights, trainable or not) a model may have, unless the limits say otherwise. */
export const DEFAULT_MAX_PARAMETERS = 50_000_000;

export interface ModelLimits {
  /** Default DEFAULT_MAX_PARAMETERS. */
  maxParameters?: number;
}

/**
 * The reported layers: those with trainable weights, one entry each, in spec order (a block's
 * layers, then its projection); Step.layerNorms follows this order. A plain layer is `name` or
 * `<type>_<index>`; inside a residual block `<block>/<name or type_index>`, plus
 * `<block>/projection` when the block projects its input; a block's own name is `name` or
 * `residual_<index>`. Layers without trainable weights (flatten, reshape, dropout, pooling,
 * activation, the block's add, a normalization with center and scale off) are not reported.
 * A topology reports its layers' own names, in tfjs's model order. Builds the model (zeros, cpu)
 * to know which layers have weights; throws if it cannot be built (checkModelSpec says why).
 */
export function layerNames(model: ModelSpec): string[] {
  return reportedLayerNames(model);
}

/**
 * Rules between the model and the data it trains on. `lossExpectsLogits`: softmax cross-entropy.
 * The shapes are checked by building the model with tfjs against the data's feature shape
 * (zero weights, cpu backend), so whatever tfjs refuses is refused here, naming the layer.
 */
export function checkModelSpec(
  model: ModelSpec,
  data: DatasetShape & { kind: string },
  lossExpectsLogits: boolean,
  limits: ModelLimits = {},
): SpecProblem[] {
  const maxParameters = limits.maxParameters ?? DEFAULT_MAX_PARAMETERS;
  if (model.topology) return checkTopology(model, data, lossExpectsLogits, maxParameters);
  const layers = model.layers ?? [];
  const problems: SpecProblem[] = [];
  const features = data.featureShape;
  const first = layers[0];
  if (first && !first.inputShape) {
    problems.push({ field: "/model/layers/0/inputShape", message: `is required on the first layer (the ${data.kind} data has shape [${features}])` });
  } else if (first?.inputShape && first.inputShape.join(",") !== features.join(",")) {
    problems.push({ field: "/model/layers/0/inputShape", message: `must be [${features}] to match the ${data.kind} data` });
  }
  layers.forEach((layer, index) => {
    if (index > 0 && layer.inputShape) problems.push({ field: `/model/layers/${index}/inputShape`, message: "is only allowed on the first layer" });
    if (layer.type === "residual") {
      layer.layers.forEach((inner, j) => {
        if (inner.inputShape) problems.push({ field: `/model/layers/${index}/layers/${j}/inputShape`, message: "is only allowed on the first layer" });
      });
    }
  });
  const nameProblems = checkNames(layers);
  problems.push(...nameProblems);

  const lastIndex = layers.length - 1;
  const last = layers[lastIndex];
  if (lossExpectsLogits && last && "activation" in last && last.activation && last.activation !== "linear" && OUTPUT_ACTIVATIONS.has(last.type)) {
    problems.push({ field: `/model/layers/${lastIndex}/activation`, message: "must be linear: softmaxCrossEntropy applies the softmax itself" });
  }
  // tfjs refuses duplicate names; that problem is already reported.
  if (nameProblems.length > 0 || !last) return problems;
  try {
    const { outputShape } = inspectModel(model, { inputShape: features, maxParameters });
    if (outputShape.join(",") !== data.targetShape.join(",")) {
      problems.push({ field: `/model/layers/${lastIndex}${sizeField(last)}`, message: outputMismatch(outputShape, data) });
    }
  } catch (error) {
    if (!(error instanceof ModelBuildError)) throw error;
    problems.push(buildProblem(error, maxParameters));
  }
  return problems;
}

/**
 * A build error as a spec problem. model.ts words the parameter cap with the number it was
 * given; the user also needs the variable that sets it.
 */
function buildProblem(error: ModelBuildError, maxParameters: number): SpecProblem {
  const capped = error.message.endsWith(`more than the ${maxParameters} allowed`);
  return { field: error.field, message: capped ? `${error.message} (the cap set by GRADGUARD_MAX_PARAMETERS)` : error.message };
}

/** Layer types whose `activation` is the output's nonlinearity (in RNNs it is internal). */
const OUTPUT_ACTIVATIONS = new Set<LayerType>(["dense", "conv1d", "conv2d", "activation"]);

/** The field that sets a layer's output size, to name when the output does not fit the targets. */
function sizeField(layer: LayerSpec): string {
  switch (layer.type) {
    case "dense":
    case "simpleRNN":
    case "lstm":
    case "gru":
      return "/units";
    case "conv1d":
    case "conv2d":
      return "/filters";
    case "embedding":
      return "/outputDim";
    default:
      return "";
  }
}

function outputMismatch(outputShape: number[], data: DatasetShape & { kind: string }): string {
  const rankHint = outputShape.length > data.targetShape.length ? " (flatten it, or set returnSequences: false on the last recurrent layer)" : "";
  return `makes the model's output [${outputShape}], but the ${data.kind} data has targets of shape [${data.targetShape}]${rankHint}`;
}

/** Names tfjs uses besides the layers': the input, and each block's projection and add. */
function checkNames(layers: LayerSpec[]): SpecProblem[] {
  const problems: SpecProblem[] = [];
  const seen = new Set<string>(["input"]);
  const claim = (name: string, field: string) => {
    if (seen.has(name)) problems.push({ field, message: name === "input" ? `"input" is reserved for the model's input` : `duplicates the name "${name}"` });
    seen.add(name);
  };
  layers.forEach((layer, index) => {
    const name = layer.name ?? `${layer.type}_${index}`;
    claim(name, `/model/layers/${index}/name`);
    if (layer.type !== "residual") return;
    const reserved = [`${name}/projection`, `${name}/add`];
    for (const n of reserved) seen.add(n);
    layer.layers.forEach((inner, j) => {
      const innerName = `${name}/${inner.name ?? `${inner.type}_${j}`}`;
      const field = `/model/layers/${index}/layers/${j}/name`;
      if (reserved.includes(innerName)) problems.push({ field, message: `"${inner.name}" is reserved inside a residual block` });
      else claim(innerName, field);
    });
  });
  return problems;
}

function checkTopology(model: ModelSpec, data: DatasetShape & { kind: string }, lossExpectsLogits: boolean, maxParameters: number): SpecProblem[] {
  const problems: SpecProblem[] = [];
  try {
    const inspected = inspectModel({ topology: withExplicitInitializers(model.topology as TopologySpec) }, { maxParameters });
    if (inspected.inputShape.join(",") !== data.featureShape.join(",")) {
      problems.push({ field: "/model/topology", message: `takes inputs of shape [${inspected.inputShape}], but the ${data.kind} data has [${data.featureShape}]` });
    }
    if (inspected.outputShape.join(",") !== data.targetShape.join(",")) {
      problems.push({ field: "/model/topology", message: outputMismatch(inspected.outputShape, data) });
    }
    const lastActivation = inspected.outputActivation;
    if (lossExpectsLogits && lastActivation && lastActivation.value !== "linear") {
      problems.push({ field: lastActivation.field, message: "must be linear: softmaxCrossEntropy applies the softmax itself" });
    }
  } catch (error) {
    if (!(error instanceof ModelBuildError)) throw error;
    problems.push(buildProblem(error, maxParameters));
  }
  return problems;
}

/** Every initializer a tfjs layer reads from its config, in the Keras spelling of topologies. */
const INITIALIZER_KEYS = [
  "kernel_initializer",
  "bias_initializer",
  "recurrent_initializer",
  "embeddings_initializer",
  "depthwise_initializer",
  "gamma_initializer",
  "beta_initializer",
  "moving_mean_initializer",
  "moving_variance_initializer",
  "alpha_initializer",
] as const;

/**
 * The topology with every initializer it leaves to tfjs's default named explicitly. A check
 * builds named initializers as untouched zeros, but a default would run for real (glorotUniform
 * samples every weight): a 10^9-weight topology would hold the event loop for minutes before
 * the parameter cap could refuse it. Layers ignore the keys they do not use.
 */
function withExplicitInitializers(topology: TopologySpec): TopologySpec {
  return {
    ...topology,
    config: {
      ...topology.config,
      layers: topology.config.layers.map((layer) => ({
        ...layer,
        config: { ...Object.fromEntries(INITIALIZER_KEYS.map((key) => [key, "zeros"])), ...layer.config },
      })),
    },
  };
}
