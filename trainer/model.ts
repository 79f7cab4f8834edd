// Turns a spec's model (a layer list, or a Keras/tfjs topology) into a tfjs LayersModel, with
// every random initializer and every dropout seeded, so the same spec and seed start from the
// same weights and draw the same dropout masks. The same code checks a spec: it builds the model
// with zero weights on the cpu backend, so the shapes it accepts are the ones tfjs accepts.
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfl from "@tensorflow/tfjs-layers";
import type {
  Activation,
  InitializerName,
  InitializerSpec,
  LayerSpec,
  ModelSpec,
  PlainLayerSpec,
  ResidualLayerSpec,
  TopologySpec,
} from "./model-spec.ts";
import type { JobSpec } from "./spec.ts";

export interface BuiltModel {
  model: tfl.LayersModel;
  /** The reported layers' names, in model order (what Job.layerNames stores); see layerNames in model-spec.ts. */
  layerNames: string[];
  /** The trainable variables of each reported layer, in the same order. */
  layerVariables: tf.Variable[][];
}

/** A model that tfjs cannot build, and the spec field that makes it so (a JSON pointer). */
export class ModelBuildError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = "ModelBuildError";
  }
}

/** Builds the model to train: seeded weights, on the current backend. */
export function buildModel(spec: Pick<JobSpec, "model" | "seed">): BuiltModel {
  const { model, reported } = disposingOnError(() => assemble(spec.model, { seed: spec.seed, checkOnly: false }));
  return {
    model,
    layerNames: reported.map((layer) => layer.name),
    layerVariables: reported.map((layer) => layer.trainableWeights.map((weight) => weight.read() as tf.Variable)),
  };
}

export interface ModelInspection {
  /** One example's input shape, without the batch axis. */
  inputShape: number[];
  /** One example's output shape, without the batch axis. */
  outputShape: number[];
  /** Every weight, trainable or not. */
  parameters: number;
  layerNames: string[];
  /** Topologies only: the output layer's activation and where the topology sets it. */
  outputActivation?: { field: string; value: string };
}

/**
 * Builds the model with zero weights on the cpu backend, describes it and frees it. Zeros cost
 * next to nothing (the memory is not touched), so even a model over the parameter cap can be
 * measured. `inputShape` replaces the first layer's (checks use the data's); `maxParameters`
 * stops the build at the layer that crosses it. Throws ModelBuildError.
 */
export function inspectModel(model: ModelSpec, options: { inputShape?: number[]; maxParameters?: number } = {}): ModelInspection {
  return onCpuBackend(() => {
    const before = new Set(Object.keys(tf.engine().state.registeredVariables));
    try {
      let inspection: ModelInspection | undefined;
      tf.tidy(() => {
        const { model: built, reported, topology } = assemble(model, { seed: 0, checkOnly: true, ...options });
        const inputs = built.inputs[0] as tfl.SymbolicTensor;
        const outputs = built.outputs[0] as tfl.SymbolicTensor;
        inspection = {
          inputShape: inputs.shape.slice(1) as number[],
          outputShape: outputs.shape.slice(1) as number[],
          parameters: built.countParams(),
          layerNames: reported.map((layer) => layer.name),
          ...(topology ? { outputActivation: outputActivation(built, topology) } : {}),
        };
      });
      return inspection as ModelInspection;
    } finally {
      const registered = tf.engine().state.registeredVariables;
      for (const name of Object.keys(registered)) if (!before.has(name)) registered[name]?.dispose();
    }
  });
}

/** The reported layer names (see layerNames in model-spec.ts), from a zero-weight build. */
export function reportedLayerNames(model: ModelSpec): string[] {
  return inspectModel(model).layerNames;
}

/** A distinct, reproducible, non-zero seed for each layer of a job (tfjs treats seed 0 as "unseeded"). */
export function layerSeed(jobSeed: number, layerIndex: number): number {
  return (Math.imul(jobSeed + 1, 0x9e3779b1) + layerIndex * 7919) >>> 0 || 1;
}

/** Which weight of a layer a seed is for, so that a layer's kernel and recurrent kernel differ. */
const SLOT = { kernel: 0, recurrent: 1, bias: 2, dropout: 3, projection: 4 } as const;

function weightSeed(jobSeed: number, seedIndex: number, slot: number): number {
  const base = layerSeed(jobSeed, seedIndex);
  // slot 0 keeps layerSeed itself, so dense kernels start where they did before slots existed.
  return slot === 0 ? base : (base ^ Math.imul(slot, 0x85ebca6b)) >>> 0 || 1;
}

/** The seed index of layer `inner` of the residual block at `block` (top-level layers use their index, < 256). */
function innerSeedIndex(block: number, inner: number): number {
  return 256 * (inner + 1) + block;
}

// ---------------------------------------------------------------------------------------------
// Initializers

/** tfjs initializer classes a spec may name, with how to make each (config already validated). */
const INITIALIZER_FACTORIES = {
  Zeros: () => tfl.initializers.zeros(),
  Ones: () => tfl.initializers.ones(),
  Constant: (config: InitializerConfig) => tfl.initializers.constant({ value: num(config.value, 0) }),
  RandomNormal: (config: InitializerConfig, seed: number) => tfl.initializers.randomNormal({ mean: num(config.mean, 0), stddev: num(config.stddev, 0.05), seed }),
  TruncatedNormal: (config: InitializerConfig, seed: number) =>
    tfl.initializers.truncatedNormal({ mean: num(config.mean, 0), stddev: num(config.stddev, 0.05), seed }),
  RandomUniform: (config: InitializerConfig, seed: number) =>
    tfl.initializers.randomUniform({ minval: num(config.minval, -0.05), maxval: num(config.maxval, 0.05), seed }),
  VarianceScaling: (config: InitializerConfig, seed: number) =>
    tfl.initializers.varianceScaling({
      scale: num(config.scale, 1),
      mode: (config.mode ?? "fanIn") as "fanIn",
      distribution: (config.distribution ?? "normal") as "normal",
      seed,
    }),
  GlorotUniform: (_: InitializerConfig, seed: number) => tfl.initializers.glorotUniform({ seed }),
  GlorotNormal: (_: InitializerConfig, seed: number) => tfl.initializers.glorotNormal({ seed }),
  HeUniform: (_: InitializerConfig, seed: number) => tfl.initializers.heUniform({ seed }),
  HeNormal: (_: InitializerConfig, seed: number) => tfl.initializers.heNormal({ seed }),
  LeCunUniform: (_: InitializerConfig, seed: number) => tfl.initializers.leCunUniform({ seed }),
  LeCunNormal: (_: InitializerConfig, seed: number) => tfl.initializers.leCunNormal({ seed }),
  Orthogonal: (config: InitializerConfig, seed: number) => tfl.initializers.orthogonal({ gain: num(config.gain, 1), seed }),
  Identity: (config: InitializerConfig) => tfl.initializers.identity({ gain: num(config.gain, 1) }),
};
type InitializerConfig = Record<string, number | string | undefined>;
type Initializer = ReturnType<typeof tfl.initializers.zeros>;

/** Serialized initializer classes a spec or topology may use. */
export const INITIALIZER_CLASS_NAMES = Object.keys(INITIALIZER_FACTORIES) as (keyof typeof INITIALIZER_FACTORIES)[];
/** Those that draw random numbers, and so get a seed. */
const SEEDED_INITIALIZERS = new Set<string>(INITIALIZER_CLASS_NAMES.filter((name) => !["Zeros", "Ones", "Constant", "Identity"].includes(name)));

function num(value: number | string | undefined, fallback: number): number {
  return typeof value === "number" ? value : fallback;
}

/** `glorotUniform` → `GlorotUniform`: tfjs's names are its class names, lower camel case. */
function initializerClass(spec: InitializerSpec): { className: keyof typeof INITIALIZER_FACTORIES; config: InitializerConfig } {
  if (typeof spec !== "string") return { className: spec.className, config: spec.config ?? {} };
  return { className: `${spec[0]?.toUpperCase()}${spec.slice(1)}` as keyof typeof INITIALIZER_FACTORIES, config: {} };
}

function makeInitializer(spec: InitializerSpec, seed: number): Initializer {
  const { className, config } = initializerClass(spec);
  return INITIALIZER_FACTORIES[className](config, seed);
}

/**
 * For checks: zeros (which allocate nothing that is touched), after refusing the shapes the
 * real initializer would refuse when training starts.
 */
function checkedZeros(spec: InitializerSpec, field: string): Initializer {
  const { className } = initializerClass(spec);
  const zeros = tfl.initializers.zeros();
  zeros.apply = (shape: number[], dtype?: tf.DataType) => {
    if (className === "Identity" && (shape.length !== 2 || shape[0] !== shape[1])) {
      throw new ModelBuildError(field, `identity needs a square 2-D weight, and this one has shape [${shape}]`);
    }
    if (className === "Orthogonal" && shape.length < 2) throw new ModelBuildError(field, `orthogonal needs a weight of 2 or more dimensions, not [${shape}]`);
    return tf.zeros(shape, dtype);
  };
  return zeros;
}

// tfjs-layers' Orthogonal calls chained tensor methods (`r.flatten()`), which exist only when
// the @tensorflow/tfjs umbrella package registers them; we use tfjs-core directly. The same
// algorithm with plain ops (QR of a seeded Gaussian matrix, signs fixed by R's diagonal), and
// without its console warning about large matrices.
const orthogonalPrototype = Object.getPrototypeOf(tfl.initializers.orthogonal({})) as { apply(shape: number[], dtype?: tf.DataType): tf.Tensor };
orthogonalPrototype.apply = function (this: { gain: number; seed?: number }, shape: number[]) {
  if (shape.length < 2) throw new Error("Shape must be at least 2D.");
  return tf.tidy(() => {
    const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const columns = shape[shape.length - 1] as number;
    const n = Math.min(rows, columns);
    const [q, r] = tf.linalg.qr(tf.randomNormal([Math.max(rows, columns), n], 0, 1, "float32", this.seed)) as [tf.Tensor2D, tf.Tensor2D];
    const diagonal = tf.stridedSlice(tf.reshape(r, [-1]), [0], [n * n], [n + 1]);
    const orthogonal = tf.mul(q, tf.sign(diagonal));
    return tf.mul(tf.scalar(this.gain), tf.reshape(rows < columns ? tf.transpose(orthogonal) : orthogonal, shape));
  });
};

// ---------------------------------------------------------------------------------------------
// Dropout

/**
 * Dropout with a mask that is reproducible but new at every training call. tfjs's Dropout with a
 * seed draws the same mask at every step (the seed restarts the generator), and without one
 * it is not reproducible. Serializes as a plain tfjs Dropout.
 */
class SeededDropout extends tfl.layers.Layer {
  static className = "GradguardSeededDropout";
  private readonly rate: number;
  private readonly seed: number;
  /** Keras's noise_shape: null entries take the input's size (a topology may set it). */
  private readonly noiseShape: (number | null)[] | undefined;
  /** Training calls so far: the mask of call n is drawn with seed + n. */
  calls = 0;

  constructor(args: { rate: number; seed?: number; noiseShape?: (number | null)[]; name?: string; trainable?: boolean; batchInputShape?: number[] }) {
    super(args);
    this.rate = args.rate;
    this.seed = args.seed || 1;
    this.noiseShape = args.noiseShape ?? undefined;
    this.supportsMasking = true;
  }

  override getClassName(): string {
    return "Dropout";
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor {
    const input = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor;
    if (kwargs.training !== true || this.rate === 0) return input;
    this.calls += 1;
    const noiseShape = this.noiseShape?.map((size, axis) => size ?? (input.shape[axis] as number));
    return tf.dropout(input, this.rate, noiseShape, this.seed + this.calls);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), rate: this.rate, seed: this.seed, ...(this.noiseShape ? { noiseShape: this.noiseShape } : {}) };
  }
}
tf.serialization.registerClass(SeededDropout);

/**
 * The dropout layers' call counters, by layer name: training state, like the optimizer's. A run
 * resumed from a checkpoint draws the masks an uninterrupted run would only if it restores them.
 */
export function dropoutCounters(model: tfl.LayersModel): Record<string, number> {
  return Object.fromEntries(model.layers.filter((layer) => layer instanceof SeededDropout).map((layer) => [layer.name, (layer as SeededDropout).calls]));
}

export function restoreDropoutCounters(model: tfl.LayersModel, counters: Record<string, number>): void {
  for (const layer of model.layers) if (layer instanceof SeededDropout) layer.calls = counters[layer.name] ?? 0;
}

// ---------------------------------------------------------------------------------------------
// Layer lists

interface AssembleOptions {
  seed: number;
  /** Zero weights that check the shapes their real initializer needs (see checkedZeros). */
  checkOnly: boolean;
  /** Replaces the first layer's inputShape. */
  inputShape?: number[];
  maxParameters?: number;
}

interface Assembled {
  model: tfl.LayersModel;
  /** Layers with trainable weights, in model order. */
  reported: tfl.layers.Layer[];
  /** The (prepared) topology the model came from, if it did. */
  topology?: TopologySpec;
}

function assemble(model: ModelSpec, options: AssembleOptions): Assembled {
  if (model.topology) return assembleTopology(model.topology, options);
  if (!model.layers) throw new ModelBuildError("/model", "needs `layers` or `topology`");
  return new LayerListBuilder(options).build(model.layers);
}

class LayerListBuilder {
  private readonly reported: tfl.layers.Layer[] = [];
  private parameters = 0;

  constructor(private readonly options: AssembleOptions) {}

  build(layers: LayerSpec[]): Assembled {
    const inputShape = this.options.inputShape ?? layers[0]?.inputShape;
    if (!inputShape) throw new ModelBuildError("/model/layers/0/inputShape", "is required on the first layer");
    const input = tfl.input({ shape: inputShape, name: "input" });
    let x = input;
    layers.forEach((layer, index) => {
      const field = `/model/layers/${index}`;
      const name = layer.name ?? `${layer.type}_${index}`;
      x = layer.type === "residual" ? this.residual(layer, name, index, x, field) : this.plain(layer, name, index, x, field);
    });
    return { model: tfl.model({ inputs: input, outputs: x, name: "model" }), reported: this.reported };
  }

  /**
   * output = input + f(input). The block's layers are named `<block>/<name>`; when f changes the
   * shape, the input first goes through `<block>/projection`, linear and without bias: a 1×1
   * convolution for images (strided when f shrinks rows and columns), dense on the last axis
   * otherwise. The sum is the weightless `<block>/add`.
   */
  private residual(block: ResidualLayerSpec, name: string, index: number, x: tfl.SymbolicTensor, field: string): tfl.SymbolicTensor {
    let h = x;
    block.layers.forEach((inner, j) => {
      h = this.plain(inner, `${name}/${inner.name ?? `${inner.type}_${j}`}`, innerSeedIndex(index, j), h, `${field}/layers/${j}`);
    });
    const from = x.shape.slice(1) as number[];
    const to = h.shape.slice(1) as number[];
    let shortcut = x;
    if (from.join(",") !== to.join(",")) {
      const kernelInitializer = this.initializer("glorotUniform", `${field}/layers`, weightSeed(this.options.seed, index, SLOT.projection));
      const projection =
        from.length === 3 && to.length === 3
          ? tfl.layers.conv2d({
              name: `${name}/projection`,
              filters: to[2] as number,
              kernelSize: 1,
              strides: [stride(from[0], to[0]), stride(from[1], to[1])].map((s) => s ?? this.cannotProject(field, from, to)),
              useBias: false,
              kernelInitializer,
            })
          : from.length === to.length && from.slice(0, -1).join(",") === to.slice(0, -1).join(",")
            ? tfl.layers.dense({ name: `${name}/projection`, units: to[to.length - 1] as number, useBias: false, kernelInitializer })
            : this.cannotProject(field, from, to);
      shortcut = this.apply(projection, x, `${field}/layers`);
    }
    return this.apply(tfl.layers.add({ name: `${name}/add` }), [shortcut, h], field);
  }

  private cannotProject(field: string, from: number[], to: number[]): never {
    throw new ModelBuildError(
      `${field}/layers`,
      `change the shape from [${from}] to [${to}]; a residual block may change only the last dimension, and for images shrink rows and columns by a whole factor`,
    );
  }

  private plain(layer: PlainLayerSpec, name: string, seedIndex: number, x: tfl.SymbolicTensor, field: string): tfl.SymbolicTensor {
    // tfjs checks a reshape's size only once the batch size is known, that is, when it runs.
    const size = (shape: readonly (number | null)[]) => shape.reduce<number>((a, b) => a * (b ?? 1), 1);
    if (layer.type === "reshape" && size(layer.targetShape) !== size(x.shape.slice(1))) {
      throw new ModelBuildError(
        `${field}/targetShape`,
        `must hold as many numbers as its input of shape [${x.shape.slice(1)}] (${size(x.shape.slice(1))}), not ${size(layer.targetShape)}`,
      );
    }
    return this.apply(this.make(layer, name, seedIndex, field), x, field, blamedFields(layer));
  }

  /**
   * Applies a layer to the graph and counts its weights. When tfjs refuses the input, or the
   * output would be empty, the error names `field` plus the key the spec layer blames for it.
   */
  private apply(
    layer: tfl.layers.Layer,
    input: tfl.SymbolicTensor | tfl.SymbolicTensor[],
    field: string,
    blame: { refused?: string; empty?: string } = {},
  ): tfl.SymbolicTensor {
    const inputShapes = (Array.isArray(input) ? input : [input]).map((t) => `[${t.shape.slice(1)}]`).join(" and ");
    let output: tfl.SymbolicTensor;
    try {
      output = layer.apply(input) as tfl.SymbolicTensor;
    } catch (error) {
      if (error instanceof ModelBuildError) throw error;
      throw new ModelBuildError(`${field}${blame.refused ?? ""}`, `cannot take an input of shape ${inputShapes}: ${firstLine(error)}`);
    }
    const shape = output.shape.slice(1);
    if (shape.some((d) => d !== null && d < 1)) {
      throw new ModelBuildError(`${field}${blame.empty ?? ""}`, `is too large for an input of shape ${inputShapes}: the output would be [${shape}]`);
    }
    this.parameters += layer.countParams();
    const { maxParameters } = this.options;
    if (maxParameters !== undefined && this.parameters > maxParameters) {
      throw new ModelBuildError(field, `brings the model to ${this.parameters} parameters, more than the ${maxParameters} allowed`);
    }
    if (layer.trainableWeights.length > 0) this.reported.push(layer);
    return output;
  }

  private initializer(spec: InitializerSpec, field: string, seed: number): Initializer {
    return this.options.checkOnly ? checkedZeros(spec, field) : makeInitializer(spec, seed);
  }

  /** The tfjs layer for a spec layer. Defaults repeat the schema's, for specs built without withDefaults. */
  private make(layer: PlainLayerSpec, name: string, seedIndex: number, field: string): tfl.layers.Layer {
    const jobSeed = this.options.seed;
    const init = (key: string, spec: InitializerSpec | undefined, fallback: InitializerName, slot: number) =>
      this.initializer(spec ?? fallback, `${field}/${key}`, weightSeed(jobSeed, seedIndex, slot));
    // Weights the spec cannot set (normalization scales and statistics) still go through
    // checkedZeros in a check, so that a check never runs a real initializer.
    const fixed = (key: string, name: InitializerName) => (this.options.checkOnly ? checkedZeros(name, `${field}/${key}`) : name);
    const kernel = (spec: { kernelInitializer?: InitializerSpec; biasInitializer?: InitializerSpec; useBias?: boolean }) => ({
      useBias: spec.useBias ?? true,
      kernelInitializer: init("kernelInitializer", spec.kernelInitializer, "glorotUniform", SLOT.kernel),
      biasInitializer: init("biasInitializer", spec.biasInitializer, "zeros", SLOT.bias),
    });
    switch (layer.type) {
      case "dense":
        return tfl.layers.dense({ name, units: layer.units, activation: activation(layer.activation ?? "linear"), ...kernel(layer) });
      case "conv1d":
        return tfl.layers.conv1d({
          name,
          filters: layer.filters,
          kernelSize: layer.kernelSize,
          strides: layer.strides ?? 1,
          padding: layer.padding ?? "valid",
          dilationRate: layer.dilationRate ?? 1,
          activation: activation(layer.activation ?? "linear"),
          ...kernel(layer),
        });
      case "conv2d":
        return tfl.layers.conv2d({
          name,
          filters: layer.filters,
          kernelSize: layer.kernelSize,
          strides: layer.strides ?? 1,
          padding: (layer.padding ?? "valid") as "valid",
          activation: activation(layer.activation ?? "linear"),
          ...kernel(layer),
        });
      case "maxPooling1d":
        return tfl.layers.maxPooling1d({ name, poolSize: layer.poolSize ?? 2, strides: layer.strides, padding: (layer.padding ?? "valid") as "valid" });
      case "maxPooling2d":
        return tfl.layers.maxPooling2d({ name, poolSize: layer.poolSize ?? 2, strides: layer.strides, padding: (layer.padding ?? "valid") as "valid" });
      case "flatten":
        return tfl.layers.flatten({ name });
      case "reshape":
        return tfl.layers.reshape({ name, targetShape: layer.targetShape });
      case "dropout":
        return new SeededDropout({ name, rate: layer.rate, seed: weightSeed(jobSeed, seedIndex, SLOT.dropout) });
      case "batchNormalization":
        return tfl.layers.batchNormalization({
          name,
          momentum: layer.momentum ?? 0.99,
          epsilon: layer.epsilon ?? 0.001,
          center: layer.center ?? true,
          scale: layer.scale ?? true,
          betaInitializer: fixed("beta", "zeros"),
          gammaInitializer: fixed("gamma", "ones"),
          movingMeanInitializer: fixed("movingMean", "zeros"),
          movingVarianceInitializer: fixed("movingVariance", "ones"),
        });
      case "layerNormalization":
        return tfl.layers.layerNormalization({
          name,
          epsilon: layer.epsilon ?? 0.001,
          center: layer.center ?? true,
          scale: layer.scale ?? true,
          betaInitializer: fixed("beta", "zeros"),
          gammaInitializer: fixed("gamma", "ones"),
        });
      case "embedding":
        return tfl.layers.embedding({
          name,
          inputDim: layer.inputDim,
          outputDim: layer.outputDim,
          embeddingsInitializer: init("embeddingsInitializer", layer.embeddingsInitializer, "randomUniform", SLOT.kernel),
        });
      case "simpleRNN":
      case "lstm":
      case "gru": {
        const common = {
          name,
          units: layer.units,
          activation: activation(layer.activation ?? "tanh"),
          returnSequences: layer.returnSequences ?? false,
          recurrentInitializer: init("recurrentInitializer", layer.recurrentInitializer, "orthogonal", SLOT.recurrent),
          ...kernel(layer),
        };
        if (layer.type === "simpleRNN") return tfl.layers.simpleRNN(common);
        const recurrentActivation = activation(layer.recurrentActivation ?? "hardSigmoid");
        if (layer.type === "gru") return tfl.layers.gru({ ...common, recurrentActivation });
        return tfl.layers.lstm({ ...common, recurrentActivation, unitForgetBias: layer.unitForgetBias ?? true });
      }
      case "activation":
        return tfl.layers.activation({ name, activation: activation(layer.activation) });
    }
  }
}

type ActivationIdentifier = NonNullable<Parameters<typeof tfl.layers.activation>[0]>["activation"];

function activation(name: Activation): ActivationIdentifier {
  return name as ActivationIdentifier;
}

/** The field of a spec layer to name when tfjs refuses its input, or when its window is larger than the input. */
function blamedFields(layer: PlainLayerSpec): { refused?: string; empty?: string } {
  switch (layer.type) {
    case "conv1d":
    case "conv2d":
      return { empty: "/kernelSize" };
    case "maxPooling1d":
    case "maxPooling2d":
      return { empty: "/poolSize" };
    case "reshape":
      return { refused: "/targetShape" };
    default:
      return {};
  }
}

/** The stride s of a 1×1 "valid" convolution that takes `from` to `to` (ceil(from / s) = to), if any. */
function stride(from: number | undefined, to: number | undefined): number | undefined {
  if (from === undefined || to === undefined || to > from) return undefined;
  for (let s = 1; s <= from; s++) if (Math.ceil(from / s) === to) return s;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Topologies

/** Layer classes a topology may use. Anything else (Lambda, custom classes, wrappers) is refused. */
export const TOPOLOGY_LAYER_CLASSES = [
  "InputLayer",
  "Dense",
  "Conv1D",
  "Conv2D",
  "MaxPooling1D",
  "MaxPooling2D",
  "AveragePooling1D",
  "AveragePooling2D",
  "GlobalAveragePooling1D",
  "GlobalAveragePooling2D",
  "GlobalMaxPooling1D",
  "GlobalMaxPooling2D",
  "Flatten",
  "Reshape",
  "Dropout",
  "BatchNormalization",
  "LayerNormalization",
  "Embedding",
  "SimpleRNN",
  "LSTM",
  "GRU",
  "Activation",
  "Add",
  "Concatenate",
] as const;
/** Classes a topology layer's config may nest: initializers, and regularizers and constraints (which the trainer does not apply). */
export const TOPOLOGY_NESTED_CLASSES: readonly string[] = [...INITIALIZER_CLASS_NAMES, "L1L2", "MaxNorm", "UnitNorm", "NonNeg", "MinMaxNorm"];

/**
 * Loads a topology through tfjs's own deserialization, after refusing any class outside the
 * allow-lists and rewriting what tfjs would leave to chance: every random initializer gets a
 * seed from the job seed and the layer's position (zeros in a check), and Dropout becomes
 * SeededDropout. tfjs's public loader (models.modelFromJSON) is async; this is the
 * synchronous core of it.
 */
function assembleTopology(topology: TopologySpec, options: AssembleOptions): Assembled {
  const prepared = prepareTopology(topology, options);
  const config = pythonicToTs(prepared) as { className: string; config: tf.serialization.ConfigDict };
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[config.className];
  if (!entry) throw new ModelBuildError("/model/topology/class_name", `"${topology.class_name}" is not a model class tfjs knows`);
  const [cls, fromConfig] = entry;
  let model: tfl.LayersModel;
  try {
    model = fromConfig(cls, config.config) as unknown as tfl.LayersModel;
  } catch (error) {
    if (error instanceof ModelBuildError) throw error;
    throw new ModelBuildError("/model/topology", `cannot be built: ${firstLine(error)}`);
  }
  if (model.inputs?.length !== 1 || model.outputs.length !== 1) {
    throw new ModelBuildError(
      "/model/topology",
      "must have exactly one input and one output, with the input's shape declared (batch_input_shape on the first layer, or an InputLayer)",
    );
  }
  const { maxParameters } = options;
  const parameters = model.countParams();
  if (maxParameters !== undefined && parameters > maxParameters) {
    throw new ModelBuildError("/model/topology", `has ${parameters} parameters, more than the ${maxParameters} allowed`);
  }
  return { model, reported: model.layers.filter((layer) => layer.trainableWeights.length > 0), topology: prepared };
}

function prepareTopology(topology: TopologySpec, options: AssembleOptions): TopologySpec {
  const prepared = structuredClone(topology);
  prepared.config.layers.forEach((layer, index) => {
    const field = `/model/topology/config/layers/${index}`;
    if (!(TOPOLOGY_LAYER_CLASSES as readonly string[]).includes(layer.class_name)) {
      throw new ModelBuildError(`${field}/class_name`, `"${layer.class_name}" is not an allowed layer class`);
    }
    refuseUnknownClasses(layer.config, `${field}/config`);
    for (const [key, value] of Object.entries(layer.config)) {
      if (!key.endsWith("_initializer") || value === null) continue;
      layer.config[key] = seededInitializer(value, `${field}/config/${key}`, options, weightSeed(options.seed, index, slotOf(key))) as typeof value;
    }
    if (layer.class_name === "Dropout") {
      layer.class_name = SeededDropout.className as typeof layer.class_name;
      layer.config.seed = weightSeed(options.seed, index, SLOT.dropout);
    }
  });
  return prepared;
}

function slotOf(initializerKey: string): number {
  if (initializerKey.startsWith("recurrent")) return SLOT.recurrent;
  if (initializerKey.startsWith("bias")) return SLOT.bias;
  return SLOT.kernel;
}

/** Any nested `{ class_name }` must be an allowed initializer, regularizer or constraint. */
function refuseUnknownClasses(value: unknown, field: string): void {
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      refuseUnknownClasses(item, `${field}/${i}`);
    });
  } else if (typeof value === "object" && value !== null) {
    const record = value as Record<string, unknown>;
    if ("class_name" in record && !TOPOLOGY_NESTED_CLASSES.includes(record.class_name as string)) {
      throw new ModelBuildError(`${field}/class_name`, `"${String(record.class_name)}" is not an allowed class here`);
    }
    for (const [key, item] of Object.entries(record)) refuseUnknownClasses(item, `${field}/${key}`);
  }
}

/** An initializer in Keras form (`"glorot_uniform"` or `{ class_name, config }`), seeded, or zeros for a check. */
function seededInitializer(value: unknown, field: string, options: AssembleOptions, seed: number): unknown {
  const className =
    typeof value === "string" ? initializerClass(toCamelCase(value) as InitializerName).className : (value as { class_name?: string }).class_name;
  if (typeof className !== "string" || !(INITIALIZER_CLASS_NAMES as string[]).includes(className)) {
    throw new ModelBuildError(field, `is not an allowed initializer`);
  }
  if (options.checkOnly) return { class_name: "Zeros", config: {} };
  const config = typeof value === "string" ? {} : { ...((value as { config?: object }).config ?? {}) };
  return { class_name: className, config: SEEDED_INITIALIZERS.has(className) ? { ...config, seed } : config };
}

/** The output layer's activation, if its config has one, and the topology field that sets it. */
function outputActivation(model: tfl.LayersModel, topology: TopologySpec): { field: string; value: string } | undefined {
  const output = model.layers[model.layers.length - 1];
  const value = output?.getConfig().activation;
  if (!output || typeof value !== "string") return undefined;
  const index = topology.config.layers.findIndex((layer) => (layer.config.name ?? layer.name) === output.name);
  return { field: `/model/topology/config/layers/${index}/config/activation`, value };
}

/**
 * Keras's snake_case JSON to the camelCase config tfjs's classes take: keys and string values
 * are camel-cased, except names (a `name`, and the layer names that open inbound_nodes,
 * input_layers and output_layers entries). A copy of tfjs-layers' convertPythonicToTs, which
 * its package does not export.
 */
function pythonicToTs(value: unknown, key?: string): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return toCamelCase(value);
  if (typeof value === "number" || typeof value === "boolean") return value;
  if (Array.isArray(value)) {
    return value.map((item, i) =>
      (key === "inboundNodes" || key === "outputLayers" || key === "inputLayers") && i === 0 && typeof item === "string" ? item : pythonicToTs(item, key),
    );
  }
  const converted: Record<string, unknown> = {};
  for (const [pythonicKey, item] of Object.entries(value as Record<string, unknown>)) {
    if (pythonicKey === "name" && typeof item === "string") {
      converted[pythonicKey] = item;
    } else {
      const tsKey = toCamelCase(pythonicKey);
      converted[tsKey] = pythonicToTs(item, tsKey);
    }
  }
  return converted;
}

function toCamelCase(identifier: string): string {
  if (identifier.length <= 1 || !identifier.includes("_")) return identifier;
  return identifier.replace(/[_]+(\w|$)/g, (_, letter: string) => letter.toUpperCase());
}

// ---------------------------------------------------------------------------------------------
// Backend and memory

/**
 * Runs `fn` on the cpu backend, then puts the previous backend back. Checks run here whatever
 * the trainer uses: cpu needs no initialisation (so the switch is synchronous; tfjs's own
 * `engine.backend` relies on the same), and its zeros are lazily allocated. When no backend
 * was chosen yet, cpu stays chosen; resolveBackend sets the real one explicitly.
 */
function onCpuBackend<T>(fn: () => T): T {
  const previous = tf.getBackend() as string | undefined;
  if (previous === "cpu") return fn();
  void tf.setBackend("cpu");
  // The cpu backend greets its first use in Node with advice to install tfjs-node, on stderr;
  // here it is not what trains, so the advice does not apply.
  (tf.findBackend("cpu") as unknown as { firstUse: boolean }).firstUse = false;
  try {
    return fn();
  } finally {
    if (previous) void tf.setBackend(previous);
  }
}

/** Frees the variables created by a build that failed half-way. */
function disposingOnError<T>(fn: () => T): T {
  const before = new Set(Object.keys(tf.engine().state.registeredVariables));
  try {
    return fn();
  } catch (error) {
    const registered = tf.engine().state.registeredVariables;
    for (const name of Object.keys(registered)) if (!before.has(name)) registered[name]?.dispose();
    throw error;
  }
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
}
