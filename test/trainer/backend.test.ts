// The wasm backend's matMul with transposed operands goes through trainer/backend.ts's
// transpose-first kernel (a dense layer's backward pass): it must give what the cpu backend gives.
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";
import { resolveBackend } from "../../trainer/backend.ts";
import { silentLog } from "../helpers/database.ts";

/** Deterministic values, so a wrong element order shows. */
const values = (size: number, seed: number) => Float32Array.from({ length: size }, (_, i) => Math.sin(i * 0.37 + seed));

async function onBackend(name: string, compute: () => tf.Tensor): Promise<Float32Array> {
  await tf.setBackend(name);
  const result = compute();
  const data = (await result.data()) as Float32Array;
  result.dispose();
  return data;
}

describe("wasm backend setup", () => {
  it("multiplies transposed operands as the cpu backend does, batched and with a fused bias and relu", async () => {
    expect(await resolveBackend("wasm", silentLog)).toBe("wasm");
    const cases = [
      { a: [5, 7], b: [5, 3], transposeA: true, transposeB: false },
      { a: [5, 7], b: [3, 7], transposeA: false, transposeB: true },
      { a: [7, 5], b: [3, 7], transposeA: true, transposeB: true },
      { a: [2, 5, 7], b: [2, 3, 7], transposeA: false, transposeB: true },
      { a: [2, 7, 5], b: [2, 7, 3], transposeA: true, transposeB: false },
    ];
    for (const c of cases) {
      const multiply = () => {
        const a = tf.tensor(values(c.a.reduce((x, y) => x * y), 1), c.a);
        const b = tf.tensor(values(c.b.reduce((x, y) => x * y), 2), c.b);
        const plain = tf.matMul(a, b, c.transposeA, c.transposeB);
        const bias = tf.fill([c.transposeB ? (c.b.at(-2) as number) : (c.b.at(-1) as number)], 0.1);
        const fused = tf.fused.matMul({ a, b, transposeA: c.transposeA, transposeB: c.transposeB, bias, activation: "relu" });
        const both = tf.concat([tf.reshape(plain, [-1]), tf.reshape(fused, [-1])]);
        tf.dispose([a, b, bias, plain, fused]);
        return both;
      };
      const wasm = await onBackend("wasm", multiply);
      const cpu = await onBackend("cpu", multiply);
      expect(wasm.length).toBe(cpu.length);
      for (const [i, value] of wasm.entries()) expect(value).toBeCloseTo(cpu[i] as number, 5);
    }
    await tf.setBackend("wasm");
  });
});
