// Turns a spec's layer list into a tfjs model, with every random initializer seeded so the
// same spec and seed start from the same weights.
import type * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { type LayerSpec, layerNames } from "./model-spec.ts";
import type { JobSpec } from "./spec.ts";

export interface BuiltModel {
  model: tfl.Sequential;
  /** Layer names in spec order (what Job.layerNames stores). */
  layerNames: string[];
  /** The trainable variables of each named layer, in the same order. */
  layerVariables: tf.Variable[][];
}

type Initializer = ReturnType<typeof tfl.initializers.zeros>;

const INITIALIZER_FACTORIES: Record<NonNullable<LayerSpec["kernelInitializer"]>, (seed: number) => Initializer> = {
  glorotUniform: (seed) => tfl.initializers.glorotUniform({ seed }),
  glorotNormal: (seed) => tfl.initializers.glorotNormal({ seed }),
  heUniform: (seed) => tfl.initializers.heUniform({ seed }),
  heNormal: (seed) => tfl.initializers.heNormal({ seed }),
  leCunUniform: (seed) => tfl.initializers.leCunUniform({ seed }),
  leCunNormal: (seed) => tfl.initializers.leCunNormal({ seed }),
  zeros: () => tfl.initializers.zeros(),
  ones: () => tfl.initializers.ones(),
};

/** A distinct, reproducible seed for each layer of a job. */
function layerSeed(jobSeed: number, layerIndex: number): number {
  return (Math.imul(jobSeed + 1, 0x9e3779b1) + layerIndex * 7919) >>> 0;
}

export function buildModel(spec: JobSpec): BuiltModel {
  const names = layerNames(spec.model);
  const layers = spec.model.layers.map((layer, index) =>
    tfl.layers.dense({
      units: layer.units,
      activation: layer.activation ?? "linear",
      useBias: layer.useBias ?? true,
      kernelInitializer: INITIALIZER_FACTORIES[layer.kernelInitializer ?? "glorotUniform"](layerSeed(spec.seed, index)),
      inputShape: layer.inputShape,
      name: names[index],
    }),
  );
  const model = tfl.sequential({ layers });
  return {
    model,
    layerNames: names,
    layerVariables: model.layers.map((layer) => layer.trainableWeights.map((weight) => weight.read() as tf.Variable)),
  };
}
