// The wasm backend's matMul with transposed operands goes through trainer/backend.ts's
// transpose-first kernel (a dense layer's backward pass): it must give what the cpu backend gives.
// Its Σx² goes through trainer/sum-of-squares.ts's SIMD kernel, or the same loop called in place:
// it must give Σx² in float64 to float32 precision, whatever the length (4-lane part and tail),
// and keep NaN and ∞.
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";
import { resolveBackend } from "../../trainer/backend.ts";
import { sumsOfSquares, sumsOfSquaresOnHost } from "../../trainer/sum-of-squares.ts";
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

  it("sums squares with its own kernel as float64 would, to float32 precision, and keeps NaN and ∞", async () => {
    expect(await resolveBackend("wasm", silentLog)).toBe("wasm");
    expect(tf.getKernel("GradguardSumsOfSquares", "wasm")).toBeDefined();
    const sizes = [0, 1, 3, 4, 5, 8, 15, 16, 17, 33, 63, 1000, 200_704];
    const data = sizes.map((size) => values(size, size));
    const exact = data.map((d) => d.reduce((sum, v) => sum + v * v, 0));
    const tensors = data.map((d) => tf.tensor(d, [d.length]));
    // Reshapes share their data: the kernel must read each by its data id.
    const reshaped = tensors.map((t) => (t.size % 2 === 0 && t.size > 0 ? tf.reshape(t, [2, t.size / 2]) : t));
    for (const inputs of [tensors, reshaped, [...tensors].reverse()]) {
      const sums = sumsOfSquares(inputs);
      expect(sums.shape).toEqual([inputs.length]);
      const got = await sums.data();
      const expected = inputs === tensors || inputs === reshaped ? exact : [...exact].reverse();
      for (const [i, value] of got.entries()) expect(Math.abs(value - (expected[i] as number))).toBeLessThanOrEqual(Math.max((expected[i] as number) * 1e-5, 1e-30));
      // Summed in place without a kernel: the same float32 sums, to the bit.
      expect(Array.from(sumsOfSquaresOnHost(inputs) ?? [])).toEqual(Array.from(got));
      sums.dispose();
    }
    tf.dispose([...tensors, ...reshaped]);
    expect((await sumsOfSquares([]).data()).length).toBe(0);
    for (const [bad, expected] of [
      [Number.NaN, Number.NaN],
      [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY],
      [Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY],
    ] as const) {
      for (const at of [2, 13, 17]) {
        const bad20 = values(20, 1);
        bad20[at] = bad; // in the first and the last lane sum of the 16-float part, then in the tail
        const sums = sumsOfSquares([tf.tensor([1, 2]), tf.tensor(bad20)]);
        expect(Array.from(await sums.data())).toEqual([5, expected]);
        expect(Array.from(sumsOfSquaresOnHost([tf.tensor([1, 2]), tf.tensor(bad20)]) ?? [])).toEqual([5, expected]);
        sums.dispose();
      }
    }
    const cpuSums = await onBackend("cpu", () => sumsOfSquares([tf.tensor([3, 4]), tf.tensor([[1, 2], [2, 0]])]));
    expect(Array.from(cpuSums)).toEqual([25, 9]);
    // The cpu backend's tensors are not in the kernel's memory: the caller must read a tensor.
    expect(sumsOfSquaresOnHost([tf.tensor([3, 4])])).toBeNull();
    await tf.setBackend("wasm");
  });
});
