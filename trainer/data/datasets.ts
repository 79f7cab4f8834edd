// Deterministic dataset generators. A dataset is plain typed arrays (row-major), so it can be
// built, checked and batched without tfjs; the training loop turns batches into tensors.
import Value from "typebox/value";
import { createRandom, permutation } from "../random.ts";
import type { SpecProblem } from "../spec.ts";
import { type DataSpec, DataSchema, MAX_DATASET_FLOATS } from "./spec.ts";

export interface DatasetShape {
  /** Shape of one example's input, e.g. [2] for points or [50, 2] for sequences. */
  featureShape: number[];
  /** Shape of one example's target, e.g. [3] for one-hot over three classes. */
  targetShape: number[];
}

export interface Dataset extends DatasetShape {
  /** Inputs, example after example (row-major over featureShape). */
  x: Float32Array;
  /** Targets, example after example (row-major over targetShape). */
  y: Float32Array;
  examples: number;
}

/** A data spec with every default filled in (withDefaults does this for a whole job spec). */
type FilledDataSpec = { [K in DataSpec["kind"]]: Required<Extract<DataSpec, { kind: K }>> }[DataSpec["kind"]];

function filled(spec: DataSpec): FilledDataSpec {
  return Value.Default(DataSchema, Value.Clone(spec)) as FilledDataSpec;
}

/** The shapes a data spec produces, known without generating it. */
export function datasetShape(spec: DataSpec): DatasetShape {
  const data = filled(spec);
  switch (data.kind) {
    case "spirals":
      return { featureShape: [2], targetShape: [data.classes] };
    case "blobs":
      return { featureShape: [data.features], targetShape: [data.classes] };
    case "sine":
      return { featureShape: [data.seqLen, 1], targetShape: [1] };
    case "adding":
      return { featureShape: [data.seqLen, 2], targetShape: [1] };
    case "parity":
      return { featureShape: [data.bits], targetShape: [2] };
    case "csv":
      return { featureShape: [data.features], targetShape: [data.targets] };
  }
}

/** Examples in the data: a generator's `size`, or an upload's row count (filled in at submission). */
export function dataSize(spec: DataSpec): number {
  return spec.size ?? 0;
}

/** The size rule a schema cannot say: all examples together stay under MAX_DATASET_FLOATS. */
export function checkDataSpec(spec: DataSpec): SpecProblem[] {
  if (spec.kind === "csv" && (spec.size === undefined || spec.features === undefined || spec.targets === undefined)) {
    return [{ field: "/data/datasetId", message: "names no uploaded dataset (POST /api/v1/datasets to upload one)" }];
  }
  const { featureShape, targetShape } = datasetShape(spec);
  const perExample = product(featureShape) + product(targetShape);
  if (dataSize(spec) * perExample <= MAX_DATASET_FLOATS) return [];
  return [
    {
      field: "/data/size",
      message: `must be at most ${Math.floor(MAX_DATASET_FLOATS / perExample)} for this ${spec.kind} data: each example holds ${perExample} numbers, and a dataset may hold ${MAX_DATASET_FLOATS} in all`,
    },
  ];
}

export function makeDataset(spec: DataSpec): Dataset {
  const problem = checkDataSpec(spec)[0];
  if (problem) throw new RangeError(`data${problem.field.slice("/data".length)} ${problem.message}`);
  const data = filled(spec);
  switch (data.kind) {
    case "spirals":
      return spirals(data.size, data.classes, data.noise, data.seed);
    case "blobs":
      return blobs(data);
    case "sine":
      return sine(data);
    case "adding":
      return adding(data);
    case "parity":
      return parity(data);
    case "csv":
      throw new Error("an uploaded dataset is loaded from the database by the job process, not generated");
  }
}

/**
 * Splits off the last `validationFraction` of a seeded permutation of the examples as
 * validation data (copies, not views); the first ⌊examples × (1 − validationFraction)⌋ train. A permutation rather than simply the last examples
 * because spirals are generated from the centre outwards, so the last ones are all outer
 * points. Sine windows overlap by design, so a validation window shares values with the
 * training windows next to it: fine for watching gradients, not for measuring generalisation.
 */
export function splitDataset(dataset: Dataset, validationFraction: number, seed = 0): { train: Dataset; validation: Dataset } {
  if (!(validationFraction >= 0 && validationFraction < 1)) throw new RangeError(`validationFraction must be in [0, 1), got ${validationFraction}`);
  // Counted as spec.ts counts training examples (for epochs and the batch size check).
  const trainCount = Math.floor(dataset.examples * (1 - validationFraction));
  const order = permutation(dataset.examples, createRandom(seed));
  return { train: pick(dataset, order.subarray(0, trainCount)), validation: pick(dataset, order.subarray(trainCount)) };
}

function pick(dataset: Dataset, rows: Uint32Array): Dataset {
  const xSize = product(dataset.featureShape);
  const ySize = product(dataset.targetShape);
  const x = new Float32Array(rows.length * xSize);
  const y = new Float32Array(rows.length * ySize);
  rows.forEach((example, row) => {
    x.set(dataset.x.subarray(example * xSize, (example + 1) * xSize), row * xSize);
    y.set(dataset.y.subarray(example * ySize, (example + 1) * ySize), row * ySize);
  });
  return { x, y, examples: rows.length, featureShape: [...dataset.featureShape], targetShape: [...dataset.targetShape] };
}

/**
 * `classes` interleaved spiral arms in the unit disc (the classic hard-for-linear-models
 * toy problem). Example i belongs to class i mod classes, so every prefix is balanced.
 */
export function spirals(size: number, classes: number, noise: number, seed: number): Dataset {
  const random = createRandom(seed);
  const x = new Float32Array(size * 2);
  const y = new Float32Array(size * classes);
  const perClass = Math.ceil(size / classes);
  for (let i = 0; i < size; i++) {
    const cls = i % classes;
    const radius = (Math.floor(i / classes) + 1) / perClass;
    const angle = (cls * 2 * Math.PI) / classes + radius * 4 + noise * random.normal();
    x[i * 2] = radius * Math.sin(angle);
    x[i * 2 + 1] = radius * Math.cos(angle);
    y[i * classes + cls] = 1;
  }
  return { x, y, examples: size, featureShape: [2], targetShape: [classes] };
}

/**
 * Gaussian clusters: `classes` centres drawn uniformly from [-1, 1]^features, points at each
 * centre plus N(0, spread²) noise per dimension. Example i belongs to class i mod classes.
 */
export function blobs(spec: { size: number; classes: number; features: number; spread: number; seed: number }): Dataset {
  const { size, classes, features, spread } = spec;
  const random = createRandom(spec.seed);
  const centres = Float32Array.from({ length: classes * features }, () => 2 * random.next() - 1);
  const x = new Float32Array(size * features);
  const y = new Float32Array(size * classes);
  for (let i = 0; i < size; i++) {
    const cls = i % classes;
    for (let f = 0; f < features; f++) x[i * features + f] = (centres[cls * features + f] as number) + spread * random.normal();
    y[i * classes + cls] = 1;
  }
  return { x, y, examples: size, featureShape: [features], targetShape: [classes] };
}

/**
 * Sequence regression on one noisy sine wave s(t) = sin(2πt / period + phase) + noise·N(0, 1),
 * phase drawn from the seed: example i is the window s(i) … s(i + seqLen − 1) and its target is
 * the next value s(i + seqLen). Consecutive examples are windows one step apart.
 */
export function sine(spec: { size: number; seqLen: number; period: number; noise: number; seed: number }): Dataset {
  const { size, seqLen, period, noise } = spec;
  const random = createRandom(spec.seed);
  const phase = 2 * Math.PI * random.next();
  const series = Float32Array.from({ length: size + seqLen }, (_, t) => Math.sin((2 * Math.PI * t) / period + phase) + noise * random.normal());
  const x = new Float32Array(size * seqLen);
  for (let i = 0; i < size; i++) x.set(series.subarray(i, i + seqLen), i * seqLen);
  const y = series.slice(seqLen, seqLen + size);
  return { x, y, examples: size, featureShape: [seqLen, 1], targetShape: [1] };
}

/**
 * The adding problem: a sequence of T (value, marker) pairs, values from U[0, 1], markers 0
 * except at two steps, one in the first half (t < ⌊T/2⌋) and one in the second, as in
 * Hochreiter & Schmidhuber (1997) and Pascanu, Mikolov & Bengio (2013). The target is the sum
 * of the two marked values: a model must carry them across up to T steps. Always guessing 1
 * scores an MSE of about 1/6, the baseline to beat.
 */
export function adding(spec: { size: number; seqLen: number; seed: number }): Dataset {
  const { size, seqLen } = spec;
  const random = createRandom(spec.seed);
  const half = Math.floor(seqLen / 2);
  const x = new Float32Array(size * seqLen * 2);
  const y = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    const offset = i * seqLen * 2;
    for (let t = 0; t < seqLen; t++) x[offset + t * 2] = random.next();
    const first = random.int(half);
    const second = half + random.int(seqLen - half);
    x[offset + first * 2 + 1] = 1;
    x[offset + second * 2 + 1] = 1;
    y[i] = (x[offset + first * 2] as number) + (x[offset + second * 2] as number);
  }
  return { x, y, examples: size, featureShape: [seqLen, 2], targetShape: [1] };
}

/**
 * Parity (deep XOR): `bits` random bits (0 or 1) and a one-hot target [even, odd] of their XOR.
 * Every bit matters, so a network must combine all of them: hard for deep plain MLPs. The bits
 * are also valid token ids for an embedding with inputDim ≥ 2.
 */
export function parity(spec: { size: number; bits: number; seed: number }): Dataset {
  const { size, bits } = spec;
  const random = createRandom(spec.seed);
  const x = new Float32Array(size * bits);
  const y = new Float32Array(size * 2);
  for (let i = 0; i < size; i++) {
    let odd = 0;
    for (let b = 0; b < bits; b++) {
      const bit = random.next() < 0.5 ? 0 : 1;
      x[i * bits + b] = bit;
      odd ^= bit;
    }
    y[i * 2 + odd] = 1;
  }
  return { x, y, examples: size, featureShape: [bits], targetShape: [2] };
}

function product(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
