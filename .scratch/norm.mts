import * as tf from "@tensorflow/tfjs-core";
import { pino } from "pino";
import { resolveBackend } from "/work/main/trainer/backend.ts";
await resolveBackend(undefined, pino({ level: "warn" }));
const ts = [tf.randomNormal([784, 256]), tf.randomNormal([256]), tf.randomNormal([256, 256]), tf.randomNormal([256]), tf.randomNormal([256, 10]), tf.randomNormal([10])];
const time = (name: string, f: () => tf.Tensor) => {
  for (let i = 0; i < 50; i++) tf.tidy(() => f().dataSync());
  const t0 = performance.now();
  for (let i = 0; i < 300; i++) tf.tidy(() => f().dataSync());
  console.log(name, ((performance.now() - t0) / 300).toFixed(3), "ms");
};
time("sum(square)", () => tf.stack(ts.map((t) => tf.sum(tf.square(t)))));
time("matMul", () => tf.stack(ts.map((t) => tf.reshape(tf.matMul(tf.reshape(t, [1, -1]), tf.reshape(t, [-1, 1])), []))));
time("norm", () => tf.stack(ts.map((t) => tf.norm(t))));
time("mul-sum", () => tf.stack(ts.map((t) => tf.sum(tf.mul(t, t)))));
