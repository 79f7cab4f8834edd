// One training step, split where the watchdog will sit: measure the gradients (loss, global
// and per-layer norms, in ONE device→host read), then apply them. Nothing here knows about
// databases, sockets or jobs.
import * as tf from "@tensorflow/tfjs-core";
import type * as tfl from "@tensorflow/tfjs-layers";

export type LossFunction = (labels: tf.Tensor, predictions: tf.Tensor) => tf.Scalar;

export interface StepContext {
  model: tfl.Sequential;
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

/** Forward, backward and the norms. The caller owns the returned gradients (see applyAndDispose). */
export function measureGradients(context: StepContext, batch: Batch): MeasuredGradients {
  const variables = context.layerVariables.flat();
  const { value, grads } = tf.variableGrads(
    () => context.loss(batch.y, context.model.apply(batch.x, { training: true }) as tf.Tensor),
    variables,
  );
  // Loss and each layer's squared norm stacked into one tensor: one read instead of many.
  const readout = tf.tidy(() =>
    tf.stack([
      value,
      ...context.layerVariables.map((layer) =>
        layer.length === 0 ? tf.scalar(0) : tf.addN(layer.map((variable) => tf.sum(tf.square(grads[variable.name] as tf.Tensor)))),
      ),
    ]),
  );
  const values = readout.dataSync();
  tf.dispose([readout, value]);

  const loss = values[0] as number;
  let sumOfSquares = 0;
  const layerNorms: number[] = [];
  for (let i = 1; i < values.length; i++) {
    const squared = values[i] as number;
    sumOfSquares += squared;
    layerNorms.push(Math.sqrt(squared));
  }
  const gradNorm = Math.sqrt(sumOfSquares);
  return {
    measurement: { loss, gradNorm, layerNorms, nonFinite: !Number.isFinite(loss) || !Number.isFinite(gradNorm) },
    grads,
  };
}

/** Applies the gradients with the optimizer, then frees them. */
export function applyAndDispose(context: StepContext, grads: tf.NamedTensorMap): void {
  context.optimizer.applyGradients(grads);
  tf.dispose(Object.values(grads));
}
