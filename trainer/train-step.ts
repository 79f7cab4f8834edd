// One training step, split where the watchdog sits: measure (loss, global and per-layer
// gradient norms, weight norm — all in ONE device→host read, or none where tensors lie in host
// memory), then apply what was decided (clip, skip, learning rate).
// Nothing here knows about databases, sockets or jobs.
import * as tf from "@tensorflow/tfjs-core";
import type * as tfl from "@tensorflow/tfjs-layers";
import { setLearningRate, updateDirectionSquares } from "./optimizer.ts";
import { sumsOfSquares, sumsOfSquaresOnHost } from "./sum-of-squares.ts";

export type LossFunction = (labels: tf.Tensor, predictions: tf.Tensor) => tf.Scalar;

export interface StepContext {
  model: tfl.LayersModel;
  optimizer: tf.Optimizer;
  loss: LossFunction;
  /** Trainable variables grouped by layer, in Job.layerNames order. */
  layerVariables: tf.Variable[][];
}

export interface Batch {
  x: tf.Tensor;
  y: tf.Tensor;
}

export interface GradientMeasurement {
  loss: number;
  /** Global L2 norm over every gradient. */
  gradNorm: number;
  /** L2 norm of each layer's gradients. */
  layerNorms: number[];
  /** Global L2 norm of the trainable weights (before the update). */
  weightNorm: number;
  /**
   * L2 norm of the update the optimizer would make, per unit of learning rate (‖Δw‖/lr): the
   * gradient norm for SGD; for momentum and the adaptive optimizers, what their state makes of it.
   */
  updateNorm: number;
  /** The loss or some gradient is NaN or infinite. */
  nonFinite: boolean;
}

export interface MeasuredGradients {
  measurement: GradientMeasurement;
  grads: tf.NamedTensorMap;
}

export const LOSSES: Record<"softmaxCrossEntropy" | "meanSquaredError", LossFunction> = {
  softmaxCrossEntropy: (labels, logits) => tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar,
  meanSquaredError: (labels, predictions) => tf.losses.meanSquaredError(labels, predictions) as tf.Scalar,
};

/**
 * Forward, backward and the norms. `gradFactor` scales the gradients before they are measured
 * (the gradScale fault). `knownWeightNorm` skips measuring the weights when the caller knows
 * their norm (it changes by the update ratio per step, 1e-3 in healthy training). The caller
 * owns the returned gradients: pass them to applyUpdate.
 */
export function measureGradients(context: StepContext, batch: Batch, gradFactor = 1, knownWeightNorm?: number): MeasuredGradients {
  const variables = context.layerVariables.flat();
  const { value, grads: raw } = tf.variableGrads(
    () => context.loss(batch.y, context.model.apply(batch.x, { training: true }) as tf.Tensor),
    variables,
  );
  let grads = raw;
  if (gradFactor !== 1) {
    grads = tf.tidy(() => Object.fromEntries(Object.entries(raw).map(([name, grad]) => [name, tf.mul(grad, gradFactor)])));
    tf.dispose(Object.values(raw));
  }
  // The loss, then per variable its squared gradient norm, its squared weight norm (when
  // measured) and its squared update norm (not for SGD), in one array.
  const measureWeights = knownWeightNorm === undefined;
  const gradients = variables.map((variable) => grads[variable.name] as tf.Tensor);
  const update = updateDirectionSquares(context.optimizer, grads);
  const hasUpdate = update !== null;
  let values: ArrayLike<number>;
  const gradSums = sumsOfSquaresOnHost(gradients);
  if (gradSums) {
    // Host memory (wasm): summed in place, so reading each part costs nothing.
    const all = new Float64Array(1 + variables.length * (1 + Number(measureWeights) + Number(hasUpdate)));
    all[0] = value.dataSync()[0] as number;
    all.set(gradSums, 1);
    if (measureWeights) all.set(sumsOfSquaresOnHost(variables) as Float64Array, 1 + variables.length);
    if (update) all.set(update.dataSync(), all.length - variables.length);
    values = all;
  } else {
    // A device: one tensor, one read. Summing into layers and totals on the host saves a
    // kernel each, and parts that are absent take no placeholder tensor.
    const readout = tf.tidy(() => {
      const parts = [tf.reshape(value, [1]), sumsOfSquares(gradients)];
      if (measureWeights) parts.push(sumsOfSquares(variables));
      if (update) parts.push(update);
      return tf.concat(parts);
    });
    values = readout.dataSync() as Float32Array;
    readout.dispose();
  }
  tf.dispose(update ? [value, update] : [value]);

  const loss = values[0] as number;
  const sumOf = (from: number) => {
    let sum = 0;
    for (let i = from; i < from + variables.length; i++) sum += values[i] as number;
    return sum;
  };
  let gradSquared = 0;
  const layerNorms: number[] = [];
  let next = 1;
  for (const layer of context.layerVariables) {
    let squared = 0;
    for (let i = 0; i < layer.length; i++) squared += values[next++] as number;
    gradSquared += squared;
    layerNorms.push(Math.sqrt(squared));
  }
  const gradNorm = Math.sqrt(gradSquared);
  const weightNorm = knownWeightNorm ?? Math.sqrt(sumOf(1 + variables.length));
  const updateNorm = hasUpdate ? Math.sqrt(sumOf(1 + variables.length * (measureWeights ? 2 : 1))) : gradNorm;
  return {
    measurement: {
      loss,
      gradNorm,
      layerNorms,
      weightNorm,
      updateNorm,
      nonFinite: !Number.isFinite(loss) || !Number.isFinite(gradNorm),
    },
    grads,
  };
}

export interface Update {
  /** Multiply the gradients by this before applying them (1: as they are). */
  clipCoef: number;
  /** Learning rate for this update. */
  learningRate: number;
  /** Throw the gradients away instead of applying them. */
  skip: boolean;
}

/** Applies (or skips) the update, then frees the gradients. */
export function applyUpdate(context: StepContext, grads: tf.NamedTensorMap, update: Update): void {
  if (!update.skip) {
    setLearningRate(context.optimizer, update.learningRate);
    if (update.clipCoef === 1) {
      context.optimizer.applyGradients(grads);
    } else {
      const clipped = tf.tidy(() => Object.fromEntries(Object.entries(grads).map(([name, grad]) => [name, tf.mul(grad, update.clipCoef)])));
      context.optimizer.applyGradients(clipped);
      tf.dispose(Object.values(clipped));
    }
  }
  tf.dispose(Object.values(grads));
}
