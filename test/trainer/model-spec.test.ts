// The model part of the job spec: its schema (errors that name the field, in TypeBox and in the
// server's Ajv), its defaults, the names it reports, and the shape and size checks.
import * as tf from "@tensorflow/tfjs-core";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { checkModelSpec, layerNames, type ModelSpec } from "../../trainer/model-spec.ts";
import { InvalidSpecError, JobSpecSchema, parseJobSpec } from "../../trainer/spec.ts";
import { demoSpec, specProblems } from "./fixtures.ts";

const limits = { maxSteps: 10_000 };

/** demoSpec with these layers (and, optionally, other data and loss). */
function specWith(layers: unknown[], overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...demoSpec(), model: { layers }, ...overrides };
}

const problemsOf = (input: unknown) => specProblems(input, limits);
const fieldsOf = (input: unknown) => problemsOf(input).map((p) => p.field);

// The server validates bodies with Ajv, allErrors on: the same schema must name the same fields.
const ajv = new Ajv({ allErrors: true, strict: false, coerceTypes: false, useDefaults: false });
const validateBody = ajv.compile(JobSpecSchema as object);
/** Ajv's error paths; an unknown property is named like TypeBox names it, below its object. */
function ajvFieldsOf(input: unknown): string[] {
  expect(validateBody(input)).toBe(false);
  return (validateBody.errors ?? []).map((e) => {
    const extra = (e.params as { additionalProperty?: string }).additionalProperty;
    return extra === undefined ? e.instancePath : `${e.instancePath}/${extra}`;
  });
}

const hidden = { type: "dense", units: 16, activation: "relu", inputShape: [2] };
const output = { type: "dense", units: 2 };

describe("model schema", () => {
  it.each([
    ["a negative number of units", { type: "dense", units: -4 }, "/model/layers/1/units"],
    ["an unknown layer type", { type: "transformer", units: 4 }, "/model/layers/1/type"],
    ["a missing type", { units: 4 }, "/model/layers/1"],
    ["a field of another layer type", { type: "dense", units: 4, filters: 3 }, "/model/layers/1/filters"],
    ["a dropout rate of 1", { type: "dropout", rate: 1 }, "/model/layers/1/rate"],
    ["a kernel size of 0", { type: "conv1d", filters: 2, kernelSize: 0 }, "/model/layers/1/kernelSize"],
    ["an unknown activation", { type: "dense", units: 4, activation: "leakyRelu" }, "/model/layers/1/activation"],
    ["an unknown initializer name", { type: "dense", units: 4, kernelInitializer: "xavier" }, "/model/layers/1/kernelInitializer"],
    ["an initializer class outside the allow-list", { type: "dense", units: 4, kernelInitializer: { className: "Lambda" } }, "/model/layers/1/kernelInitializer/className"],
    [
      "a config field an initializer does not have",
      { type: "dense", units: 4, kernelInitializer: { className: "RandomNormal", config: { seed: 3 } } },
      "/model/layers/1/kernelInitializer/config/seed",
    ],
    [
      "a negative standard deviation",
      { type: "dense", units: 4, kernelInitializer: { className: "RandomNormal", config: { stddev: -1 } } },
      "/model/layers/1/kernelInitializer/config/stddev",
    ],
    ["a bad layer inside a residual block", { type: "residual", layers: [{ type: "lstm", units: 0 }] }, "/model/layers/1/layers/0/units"],
    ["a residual block inside a residual block", { type: "residual", layers: [{ type: "residual", layers: [] }] }, "/model/layers/1/layers/0/type"],
  ])("names the field for %s, in TypeBox and in Ajv, without noise from other layer types", (_what, layer, field) => {
    const input = specWith([hidden, layer, output]);
    const problems = problemsOf(input);
    expect(problems.map((p) => p.field)).toContain(field);
    expect(ajvFieldsOf(input)).toContain(field);
    // Besides the field, only its enclosing objects (`must match "else" schema`). A plain anyOf
    // would add errors from each of the ~16 other layer types, all over the layer.
    for (const other of [...problems.map((p) => p.field), ...ajvFieldsOf(input)]) expect(field.startsWith(other)).toBe(true);
  });

  it("accepts either layers or a topology, not both and not neither", () => {
    expect(fieldsOf({ ...demoSpec(), model: {} })).toContain("/model");
    expect(fieldsOf({ ...demoSpec(), model: { layers: [hidden, output], topology: { class_name: "Sequential", config: { layers: [] } } } })).toContain(
      "/model",
    );
  });

  it("fills each layer type's own defaults, inside residual blocks too", () => {
    const spec = parseJobSpec(
      specWith(
        [
          { type: "lstm", units: 4, inputShape: [5, 2] },
          { type: "residual", layers: [{ type: "dense", units: 4 }, { type: "batchNormalization" }] },
          { type: "dense", units: 1 },
        ],
        { data: { kind: "adding", size: 256, seqLen: 5 }, loss: "meanSquaredError" },
      ),
      limits,
    );
    expect(spec.model.layers?.[0]).toMatchObject({
      activation: "tanh",
      recurrentActivation: "hardSigmoid",
      recurrentInitializer: "orthogonal",
      unitForgetBias: true,
      returnSequences: false,
    });
    expect(spec.model.layers?.[1]).toMatchObject({
      layers: [
        { type: "dense", activation: "linear", kernelInitializer: "glorotUniform" },
        { type: "batchNormalization", momentum: 0.99, epsilon: 0.001 },
      ],
    });
  });
});

describe("model checks", () => {
  it("refuses a recurrent layer on flat features, naming the layer", () => {
    expect(problemsOf(specWith([hidden, { type: "lstm", units: 4 }, output]))).toContainEqual({
      field: "/model/layers/1",
      message: expect.stringMatching(/cannot take an input of shape \[16\]: .*expected ndim=3, found ndim=2/),
    });
  });

  it.each([
    [
      "a kernel wider than the sequence",
      [{ type: "conv1d", filters: 2, kernelSize: 30, inputShape: [20, 2] }, { type: "flatten" }, { type: "dense", units: 1 }],
      "/model/layers/0/kernelSize",
      /too large/,
    ],
    [
      "a pool larger than its input",
      [{ type: "conv1d", filters: 2, kernelSize: 3, inputShape: [20, 2] }, { type: "maxPooling1d", poolSize: 30 }, { type: "flatten" }, { type: "dense", units: 1 }],
      "/model/layers/1/poolSize",
      /too large/,
    ],
    [
      "a reshape to another size",
      [{ type: "reshape", targetShape: [7, 7, 1], inputShape: [20, 2] }, { type: "flatten" }, { type: "dense", units: 1 }],
      "/model/layers/0/targetShape",
      /as many numbers as its input of shape \[20,2\] \(40\), not 49/,
    ],
    ["a sequence output for a single target", [{ type: "simpleRNN", units: 1, returnSequences: true, inputShape: [20, 2] }], "/model/layers/0/units", /returnSequences/],
    [
      "a residual block that changes the rank",
      [{ type: "simpleRNN", units: 4, returnSequences: true, inputShape: [20, 2] }, { type: "residual", layers: [{ type: "flatten" }] }, { type: "dense", units: 1 }],
      "/model/layers/1/layers",
      /residual block may change only the last dimension/,
    ],
    [
      "an identity initializer on a kernel that is not square",
      [{ type: "simpleRNN", units: 4, kernelInitializer: "identity", inputShape: [20, 2] }, { type: "dense", units: 1 }],
      "/model/layers/0/kernelInitializer",
      /square/,
    ],
  ])("refuses %s, naming the layer field", (_what, layers, field, message) => {
    const problems = problemsOf(specWith(layers, { data: { kind: "adding", size: 256, seqLen: 20 }, loss: "meanSquaredError" }));
    expect(problems).toContainEqual({ field, message: expect.stringMatching(message) });
  });

  it("keeps the existing rules: input shape only on the first layer, unique names, linear logits", () => {
    expect(fieldsOf(specWith([hidden, { ...output, inputShape: [16] }]))).toContain("/model/layers/1/inputShape");
    expect(fieldsOf(specWith([hidden, { type: "residual", name: "dense_0", layers: [{ type: "dense", units: 16 }] }, output]))).toContain(
      "/model/layers/1/name",
    );
    expect(fieldsOf(specWith([hidden, { type: "residual", layers: [{ type: "dense", units: 16, name: "projection" }] }, output]))).toContain(
      "/model/layers/1/layers/0/name",
    );
    expect(() => parseJobSpec(specWith([hidden, { type: "activation", activation: "softmax" }, output]), limits)).not.toThrow();
    expect(fieldsOf(specWith([hidden, output, { type: "activation", activation: "softmax" }]))).toContain("/model/layers/2/activation");
  });

  it("refuses a model over the parameter cap without allocating it", () => {
    const data = { kind: "blobs" as const, featureShape: [1024], targetShape: [2] };
    // 1024 × 65536 + 65536 weights: 67M, over the default cap of 50M. Zeros are never touched, so this is quick.
    const huge: ModelSpec = { layers: [{ type: "dense", units: 65536, inputShape: [1024] }, { type: "dense", units: 2 }] };
    const started = performance.now();
    expect(checkModelSpec(huge, data, true)).toEqual([{ field: "/model/layers/0", message: expect.stringMatching(/67174400 parameters, more than the 50000000/) }]);
    expect(performance.now() - started).toBeLessThan(5000);
    const small: ModelSpec = { layers: [{ type: "dense", units: 16, inputShape: [1024] }, { type: "dense", units: 2 }] };
    expect(checkModelSpec(small, data, true)).toEqual([]);
    expect(checkModelSpec(small, data, true, { maxParameters: 1000 })).toEqual([{ field: "/model/layers/0", message: expect.stringMatching(/16400 parameters/) }]);
  });

  it("leaves the backend and the tensor count as they were", () => {
    const backend = tf.getBackend();
    const tensors = tf.memory().numTensors;
    parseJobSpec(specWith([hidden, { type: "residual", layers: [{ type: "dense", units: 8 }, { type: "layerNormalization" }] }, output]), limits);
    expect(() => parseJobSpec(specWith([hidden, { type: "lstm", units: 4 }, output]), limits)).toThrow(InvalidSpecError);
    expect(tf.getBackend()).toBe(backend);
    expect(tf.memory().numTensors).toBe(tensors);
  });
});

describe("layer names", () => {
  it("reports only layers with weights; residual blocks as <block>/<layer>, with their projection", () => {
    const model: ModelSpec = {
      layers: [
        { type: "dense", units: 8, inputShape: [4] },
        { type: "dropout", rate: 0.1 },
        { type: "residual", layers: [{ type: "dense", units: 8, activation: "relu" }, { type: "dense", units: 8, name: "out" }] },
        { type: "residual", name: "wide", layers: [{ type: "dense", units: 12 }] },
        { type: "activation", activation: "relu" },
        { type: "batchNormalization", center: false, scale: false },
        { type: "dense", units: 2, name: "logits" },
      ],
    };
    expect(layerNames(model)).toEqual(["dense_0", "residual_2/dense_0", "residual_2/out", "wide/dense_0", "wide/projection", "logits"]);
  });
});
