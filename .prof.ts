import * as tf from "@tensorflow/tfjs-core";
import { pino } from "pino";
import { resolveBackend } from "./trainer/backend.ts";
import { makeDataset } from "./trainer/data/datasets.ts";
import { buildModel } from "./trainer/model.ts";
import { makeOptimizer } from "./trainer/optimizer.ts";
import { parseJobSpec } from "./trainer/spec.ts";
import { LOSSES, measureGradients, applyUpdate } from "./trainer/train-step.ts";
await resolveBackend(undefined, pino({ level: "warn" }));
const spec = parseJobSpec({ name: "p", model: { layers: [{ type: "simpleRNN", units: 64, inputShape: [50, 2] }, { type: "dense", units: 1 }] }, data: { kind: "adding", size: 2048, seqLen: 50, seed: 1 }, loss: "meanSquaredError", batchSize: 64, steps: 1, optimizer: { type: "sgd", learningRate: 0.01 }, validation: { fraction: 0 } }, { maxSteps: 10 });
const data = makeDataset(spec.data); const built = buildModel(spec);
const ctx = { model: built.model, optimizer: makeOptimizer(spec.optimizer), loss: LOSSES[spec.loss], layerVariables: built.layerVariables };
const x = tf.tensor(data.x.subarray(0, 64 * 100), [64, 50, 2]); const y = tf.tensor(data.y.subarray(0, 64), [64, 1]);
const vars = built.layerVariables.flat();
const variants: Record<string, () => void> = {
  bare: () => { const { value, grads } = tf.variableGrads(() => ctx.loss(y, ctx.model.apply(x, { training: true }) as tf.Tensor), vars); ctx.optimizer.applyGradients(grads); tf.dispose([value, ...Object.values(grads)]); },
  bareRead: () => { const { value, grads } = tf.variableGrads(() => ctx.loss(y, ctx.model.apply(x, { training: true }) as tf.Tensor), vars); value.dataSync(); ctx.optimizer.applyGradients(grads); tf.dispose([value, ...Object.values(grads)]); },
  measured: () => { const { grads } = measureGradients(ctx, { x, y }); applyUpdate(ctx, grads, { clipCoef: 1, learningRate: 0.01, skip: false }); },
};
const time = (f: () => void, n = 20) => { const t = performance.now(); for (let i = 0; i < n; i++) f(); return (performance.now() - t) / n; };
for (const f of Object.values(variants)) time(f, 5);
for (let r = 0; r < 4; r++) console.log(Object.entries(variants).map(([k, f]) => `${k} ${time(f).toFixed(1)}`).join("  "));
console.log(built.layerNames, vars.map(v => v.shape));
