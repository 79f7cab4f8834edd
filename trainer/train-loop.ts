// The training loop: builds model, data and optimizer from a spec and runs the steps, handing
// each step's measurements to a callback. It knows nothing of Postgres or sockets; the job
// process wires the callbacks to the step writer.
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import * as tf from "@tensorflow/tfjs-core";
import { type Dataset, makeDataset } from "./data/datasets.ts";
import { buildModel } from "./model.ts";
import { createRandom, permutation, type Random } from "./random.ts";
import type { JobSpec } from "./spec.ts";
import { type Batch, LOSSES, applyAndDispose, measureGradients, type StepContext } from "./train-step.ts";

/** What one step produced: one Step row. */
export interface StepRecord {
  step: number;
  loss: number;
  gradNorm: number;
  layerNorms: number[];
  lr: number;
  nonFinite: boolean;
  stepMs: number;
}

export interface TrainCallbacks {
  /** Called after every step, in step order. Must not block: buffer, don't write. */
  onStep?(record: StepRecord): void;
  /** Checked before each step; true stops the loop cleanly after the current step. */
  shouldStop?(): boolean;
}

export interface TrainSummary {
  layerNames: string[];
  /** Steps completed (the last step is stepsRun - 1). */
  stepsRun: number;
  stopped: boolean;
  finalLoss: number | null;
}

export interface PreparedTraining {
  layerNames: string[];
  run(callbacks?: TrainCallbacks): Promise<TrainSummary>;
  /** Copies of the trainable variables' values, layer by layer. */
  readWeights(): Float32Array[];
  /** Frees the model, optimizer and data tensors. */
  dispose(): void;
}

/** Builds everything a spec needs; `run` then trains it. Layer names are known before step 0. */
export function prepareTraining(spec: JobSpec): PreparedTraining {
  const dataset = makeDataset({ ...spec.data, seed: spec.data.seed });
  const built = buildModel(spec);
  const optimizer = makeOptimizer(spec.optimizer);
  const context: StepContext = { model: built.model, optimizer, loss: LOSSES[spec.loss], layerVariables: built.layerVariables };
  const batches = new BatchSampler(dataset, spec.batchSize, createRandom(spec.seed));

  return {
    layerNames: built.layerNames,
    readWeights: () => built.layerVariables.flat().map((variable) => variable.dataSync() as Float32Array),
    dispose: () => {
      built.model.dispose();
      optimizer.dispose();
    },
    async run(callbacks = {}) {
      let finalLoss: number | null = null;
      let step = 0;
      for (; step < spec.steps; step++) {
        if (callbacks.shouldStop?.()) break;
        const started = performance.now();
        const batch = batches.next();
        const { measurement, grads } = measureGradients(context, batch);
        applyAndDispose(context, grads);
        tf.dispose([batch.x, batch.y]);
        finalLoss = measurement.loss;
        callbacks.onStep?.({ step, ...measurement, lr: spec.optimizer.learningRate, stepMs: performance.now() - started });
        // Let the writer's I/O and signal handlers run between steps.
        await yieldToEventLoop();
      }
      return { layerNames: built.layerNames, stepsRun: step, stopped: step < spec.steps, finalLoss };
    },
  };
}

function makeOptimizer(spec: JobSpec["optimizer"]): tf.Optimizer {
  switch (spec.type) {
    case "sgd":
      return tf.train.sgd(spec.learningRate);
    case "adam":
      return tf.train.adam(spec.learningRate);
  }
}

/** Mini-batches in a seeded order, reshuffled every epoch. */
class BatchSampler {
  private order: Uint32Array;
  private cursor = 0;

  constructor(
    private readonly data: Dataset,
    private readonly batchSize: number,
    private readonly random: Random,
  ) {
    this.order = permutation(data.examples, random);
  }

  next(): Batch {
    const { data, batchSize } = this;
    const xSize = size(data.featureShape);
    const ySize = size(data.targetShape);
    const x = new Float32Array(batchSize * xSize);
    const y = new Float32Array(batchSize * ySize);
    for (let row = 0; row < batchSize; row++) {
      if (this.cursor === this.order.length) {
        this.order = permutation(data.examples, this.random);
        this.cursor = 0;
      }
      const example = this.order[this.cursor++] as number;
      x.set(data.x.subarray(example * xSize, (example + 1) * xSize), row * xSize);
      y.set(data.y.subarray(example * ySize, (example + 1) * ySize), row * ySize);
    }
    return { x: tf.tensor(x, [batchSize, ...data.featureShape]), y: tf.tensor(y, [batchSize, ...data.targetShape]) };
  }
}

function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
