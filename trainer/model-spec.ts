// The `model` part of a job spec: a list of layers named after tfjs layers, with their tfjs
// config fields. Data only: no code, no paths.
import Type, { type Static } from "typebox";
import type { DatasetShape } from "./data/datasets.ts";
import type { SpecProblem } from "./spec.ts";

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
export type LayerSpec = Static<typeof LayerSchema>;

export const ModelSchema = Type.Object({ layers: Type.Array(LayerSchema, { minItems: 1, maxItems: 256 }) }, { additionalProperties: false });
export type ModelSpec = Static<typeof ModelSchema>;

/** Layer names in model order: the user's, or `<type>_<index>`. Step.layerNorms follows this order. */
export function layerNames(model: ModelSpec): string[] {
  return model.layers.map((layer, index) => layer.name ?? `${layer.type}_${index}`);
}

/** Rules between the model and the data it trains on. `lossExpectsLogits`: softmax cross-entropy. */
export function checkModelSpec(model: ModelSpec, data: DatasetShape & { kind: string }, lossExpectsLogits: boolean): SpecProblem[] {
  const problems: SpecProblem[] = [];
  const { layers } = model;
  const features = data.featureShape;
  const first = layers[0];
  if (first && !first.inputShape) {
    problems.push({ field: "/model/layers/0/inputShape", message: `is required on the first layer (the ${data.kind} data has shape [${features}])` });
  } else if (first?.inputShape && first.inputShape.join(",") !== features.join(",")) {
    problems.push({ field: "/model/layers/0/inputShape", message: `must be [${features}] to match the ${data.kind} data` });
  }
  layers.forEach((layer, index) => {
    if (index > 0 && layer.inputShape) problems.push({ field: `/model/layers/${index}/inputShape`, message: "is only allowed on the first layer" });
  });
  const names = layerNames(model);
  names.forEach((name, index) => {
    if (names.indexOf(name) !== index) problems.push({ field: `/model/layers/${index}/name`, message: `duplicates the name "${name}"` });
  });
  const lastIndex = layers.length - 1;
  const last = layers[lastIndex];
  const targets = data.targetShape.reduce((a, b) => a * b, 1);
  if (last && last.units !== targets) {
    problems.push({ field: `/model/layers/${lastIndex}/units`, message: `must be ${targets}: the ${data.kind} data has ${targets} targets per example` });
  }
  if (lossExpectsLogits && last?.activation && last.activation !== "linear") {
    problems.push({ field: `/model/layers/${lastIndex}/activation`, message: "must be linear: softmaxCrossEntropy applies the softmax itself" });
  }
  return problems;
}
