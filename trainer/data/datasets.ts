// Deterministic dataset generators. A dataset is plain typed arrays (row-major), so it can be
// built, checked and batched without tfjs; the training loop turns batches into tensors.
import { createRandom } from "../random.ts";
import type { DataSpec } from "./spec.ts";

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

/** The shapes a data spec produces, known without generating it. */
export function datasetShape(spec: DataSpec): DatasetShape {
  switch (spec.kind) {
    case "spirals":
      return { featureShape: [2], targetShape: [spec.classes ?? 2] };
  }
}

export function makeDataset(spec: DataSpec & { seed: number }): Dataset {
  switch (spec.kind) {
    case "spirals":
      return spirals(spec.size, spec.classes ?? 2, spec.noise ?? 0.1, spec.seed);
  }
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
