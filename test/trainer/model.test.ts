// Models built from specs: every layer type trains, weights are seeded, residual blocks add,
// topologies load (and unknown classes do not), and a SimpleRNN on the adding problem explodes
// the way the watchdog benchmark expects.
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { beforeAll, describe, expect, it } from "vitest";
import { resolveBackend } from "../../trainer/backend.ts";
import { type Dataset, makeDataset } from "../../trainer/data/datasets.ts";
import type { DataSpec } from "../../trainer/data/spec.ts";
import type { LayerSpec, ModelSpec } from "../../trainer/model-spec.ts";
import { buildModel, dropoutCounters, restoreDropoutCounters } from "../../trainer/model.ts";
import { makeOptimizer, type OptimizerSpec } from "../../trainer/optimizer.ts";
import { type JobSpec, parseJobSpec } from "../../trainer/spec.ts";
import { prepareTraining, type StepRecord } from "../../trainer/train-loop.ts";
import { applyUpdate, type GradientMeasurement, LOSSES, measureGradients, type StepContext } from "../../trainer/train-step.ts";
import { silentLog } from "../helpers/database.ts";
import { specProblems } from "./fixtures.ts";

const limits = { maxSteps: 10_000 };
const resolved = await resolveBackend(undefined, silentLog);
const tfName = (backend: string) => (backend.startsWith("tensorflow") ? "tensorflow" : backend);

function job(model: ModelSpec, data: DataSpec, loss: JobSpec["loss"], overrides: Record<string, unknown> = {}): JobSpec {
  return parseJobSpec(
    { name: "model test", model, data, loss, optimizer: { type: "sgd", learningRate: 0.05 }, batchSize: 16, steps: 10, seed: 1, ...overrides },
    limits,
  );
}

function firstBatch(data: Dataset, n: number): { x: tf.Tensor; y: tf.Tensor } {
  const xSize = data.featureShape.reduce((a, b) => a * b, 1);
  const ySize = data.targetShape.reduce((a, b) => a * b, 1);
  return { x: tf.tensor(data.x.subarray(0, n * xSize), [n, ...data.featureShape]), y: tf.tensor(data.y.subarray(0, n * ySize), [n, ...data.targetShape]) };
}

/** `steps` steps of the production step functions on one batch; what they measured and did. */
async function trainSteps(spec: JobSpec, steps: number) {
  const built = buildModel(spec);
  const batch = firstBatch(makeDataset(spec.data), spec.batchSize);
  const context: StepContext = { model: built.model, optimizer: tf.train.sgd(0.05), loss: LOSSES[spec.loss], layerVariables: built.layerVariables };
  const read = () => built.layerVariables.map((layer) => layer.map((variable) => Array.from(variable.dataSync())));
  const before = read();
  const measurements: GradientMeasurement[] = [];
  const tensorCounts: number[] = [];
  for (let step = 0; step < steps; step++) {
    const { measurement, grads } = await measureGradients(context, batch);
    applyUpdate(context, grads, { clipCoef: 1, learningRate: 0.05, skip: false });
    measurements.push(measurement);
    tensorCounts.push(tf.memory().numTensors);
  }
  const after = read();
  tf.dispose([batch.x, batch.y]);
  context.optimizer.dispose();
  built.model.dispose();
  return { layerNames: built.layerNames, variableCounts: built.layerVariables.map((v) => v.length), measurements, tensorCounts, before, after };
}

const blobs: DataSpec = { kind: "blobs", size: 64, features: 4, classes: 3 };
const images: DataSpec = { kind: "blobs", size: 64, features: 64, classes: 3 };

interface LayerCase {
  name: string;
  layers: LayerSpec[];
  data: DataSpec;
  loss: JobSpec["loss"];
}

const LAYER_CASES: LayerCase[] = [
  { name: "dense", layers: [{ type: "dense", units: 16, activation: "relu", inputShape: [4] }, { type: "dense", units: 3 }], data: blobs, loss: "softmaxCrossEntropy" },
  {
    name: "conv1d, maxPooling1d, flatten",
    layers: [
      { type: "conv1d", filters: 4, kernelSize: 3, activation: "relu", inputShape: [16, 1] },
      { type: "maxPooling1d" },
      { type: "flatten" },
      { type: "dense", units: 1 },
    ],
    data: { kind: "sine", size: 64, seqLen: 16 },
    loss: "meanSquaredError",
  },
  {
    name: "reshape, conv2d, maxPooling2d",
    layers: [
      { type: "reshape", targetShape: [8, 8, 1], inputShape: [64] },
      // Linear, so that some pooling windows hold only negative values (see the backend comparison).
      { type: "conv2d", filters: 4, kernelSize: 3, padding: "same" },
      { type: "maxPooling2d", poolSize: [2, 2] },
      { type: "flatten" },
      { type: "dense", units: 3 },
    ],
    data: images,
    loss: "softmaxCrossEntropy",
  },
  {
    name: "embedding",
    layers: [{ type: "embedding", inputDim: 2, outputDim: 4, inputShape: [8] }, { type: "flatten" }, { type: "dense", units: 2 }],
    data: { kind: "parity", size: 64, bits: 8 },
    loss: "softmaxCrossEntropy",
  },
  {
    name: "batchNormalization, activation, dropout, layerNormalization",
    layers: [
      { type: "dense", units: 16, inputShape: [4] },
      { type: "batchNormalization" },
      { type: "activation", activation: "relu" },
      { type: "dropout", rate: 0.2 },
      { type: "layerNormalization" },
      { type: "dense", units: 3 },
    ],
    data: blobs,
    loss: "softmaxCrossEntropy",
  },
  {
    name: "simpleRNN, lstm, gru",
    layers: [
      { type: "simpleRNN", units: 8, returnSequences: true, inputShape: [10, 2] },
      { type: "lstm", units: 8, returnSequences: true },
      { type: "gru", units: 8 },
      { type: "dense", units: 1 },
    ],
    data: { kind: "adding", size: 64, seqLen: 10 },
    loss: "meanSquaredError",
  },
  {
    name: "residual blocks, with and without a projection",
    layers: [
      { type: "dense", units: 8, inputShape: [4] },
      { type: "residual", layers: [{ type: "dense", units: 8, activation: "relu" }, { type: "dense", units: 8 }] },
      { type: "residual", layers: [{ type: "dense", units: 12, activation: "tanh" }] },
      { type: "dense", units: 3 },
    ],
    data: blobs,
    loss: "softmaxCrossEntropy",
  },
  {
    name: "a residual block of strided convolutions",
    layers: [
      { type: "reshape", targetShape: [8, 8, 1], inputShape: [64] },
      { type: "conv2d", filters: 4, kernelSize: 3, padding: "same" },
      { type: "residual", layers: [{ type: "conv2d", filters: 8, kernelSize: 3, strides: 2, padding: "same", activation: "relu" }] },
      { type: "flatten" },
      { type: "dense", units: 3 },
    ],
    data: images,
    loss: "softmaxCrossEntropy",
  },
];

describe.each([...new Set([resolved, "cpu"])])("every layer type on the %s backend", (backend) => {
  beforeAll(async () => {
    await tf.setBackend(tfName(backend));
  });

  for (const layerCase of LAYER_CASES) {
    it(`${layerCase.name}: trains with finite norms, moving weights and no leak`, async () => {
      const spec = job({ layers: layerCase.layers }, layerCase.data, layerCase.loss);
      const { layerNames, variableCounts, measurements, tensorCounts, before, after } = await trainSteps(spec, 4);
      expect(layerNames).toHaveLength(variableCounts.length);
      expect(variableCounts.every((n) => n > 0)).toBe(true);
      for (const m of measurements) {
        expect(m.nonFinite).toBe(false);
        expect(m.layerNorms).toHaveLength(layerNames.length);
        for (const norm of m.layerNorms) expect(norm).toBeGreaterThan(0);
      }
      layerNames.forEach((name, i) => {
        expect(after[i], `${name} did not change`).not.toEqual(before[i]);
      });
      expect(new Set(tensorCounts.slice(1)).size, `tensors per step: ${tensorCounts}`).toBe(1);
    });
  }
});

describe.skipIf(resolved === "cpu")(`the ${resolved} backend's gradients`, () => {
  /** The first step's per-layer norms on a backend, for the same spec, seed and batch. */
  async function firstNorms(spec: JobSpec, backend: string): Promise<number[]> {
    await tf.setBackend(tfName(backend));
    return (await trainSteps(spec, 1)).measurements[0]?.layerNorms ?? [];
  }

  for (const layerCase of LAYER_CASES) {
    it(`${layerCase.name}: equal the cpu backend's`, async () => {
      const spec = job({ layers: layerCase.layers }, { ...layerCase.data, seed: 2 }, layerCase.loss);
      const reference = await firstNorms(spec, "cpu");
      const norms = await firstNorms(spec, resolved);
      // Dropout masks come from the same seeded generator on every backend.
      expect(norms).toHaveLength(reference.length);
      norms.forEach((norm, i) => {
        expect(Math.abs(norm - (reference[i] as number)) / (reference[i] as number), `layer ${i}: ${norm} vs ${reference[i]}`).toBeLessThan(1e-4);
      });
    });
  }
});

describe.skipIf(resolved === "cpu")(`the ${resolved} backend's measurements`, () => {
  // On wasm the sums are taken in place in the backend's memory; on cpu through tensors and a
  // read: every field, in every layout (weights measured or known, an update part or none).
  it.each<OptimizerSpec>([
    { type: "sgd", learningRate: 0.05 },
    { type: "adam", learningRate: 0.01 },
  ])("equal the cpu backend's: loss, norms, weight and update norms (%o)", async (optimizer) => {
    const spec = job({ layers: LAYER_CASES[0]?.layers ?? [] }, { ...blobs, seed: 3 }, "softmaxCrossEntropy", { optimizer });
    const measure = async (backend: string) => {
      await tf.setBackend(tfName(backend));
      const built = buildModel(spec);
      const batch = firstBatch(makeDataset(spec.data), spec.batchSize);
      const context: StepContext = { model: built.model, optimizer: makeOptimizer(optimizer), loss: LOSSES[spec.loss], layerVariables: built.layerVariables };
      const measurements: GradientMeasurement[] = [];
      for (let step = 0; step < 4; step++) {
        const { measurement, grads } = await measureGradients(context, batch, 1, step % 2 === 1 ? 7.5 : undefined);
        applyUpdate(context, grads, { clipCoef: 1, learningRate: optimizer.learningRate, skip: false });
        measurements.push(measurement);
      }
      tf.dispose([batch.x, batch.y]);
      context.optimizer.dispose();
      built.model.dispose();
      return measurements;
    };
    const reference = await measure("cpu");
    const measured = await measure(resolved);
    await tf.setBackend(tfName(resolved));
    measured.forEach((m, step) => {
      const expected = reference[step] as GradientMeasurement;
      const close = (got: number, want: number, what: string) => expect(Math.abs(got - want) / Math.abs(want), `step ${step} ${what}: ${got} vs ${want}`).toBeLessThan(1e-4);
      close(m.loss, expected.loss, "loss");
      close(m.gradNorm, expected.gradNorm, "gradNorm");
      for (const [i, norm] of m.layerNorms.entries()) close(norm, expected.layerNorms[i] as number, `layer ${i}`);
      close(m.weightNorm, expected.weightNorm, "weightNorm");
      close(m.updateNorm, expected.updateNorm, "updateNorm");
      expect(m.nonFinite).toBe(false);
      if (step % 2 === 1) expect(m.weightNorm).toBe(7.5);
      else expect(m.weightNorm).not.toBe(7.5);
      // Adam's direction is not the gradient: its part of the readout must have been used.
      if (optimizer.type === "sgd") expect(m.updateNorm).toBe(m.gradNorm);
      else expect(Math.abs(m.updateNorm - m.gradNorm) / m.gradNorm).toBeGreaterThan(0.01);
    });
  });
});

describe("seeded weights", () => {
  beforeAll(async () => {
    await tf.setBackend(tfName(resolved));
  });

  const model: ModelSpec = {
    layers: [
      { type: "embedding", inputDim: 4, outputDim: 3, inputShape: [5] },
      { type: "lstm", units: 4, returnSequences: true },
      { type: "conv1d", filters: 2, kernelSize: 2, kernelInitializer: "heNormal" },
      { type: "flatten" },
      { type: "dense", units: 3, kernelInitializer: { className: "TruncatedNormal", config: { stddev: 0.2 } }, biasInitializer: "randomUniform" },
    ],
  };
  const weights = (seed: number) => {
    const built = buildModel({ model, seed });
    const values = built.model.getWeights().map((w) => Array.from(w.dataSync()));
    built.model.dispose();
    return values;
  };

  it("are the same for the same spec and seed, and different for another seed", () => {
    const a = weights(1);
    expect(weights(1)).toEqual(a);
    const b = weights(2);
    // Every randomly initialised weight differs; the zero biases and the LSTM's forget-gate ones do not.
    a.forEach((values, i) => {
      if (new Set(values).size > 2) expect(b[i], `weight ${i}`).not.toEqual(values);
    });
  });

  it("initializes recurrent kernels orthogonally (tfjs's Orthogonal, without chained ops)", () => {
    const built = buildModel({ model: { layers: [{ type: "simpleRNN", units: 16, inputShape: [3, 2] }] }, seed: 1 });
    const recurrent = built.layerVariables[0]?.[1] as tf.Variable;
    expect(recurrent.shape).toEqual([16, 16]);
    const gram = tf.matMul(recurrent, recurrent, true, false);
    const identity = tf.eye(16);
    expect(tf.max(tf.abs(tf.sub(gram, identity))).dataSync()[0]).toBeLessThan(1e-4);
    tf.dispose([gram, identity]);
    built.model.dispose();
  });

  it("honours a serialized initializer: RandomNormal with stddev 0.3", () => {
    const built = buildModel({
      model: { layers: [{ type: "dense", units: 200, inputShape: [200], kernelInitializer: { className: "RandomNormal", config: { stddev: 0.3 } } }] },
      seed: 1,
    });
    const values = built.layerVariables[0]?.[0]?.dataSync() as Float32Array;
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
    expect(values).toHaveLength(40_000);
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(std).toBeCloseTo(0.3, 2);
    built.model.dispose();
  });

  it("draws a new dropout mask at every training call, the same sequence for the same seed, none when predicting", () => {
    const spec: ModelSpec = { layers: [{ type: "dense", units: 64, kernelInitializer: "ones", inputShape: [4] }, { type: "dropout", rate: 0.5 }] };
    const masks = (seed: number) => {
      const built = buildModel({ model: spec, seed });
      const x = tf.ones([1, 4]);
      const calls = [0, 1, 2].map(() => tf.tidy(() => Array.from((built.model.apply(x, { training: true }) as tf.Tensor).dataSync())));
      const predicted = tf.tidy(() => Array.from((built.model.predict(x) as tf.Tensor).dataSync()));
      x.dispose();
      built.model.dispose();
      return { calls, predicted };
    };
    const a = masks(1);
    expect(a.calls[1]).not.toEqual(a.calls[0]);
    expect(a.calls[2]).not.toEqual(a.calls[1]);
    expect(masks(1).calls).toEqual(a.calls);
    expect(masks(2).calls).not.toEqual(a.calls);
    expect(a.predicted).toEqual(Array(64).fill(4));
  });

  it("resumes the mask sequence from saved dropout counters", () => {
    const spec: ModelSpec = { layers: [{ type: "dense", units: 64, kernelInitializer: "ones", inputShape: [4] }, { type: "dropout", rate: 0.5, name: "drop" }] };
    const x = tf.ones([1, 4]);
    const mask = (model: tfl.LayersModel) => tf.tidy(() => Array.from((model.apply(x, { training: true }) as tf.Tensor).dataSync()));
    const original = buildModel({ model: spec, seed: 1 });
    mask(original.model);
    mask(original.model);
    expect(dropoutCounters(original.model)).toEqual({ drop: 2 });
    const resumed = buildModel({ model: spec, seed: 1 });
    restoreDropoutCounters(resumed.model, dropoutCounters(original.model));
    expect(mask(resumed.model)).toEqual(mask(original.model));
    tf.dispose(x);
    original.model.dispose();
    resumed.model.dispose();
  });
});

describe("residual blocks", () => {
  beforeAll(async () => {
    await tf.setBackend(tfName(resolved));
  });

  const zeros = { kernelInitializer: "zeros", biasInitializer: "zeros" } as const;
  const x = () => tf.tensor([[1, -2, 3, 0.5], [0, 4, -1, 2]]);

  it("add the input to f(input): with f's weights at zero the block is the identity", () => {
    const built = buildModel({ model: { layers: [{ type: "residual", inputShape: [4], layers: [{ type: "dense", units: 4, activation: "relu", ...zeros }] }] }, seed: 1 });
    expect(built.layerNames).toEqual(["residual_0/dense_0"]);
    const input = x();
    expect(Array.from((built.model.predict(input) as tf.Tensor).dataSync())).toEqual(Array.from(input.dataSync()));
    tf.dispose([input]);
    built.model.dispose();
  });

  it("project the input, linearly and without bias, when f changes its width: output = x·P + f(x)", () => {
    const built = buildModel({ model: { layers: [{ type: "residual", name: "block", inputShape: [4], layers: [{ type: "dense", units: 3, ...zeros }] }] }, seed: 1 });
    expect(built.layerNames).toEqual(["block/dense_0", "block/projection"]);
    const [projection] = built.layerVariables[1] ?? [];
    expect(projection?.shape).toEqual([4, 3]);
    const input = x();
    const expected = tf.matMul(input, projection as tf.Tensor);
    const output = built.model.predict(input) as tf.Tensor;
    expect(Array.from(output.dataSync())).toEqual(Array.from(expected.dataSync()).map((v) => expect.closeTo(v, 5)));
    tf.dispose([input, expected, output]);
    built.model.dispose();
  });

  it("project images with a strided 1×1 convolution when f halves rows and columns", () => {
    const built = buildModel({
      model: { layers: [{ type: "residual", inputShape: [6, 6, 2], layers: [{ type: "conv2d", filters: 4, kernelSize: 3, strides: 2, padding: "same", ...zeros }] }] },
      seed: 1,
    });
    expect(built.layerNames).toEqual(["residual_0/conv2d_0", "residual_0/projection"]);
    expect(built.layerVariables[1]?.[0]?.shape).toEqual([1, 1, 2, 4]);
    const input = tf.randomNormal([1, 6, 6, 2], 0, 1, "float32", 3);
    const expected = tf.conv2d(input as tf.Tensor4D, built.layerVariables[1]?.[0] as tf.Tensor4D, 2, "valid");
    const output = built.model.predict(input) as tf.Tensor;
    expect(output.shape).toEqual([1, 3, 3, 4]);
    expect(Array.from(output.dataSync())).toEqual(Array.from(expected.dataSync()).map((v) => expect.closeTo(v, 5)));
    tf.dispose([input, expected, output]);
    built.model.dispose();
  });
});

describe("model topologies", () => {
  beforeAll(async () => {
    await tf.setBackend(tfName(resolved));
  });

  const problemsOf = (input: unknown) => specProblems(input, limits);
  const topologySpec = (topology: unknown, data: DataSpec = blobs, loss = "softmaxCrossEntropy") => ({
    name: "topology",
    model: { topology },
    data,
    loss,
    optimizer: { type: "sgd", learningRate: 0.05 },
    batchSize: 16,
    steps: 10,
    seed: 1,
  });

  it("round-trips: a built model's toJSON, fed back as a topology, builds the same layers and trains", async () => {
    const original = buildModel(
      job(
        {
          layers: [
            { type: "dense", units: 8, activation: "relu", inputShape: [4] },
            { type: "dropout", rate: 0.1 },
            { type: "residual", layers: [{ type: "dense", units: 6, activation: "tanh" }] },
            { type: "dense", units: 3 },
          ],
        },
        blobs,
        "softmaxCrossEntropy",
      ),
    );
    const topology = JSON.parse(original.model.toJSON() as string);
    const spec = parseJobSpec(topologySpec(topology), limits);
    const { layerNames, measurements, tensorCounts, before, after } = await trainSteps(spec, 3);
    expect([...layerNames].sort()).toEqual([...original.layerNames].sort());
    expect(measurements.every((m) => !m.nonFinite && m.gradNorm > 0)).toBe(true);
    expect(after).not.toEqual(before);
    expect(new Set(tensorCounts.slice(1)).size).toBe(1);
    original.model.dispose();
  });

  it("loads a Keras-style Sequential topology, with weights seeded from the job seed", () => {
    const topology = JSON.parse(
      tfl.sequential({ layers: [tfl.layers.lstm({ units: 4, inputShape: [10, 2] }), tfl.layers.dropout({ rate: 0.1 }), tfl.layers.dense({ units: 1 })] }).toJSON() as string,
    );
    expect(topology.config.layers[0].config.recurrent_initializer).toMatchObject({ class_name: "Orthogonal", config: { seed: null } });
    const weights = (seed: number) => {
      const built = buildModel(parseJobSpec({ ...topologySpec(topology, { kind: "adding", size: 64, seqLen: 10 }, "meanSquaredError"), seed }, limits));
      const values = built.model.getWeights().map((w) => Array.from(w.dataSync()));
      expect(built.layerNames).toHaveLength(2);
      built.model.dispose();
      return values;
    };
    expect(weights(1)).toEqual(weights(1));
    expect(weights(2)[0]).not.toEqual(weights(1)[0]);
  });

  it("loads Keras JSON: an InputLayer, snake_case, string initializers, Keras 2.13 bookkeeping fields", async () => {
    const keras = {
      class_name: "Sequential",
      config: {
        name: "keras",
        layers: [
          { class_name: "InputLayer", config: { batch_input_shape: [null, 4], dtype: "float32", name: "in" } },
          {
            module: "keras.layers",
            class_name: "Dense",
            config: {
              name: "hidden",
              units: 8,
              activation: "relu",
              kernel_initializer: { module: "keras.initializers", class_name: "HeNormal", config: { seed: null }, registered_name: null },
              bias_initializer: "zeros",
            },
            registered_name: null,
          },
          { class_name: "Dropout", config: { name: "drop", rate: 0.5, noise_shape: [null, 1] } },
          { class_name: "Dense", config: { name: "logits", units: 3, activation: "linear" } },
        ],
      },
      keras_version: "2.15.0",
      backend: "tensorflow",
    };
    const { layerNames, measurements } = await trainSteps(parseJobSpec(topologySpec(keras), limits), 2);
    expect(layerNames).toEqual(["hidden", "logits"]);
    expect(measurements.every((m) => !m.nonFinite)).toBe(true);
    const softmax = structuredClone(keras);
    (softmax.config.layers[3] as { config: { activation: string } }).config.activation = "softmax";
    expect(problemsOf(topologySpec(softmax)).map((p) => p.field)).toEqual(["/model/topology/config/layers/3/config/activation"]);
  });

  it("refuses layer classes outside the allow-list, and nested classes too, naming the field", () => {
    const topology = JSON.parse(tfl.sequential({ layers: [tfl.layers.dense({ units: 3, inputShape: [4] })] }).toJSON() as string);
    const lambda = structuredClone(topology);
    lambda.config.layers.push({ class_name: "Lambda", config: { function: "lambda x: __import__('os').system('id')" } });
    expect(problemsOf(topologySpec(lambda)).map((p) => p.field)).toContain("/model/topology/config/layers/1/class_name");

    const custom = structuredClone(topology);
    custom.config.layers[0].config.kernel_initializer = { class_name: "MyInitializer", config: {} };
    expect(problemsOf(topologySpec(custom))).toContainEqual({
      field: "/model/topology/config/layers/0/config/kernel_initializer/class_name",
      message: expect.stringContaining("MyInitializer"),
    });
  });

  it("refuses a topology whose input or output does not fit the data", () => {
    const topology = JSON.parse(tfl.sequential({ layers: [tfl.layers.dense({ units: 3, inputShape: [5] })] }).toJSON() as string);
    expect(problemsOf(topologySpec(topology))).toContainEqual({ field: "/model/topology", message: expect.stringMatching(/inputs of shape \[5\]/) });
    const wrongOutput = JSON.parse(tfl.sequential({ layers: [tfl.layers.dense({ units: 7, inputShape: [4] })] }).toJSON() as string);
    expect(problemsOf(topologySpec(wrongOutput))).toContainEqual({ field: "/model/topology", message: expect.stringMatching(/output \[7\]/) });
    const noInputShape = structuredClone(topology);
    delete noInputShape.config.layers[0].config.batch_input_shape;
    expect(problemsOf(topologySpec(noInputShape))).toContainEqual({ field: "/model/topology", message: expect.stringMatching(/inputShape/) });
  });
});

describe("the watchdog benchmark's explosion", () => {
  beforeAll(async () => {
    await tf.setBackend(tfName(resolved));
  });

  it("a 64-unit SimpleRNN with N(0, 0.3²) recurrent weights, on the adding problem (T=50), SGD 0.5, MSE: non-finite within 30 steps", async () => {
    const spec = parseJobSpec(
      {
        name: "explode",
        model: {
          layers: [
            { type: "simpleRNN", units: 64, recurrentInitializer: { className: "RandomNormal", config: { stddev: 0.3 } }, inputShape: [50, 2] },
            { type: "dense", units: 1 },
          ],
        },
        data: { kind: "adding", size: 1024, seqLen: 50, seed: 1 },
        loss: "meanSquaredError",
        optimizer: { type: "sgd", learningRate: 0.5 },
        batchSize: 64,
        steps: 30,
        seed: 1,
        validation: { fraction: 0 },
      },
      limits,
    );
    // Unguarded: the watchdog would clip, skip or stop; this is the explosion it has to catch.
    const training = prepareTraining(spec, { guard: null });
    const records: StepRecord[] = [];
    await training.run({ onStep: (r) => records.push(r) });
    training.dispose();
    expect(records).toHaveLength(30);
    // Spectral radius ≈ 0.3·√64 = 2.4: gradients through 50 steps are huge from the start.
    expect(records[0]?.gradNorm).toBeGreaterThan(1e3);
    const firstBad = records.find((r) => !Number.isFinite(r.loss) || !Number.isFinite(r.gradNorm));
    expect(firstBad, `norms: ${records.map((r) => r.gradNorm.toExponential(1))}`).toBeDefined();
    expect(firstBad?.nonFinite).toBe(true);
  });
});
