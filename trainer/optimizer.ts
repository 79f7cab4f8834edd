// The `optimizer` part of a job spec (sgd, momentum, adam, rmsprop, adagrad, each with its tfjs
// parameters and defaults) and its learning-rate schedule, and the tfjs optimizers built from it.
import * as tf from "@tensorflow/tfjs-core";
import Type, { type Static } from "typebox";
import { sumsOfSquares } from "./sum-of-squares.ts";

const LearningRate = Type.Number({ exclusiveMinimum: 0, maximum: 1000, description: "Base learning rate" });

const ScheduleSchema = Type.Union(
  [
    Type.Object({ type: Type.Literal("constant") }, { additionalProperties: false }),
    Type.Object(
      {
        type: Type.Literal("linearWarmup"),
        warmupSteps: Type.Integer({ minimum: 1, description: "Steps to ramp linearly from 0 to the base rate" }),
      },
      { additionalProperties: false },
    ),
    Type.Object(
      {
        type: Type.Literal("cosine"),
        warmupSteps: Type.Optional(Type.Integer({ minimum: 0, default: 0, description: "Linear warm-up before the decay" })),
        decaySteps: Type.Optional(Type.Integer({ minimum: 1, description: "Length of the decay; default: the job's steps" })),
        minFactor: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0, description: "Floor, as a fraction of the base rate" })),
      },
      { additionalProperties: false },
    ),
    Type.Object(
      {
        type: Type.Literal("step"),
        stepSize: Type.Integer({ minimum: 1, description: "Steps between decays" }),
        gamma: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.1, description: "Factor applied at each decay" })),
      },
      { additionalProperties: false },
    ),
  ],
  { description: "Learning-rate schedule; default constant" },
);
export type ScheduleSpec = Static<typeof ScheduleSchema>;

const common = { learningRate: LearningRate, schedule: Type.Optional(ScheduleSchema) };

export const OptimizerSchema = Type.Union([
  Type.Object({ type: Type.Literal("sgd"), ...common }, { additionalProperties: false }),
  Type.Object(
    {
      type: Type.Literal("momentum"),
      ...common,
      momentum: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0.9 })),
      nesterov: Type.Optional(Type.Boolean({ default: false })),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      type: Type.Literal("adam"),
      ...common,
      beta1: Type.Optional(Type.Number({ minimum: 0, exclusiveMaximum: 1, default: 0.9 })),
      beta2: Type.Optional(Type.Number({ minimum: 0, exclusiveMaximum: 1, default: 0.999 })),
      epsilon: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 1e-7 })),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      type: Type.Literal("rmsprop"),
      ...common,
      decay: Type.Optional(Type.Number({ minimum: 0, exclusiveMaximum: 1, default: 0.9 })),
      momentum: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0 })),
      epsilon: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 1e-7 })),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      type: Type.Literal("adagrad"),
      ...common,
      initialAccumulatorValue: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 10, default: 0.1 })),
    },
    { additionalProperties: false },
  ),
]);
export type OptimizerSpec = Static<typeof OptimizerSchema>;

export function makeOptimizer(spec: OptimizerSpec): tf.Optimizer {
  switch (spec.type) {
    case "sgd":
      return tf.train.sgd(spec.learningRate);
    case "momentum":
      return tf.train.momentum(spec.learningRate, spec.momentum ?? 0.9, spec.nesterov ?? false);
    case "adam":
      return tf.train.adam(spec.learningRate, spec.beta1 ?? 0.9, spec.beta2 ?? 0.999, spec.epsilon ?? 1e-7);
    case "rmsprop":
      return tf.train.rmsprop(spec.learningRate, spec.decay ?? 0.9, spec.momentum ?? 0, spec.epsilon ?? 1e-7);
    case "adagrad":
      return tf.train.adagrad(spec.learningRate, spec.initialAccumulatorValue ?? 0.1);
  }
}

/**
 * Sets the rate the optimizer's next update uses. tfjs has a setter only on SGD (and Momentum,
 * which inherits it); the others read their `learningRate` field at every update.
 */
export function setLearningRate(optimizer: tf.Optimizer, rate: number): void {
  // SGD's setter allocates a new scalar tensor: only call it when the rate changes.
  if (rateSet.get(optimizer) === rate) return;
  rateSet.set(optimizer, rate);
  // Duck-typed: tfjs optimizers answer `instanceof` by duck typing too (Adam passes for SGD).
  const withSetter = optimizer as unknown as { setLearningRate?: (rate: number) => void; learningRate: number };
  if (typeof withSetter.setLearningRate === "function") withSetter.setLearningRate(rate);
  else withSetter.learningRate = rate;
}

const rateSet = new WeakMap<tf.Optimizer, number>();

/** The scheduled learning rate at `step` (0-based) of a job of `totalSteps` steps. */
export function scheduledRate(spec: OptimizerSpec, step: number, totalSteps: number): number {
  const base = spec.learningRate;
  const schedule = spec.schedule ?? { type: "constant" };
  switch (schedule.type) {
    case "constant":
      return base;
    case "linearWarmup":
      return base * Math.min(1, (step + 1) / schedule.warmupSteps);
    case "cosine": {
      const warmup = schedule.warmupSteps ?? 0;
      if (step < warmup) return base * ((step + 1) / warmup);
      // By default the decay ends on the job's last step.
      const length = schedule.decaySteps ?? Math.max(1, totalSteps - 1 - warmup);
      const progress = Math.min(1, (step - warmup) / length);
      const floor = schedule.minFactor ?? 0;
      return base * (floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * progress)));
    }
    case "step":
      return base * (schedule.gamma ?? 0.1) ** Math.floor(step / schedule.stepSize);
  }
}

/**
 * Optimizer scalars that getWeights leaves out. Adam keeps β₁ᵗ and β₂ᵗ as running products;
 * its setWeights recomputes them as powers, which differ in the last float32 bits, so a
 * resumed run would drift from an uninterrupted one. Saving them keeps resumption exact.
 */
export async function readOptimizerScalars(optimizer: tf.Optimizer): Promise<Record<string, number>> {
  const adam = optimizer as unknown as Partial<Record<"accBeta1" | "accBeta2", tf.Variable>>;
  if (!adam.accBeta1 || !adam.accBeta2) return {};
  const [accBeta1, accBeta2] = await Promise.all([adam.accBeta1.data(), adam.accBeta2.data()]);
  return { accBeta1: accBeta1[0] as number, accBeta2: accBeta2[0] as number };
}

export function writeOptimizerScalars(optimizer: tf.Optimizer, scalars: Record<string, number>): void {
  const target = optimizer as unknown as Record<string, tf.Variable | undefined>;
  tf.tidy(() => {
    for (const [name, value] of Object.entries(scalars)) target[name]?.assign(tf.scalar(value));
  });
}

type Slot = { variable: tf.Variable } | undefined;
interface OptimizerSlots {
  learningRate: number;
  // Momentum
  m?: number;
  useNesterov?: boolean;
  accumulations?: Slot[];
  // Adam
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  accBeta1?: tf.Variable;
  accBeta2?: tf.Variable;
  accumulatedFirstMoment?: Slot[];
  accumulatedSecondMoment?: Slot[];
  // RMSProp
  decay?: number;
  momentum?: number;
  accumulatedMeanSquares?: Slot[];
  accumulatedMoments?: Slot[];
  // Adagrad
  accumulatedGrads?: Slot[];
}

/**
 * The squared L2 norm of the update `optimizer` would make to each variable of `grads`, per unit
 * of learning rate (‖Δw‖²/lr²), in `grads` order, on the device; null for SGD, whose update is
 * lr·g. It repeats the arithmetic of tfjs 4's applyGradients on the optimizer's slots (matched
 * to `grads` by position, as applyGradients matches them) without changing them. Before the
 * first update the slots do not exist yet and count as their initial values.
 *
 * Adaptive optimizers normalise the gradient: Adam's first update is about lr·√(parameters)
 * whatever ‖g‖ is, so lr·‖g‖/‖w‖ says nothing about the step they take, and clipping the
 * gradient does not shrink it. The watchdog's trust region judges this update instead.
 */
export function updateDirectionSquares(optimizer: tf.Optimizer, grads: tf.NamedTensorMap): tf.Tensor1D | null {
  const kind = optimizer.getClassName();
  if (kind === "SGD") return null;
  const o = optimizer as unknown as OptimizerSlots;
  const slot = (slots: Slot[] | undefined, i: number, initial: (g: tf.Tensor) => tf.Tensor, g: tf.Tensor) => slots?.[i]?.variable ?? initial(g);
  return tf.tidy(() => {
    const directions = Object.values(grads).map((g, i) => {
      let direction: tf.Tensor;
      switch (kind) {
        case "Momentum": {
          const accumulation = tf.add(tf.mul(slot(o.accumulations, i, tf.zerosLike, g), o.m ?? 0), g);
          direction = o.useNesterov ? tf.add(g, tf.mul(accumulation, o.m ?? 0)) : accumulation;
          break;
        }
        case "Adam": {
          const beta1 = o.beta1 ?? 0.9;
          const beta2 = o.beta2 ?? 0.999;
          const m = tf.add(tf.mul(slot(o.accumulatedFirstMoment, i, tf.zerosLike, g), beta1), tf.mul(g, 1 - beta1));
          const v = tf.add(tf.mul(slot(o.accumulatedSecondMoment, i, tf.zerosLike, g), beta2), tf.mul(tf.square(g), 1 - beta2));
          const mHat = tf.div(m, tf.sub(1, o.accBeta1 ?? tf.scalar(beta1)));
          const vHat = tf.div(v, tf.sub(1, o.accBeta2 ?? tf.scalar(beta2)));
          direction = tf.div(mHat, tf.add(tf.sqrt(vHat), o.epsilon ?? 1e-7));
          break;
        }
        case "RMSProp": {
          const decay = o.decay ?? 0.9;
          const meanSquare = tf.add(tf.mul(slot(o.accumulatedMeanSquares, i, tf.zerosLike, g), decay), tf.mul(tf.square(g), 1 - decay));
          // The moments hold lr-scaled updates: divide by the rate they were made with.
          const moments = tf.div(slot(o.accumulatedMoments, i, tf.zerosLike, g), o.learningRate);
          direction = tf.add(tf.mul(moments, o.momentum ?? 0), tf.div(g, tf.sqrt(tf.add(meanSquare, o.epsilon ?? 1e-7))));
          break;
        }
        case "Adagrad": {
          const initial = (t: tf.Tensor) => tf.fill(t.shape, (o as unknown as { initialAccumulatorValue: number }).initialAccumulatorValue);
          const accumulated = tf.add(slot(o.accumulatedGrads, i, initial, g), tf.square(g));
          direction = tf.div(g, tf.sqrt(tf.add(accumulated, tf.backend().epsilon())));
          break;
        }
        default:
          throw new Error(`no update norm for the ${kind} optimizer`);
      }
      return direction;
    });
    return sumsOfSquares(directions);
  });
}
