// One training step, split where the watchdog sits: measure (loss, global and per-layer
// gradient norms, weight norm — all in ONE device→host read, or none where tensors lie in host
// memory), then apply what was decided (clip, skip, learning rate). On a GPU, where a read
// stalls the device, boundedStep does both with no read: the update is bounded on the device by
// the watchdog's thresholds, and readBoundedSteps reads many steps' numbers later, at once.
// Nothing here knows about databases, sockets or jobs.
import * as tf from "@tensorflow/tfjs-core";
import type * as tfl from "@tensorflow/tfjs-layers";
import { setLearningRate, updateDirectionSquares } from "./optimizer.ts";
import { sumsOfSquares, sumsOfSquaresOnHost } from "./sum-of-squares.ts";
import type { DeviceBounds } from "./watchdog/index.ts";

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
export async function measureGradients(context: StepContext, batch: Batch, gradFactor = 1, knownWeightNorm?: number): Promise<MeasuredGradients> {
  const variables = context.layerVariables.flat();
  const { value, grads } = gradientsOf(context, batch, gradFactor);
  const gradients = variables.map((variable) => grads[variable.name] as tf.Tensor);
  const update = updateDirectionSquares(context.optimizer, grads);
  const layout: ReadoutLayout = { variables: variables.length, measuredWeights: knownWeightNorm === undefined, hasUpdate: update !== null };
  let values: ArrayLike<number>;
  const gradSums = sumsOfSquaresOnHost(gradients);
  if (gradSums) {
    // Host memory (wasm): summed in place, so reading each part costs nothing.
    const all = new Float64Array(readoutLength(layout));
    all[0] = value.dataSync()[0] as number;
    all.set(gradSums, 1);
    if (layout.measuredWeights) all.set(sumsOfSquaresOnHost(variables) as Float64Array, 1 + variables.length);
    if (update) all.set(update.dataSync(), all.length - variables.length);
    values = all;
  } else {
    // A device: one tensor, one read, awaited (WebGPU in Node has no synchronous read). Summing
    // into layers and totals on the host saves a kernel each, and parts that are absent take no
    // placeholder tensor.
    const readout = tf.tidy(() => tf.concat(measurementParts(value, gradients, layout.measuredWeights ? variables : null, update)));
    values = (await readout.data()) as Float32Array;
    readout.dispose();
  }
  tf.dispose(update ? [value, update] : [value]);
  return { measurement: measurementOf(context, values, layout, knownWeightNorm), grads };
}

/** The loss and the gradients of the trainable variables, scaled by `gradFactor` (a fault). */
function gradientsOf(context: StepContext, batch: Batch, gradFactor: number): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  const { value, grads } = tf.variableGrads(
    () => context.loss(batch.y, context.model.apply(batch.x, { training: true }) as tf.Tensor),
    context.layerVariables.flat(),
  );
  if (gradFactor === 1) return { value, grads };
  const scaled = tf.tidy(() => Object.fromEntries(Object.entries(grads).map(([name, grad]) => [name, tf.mul(grad, gradFactor)])));
  tf.dispose(Object.values(grads));
  return { value, grads: scaled };
}

/**
 * Where a step's numbers lie in what is read back: the loss, then per variable its squared
 * gradient norm, its squared weight norm (when measured) and its squared update norm (not for
 * SGD); a step bounded on the device adds what it applied (APPLIED_FIELDS).
 */
export interface ReadoutLayout {
  variables: number;
  measuredWeights: boolean;
  hasUpdate: boolean;
}

const readoutLength = (layout: ReadoutLayout) => 1 + layout.variables * (1 + Number(layout.measuredWeights) + Number(layout.hasUpdate));

function measurementParts(loss: tf.Scalar, gradients: tf.Tensor[], weights: tf.Tensor[] | null, update: tf.Tensor1D | null): tf.Tensor1D[] {
  const parts = [tf.reshape(loss, [1]) as tf.Tensor1D, sumsOfSquares(gradients)];
  if (weights) parts.push(sumsOfSquares(weights));
  if (update) parts.push(update);
  return parts;
}

/** The measurement from what was read back, summed into layers and totals on the host. */
function measurementOf(context: StepContext, values: ArrayLike<number>, layout: ReadoutLayout, knownWeightNorm: number | undefined): GradientMeasurement {
  const n = layout.variables;
  const sumOf = (from: number) => {
    let sum = 0;
    for (let i = from; i < from + n; i++) sum += values[i] as number;
    return sum;
  };
  const loss = values[0] as number;
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
  const weightNorm = knownWeightNorm ?? Math.sqrt(sumOf(1 + n));
  const updateNorm = layout.hasUpdate ? Math.sqrt(sumOf(1 + n * (layout.measuredWeights ? 2 : 1))) : gradNorm;
  return { loss, gradNorm, layerNorms, weightNorm, updateNorm, nonFinite: !Number.isFinite(loss) || !Number.isFinite(gradNorm) };
}

/** What a step bounded on the device applied, read back after its measurement. */
export interface AppliedOnDevice {
  /** Factor on the gradients (1 when skipped). */
  clipCoef: number;
  /** Factor on the update, through its learning rate (1 when skipped). */
  stepScale: number;
  skipped: boolean;
}

/** clipCoef, stepScale, skipped (1 or 0). */
const APPLIED_FIELDS = 3;

/** A step bounded on the device, not read yet: `readout` is freed by readBoundedSteps. */
export interface PendingReadout {
  readout: tf.Tensor1D;
  layout: ReadoutLayout;
  knownWeightNorm: number | undefined;
}

/**
 * One whole step with no device→host read: forward, backward, the norms, and the update, bounded
 * on the device by the watchdog's thresholds (`bounds`: see watchdog/device-bounds.ts) as
 * `decide` would bound it: clipped, scaled, or skipped. `learningRate` is the rate in force (the
 * scheduled one times the watchdog's lrScale). The numbers stay on the device until
 * readBoundedSteps reads many steps' at once.
 *
 * A skipped step's gradient is zeroed (a NaN would otherwise reach the optimizer's moments), and
 * for the optimizers with state the weights are put back: their moments still decay by one step,
 * as after a zero gradient. The step scale goes through the weights, w + s·(w' − w), as the same
 * update at s times the rate; only RMSProp's momentum keeps the unscaled step.
 */
export function boundedStep(context: StepContext, batch: Batch, gradFactor: number, knownWeightNorm: number | undefined, bounds: DeviceBounds, learningRate: number): PendingReadout {
  const variables = context.layerVariables.flat();
  const { value, grads } = gradientsOf(context, batch, gradFactor);
  const gradients = variables.map((variable) => grads[variable.name] as tf.Tensor);
  const update = updateDirectionSquares(context.optimizer, grads);
  const layout: ReadoutLayout = { variables: variables.length, measuredWeights: knownWeightNorm === undefined, hasUpdate: update !== null };

  const { readout, keep, gradFactorOut, stepScale } = tf.tidy(() => {
    const parts = measurementParts(value, gradients, layout.measuredWeights ? variables : null, update);
    const [loss, gradSums, ...rest] = parts as [tf.Tensor1D, tf.Tensor1D, ...tf.Tensor1D[]];
    const g = tf.sqrt(tf.sum(gradSums));
    const w = knownWeightNorm !== undefined ? tf.scalar(knownWeightNorm) : tf.sqrt(tf.sum(rest[0] as tf.Tensor1D));
    const u = update ? tf.sqrt(tf.sum(update)) : g;
    const applied = applyBounds(bounds, tf.reshape(loss, []), g, w, u, learningRate);
    const out = tf.concat([...parts, tf.stack([applied.clipCoef, applied.stepScale, tf.cast(applied.skip, "float32")]) as tf.Tensor1D]);
    const keepUpdate = tf.logicalNot(applied.skip);
    // SGD's update is lr·g: the step scale goes through the gradient, and the weights need no second pass.
    const factor = update ? applied.clipCoef : tf.mul(applied.clipCoef, applied.stepScale);
    return { readout: out, keep: keepUpdate, gradFactorOut: factor, stepScale: applied.stepScale };
  });
  tf.dispose(update ? [value, update] : [value]);

  const bounded = tf.tidy(() => Object.fromEntries(Object.entries(grads).map(([name, grad]) => [name, tf.where(keep, tf.mul(grad, gradFactorOut), 0)])));
  tf.dispose(Object.values(grads));
  setLearningRate(context.optimizer, learningRate);
  if (!update) {
    context.optimizer.applyGradients(bounded);
  } else {
    // Share the weights' memory (no copy): applyGradients assigns new tensors to the variables.
    const before = variables.map((variable) => tf.clone(variable));
    context.optimizer.applyGradients(bounded);
    for (const [i, variable] of variables.entries()) {
      const old = before[i] as tf.Tensor;
      const next = tf.tidy(() => tf.where(keep, tf.add(old, tf.mul(tf.sub(variable, old), stepScale)), old));
      variable.assign(next);
      next.dispose();
    }
    tf.dispose(before);
  }
  tf.dispose([...Object.values(bounded), keep, gradFactorOut, stepScale]);
  return { readout, layout, knownWeightNorm };
}

/** The watchdog's bounds as device arithmetic, mirroring `decide` (watchdog/device-bounds.ts). */
function applyBounds(
  bounds: DeviceBounds,
  loss: tf.Tensor,
  g: tf.Tensor,
  w: tf.Tensor,
  u: tf.Tensor,
  learningRate: number,
): { clipCoef: tf.Tensor; stepScale: tf.Tensor; skip: tf.Tensor } {
  // Weights of norm 0 leave the step size and update ratio unknown (NaN), as in `decide`: no bound on them.
  const stepSize = tf.where(tf.greater(w, 0), tf.div(learningRate, w), Number.NaN);
  const ratio = tf.mul(stepSize, u);
  const finite = tf.logicalAnd(tf.isFinite(loss), tf.isFinite(g));
  // The spike gate: an update ratio that is unknown (NaN) leaves it open, as in `decide`.
  const gateOpen = tf.logicalNot(tf.less(ratio, bounds.gateUpdateRatio));
  let clipTo: tf.Tensor = tf.scalar(bounds.clipTo);
  let skip: tf.Tensor = bounds.skipNonFinite ? tf.logicalNot(finite) : tf.scalar(false, "bool");
  if (bounds.zClip) {
    const { mean, std, denominator, zThreshold, skipZ } = bounds.zClip;
    const z = tf.div(tf.sub(g, mean), denominator);
    const zClipTo = tf.add(mean, tf.mul(tf.div(zThreshold * zThreshold, z), std));
    clipTo = tf.where(tf.logicalAnd(gateOpen, tf.greater(z, zThreshold)), tf.minimum(clipTo, zClipTo), clipTo);
    skip = tf.logicalOr(skip, tf.logicalAnd(gateOpen, tf.greater(z, skipZ)));
  }
  if (Number.isFinite(bounds.normOutlier)) {
    clipTo = tf.where(tf.logicalAnd(gateOpen, tf.greater(g, bounds.normOutlier)), tf.minimum(clipTo, bounds.normOutlier), clipTo);
  }
  skip = tf.logicalOr(skip, tf.greater(loss, bounds.skipAboveLoss));
  const clipCoef = tf.where(tf.logicalAnd(finite, tf.greater(g, clipTo)), tf.div(clipTo, g), 1);
  const regionScale = tf.where(tf.greater(ratio, 0), tf.div(bounds.maxUpdateRatio, ratio), Number.POSITIVE_INFINITY);
  // An oversized step size is taken at the typical size; the trust region bounds what is left.
  const sizeScale = bounds.updateSize ? tf.where(tf.greater(stepSize, bounds.updateSize.factor * bounds.updateSize.typical), tf.div(bounds.updateSize.typical, stepSize), 1) : tf.scalar(1);
  const stepScale = tf.where(finite, tf.minimum(sizeScale, regionScale), 1);
  return { clipCoef: tf.where(skip, 1, clipCoef), stepScale: tf.where(skip, 1, stepScale), skip };
}

/** Reads many bounded steps' numbers in ONE transfer (awaited: the event loop runs meanwhile), and frees them. */
export async function readBoundedSteps(context: StepContext, pending: PendingReadout[]): Promise<{ measurement: GradientMeasurement; applied: AppliedOnDevice }[]> {
  if (pending.length === 0) return [];
  const all = pending.length === 1 ? (pending[0] as PendingReadout).readout : tf.concat(pending.map((p) => p.readout));
  const values = (await all.data()) as Float32Array;
  tf.dispose([all, ...pending.map((p) => p.readout)]);
  let offset = 0;
  return pending.map(({ layout, knownWeightNorm }) => {
    const length = readoutLength(layout);
    const measurement = measurementOf(context, values.subarray(offset, offset + length), layout, knownWeightNorm);
    const [clipCoef, stepScale, skipped] = values.subarray(offset + length, offset + length + APPLIED_FIELDS) as unknown as [number, number, number];
    offset += length + APPLIED_FIELDS;
    return { measurement, applied: { clipCoef, stepScale, skipped: skipped !== 0 } };
  });
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
