import { describe, expect, it } from "vitest";
import {
  adding,
  blobs,
  checkDataSpec,
  type Dataset,
  datasetShape,
  makeDataset,
  parity,
  sine,
  spirals,
  splitDataset,
} from "../../trainer/data/datasets.ts";
import type { DataSpec } from "../../trainer/data/spec.ts";
import { createRandom, permutation } from "../../trainer/random.ts";
import { InvalidSpecError, parseJobSpec } from "../../trainer/spec.ts";
import { demoSpec } from "./fixtures.ts";

/** Row `i` of x (or y), as a plain array. */
function row(data: Dataset, i: number, of: "x" | "y" = "x"): number[] {
  const size = (of === "x" ? data.featureShape : data.targetShape).reduce((a, b) => a * b, 1);
  return Array.from(data[of].subarray(i * size, (i + 1) * size));
}

describe("spirals", () => {
  it("is the same for the same seed and different for another", () => {
    const a = spirals(512, 3, 0.1, 7);
    expect(spirals(512, 3, 0.1, 7)).toEqual(a);
    expect(spirals(512, 3, 0.1, 8).x).not.toEqual(a.x);
  });

  it("has one-hot targets, balanced classes and points in the unit disc", () => {
    const data = spirals(600, 3, 0.05, 1);
    expect(data).toMatchObject({ examples: 600, featureShape: [2], targetShape: [3] });
    const counts = [0, 0, 0];
    for (let i = 0; i < data.examples; i++) {
      const row = Array.from(data.y.subarray(i * 3, i * 3 + 3));
      expect(row.reduce((a, b) => a + b)).toBe(1);
      counts[row.indexOf(1)] = (counts[row.indexOf(1)] ?? 0) + 1;
      expect(Math.hypot(data.x[i * 2] as number, data.x[i * 2 + 1] as number)).toBeLessThanOrEqual(1.0001);
    }
    expect(counts).toEqual([200, 200, 200]);
  });
});

// Every generator, through makeDataset: deterministic for a seed, different for another, and
// the shapes datasetShape promised without generating.
const GENERATORS: [string, DataSpec][] = [
  ["spirals", { kind: "spirals", size: 300, classes: 3 }],
  ["blobs", { kind: "blobs", size: 300, classes: 4, features: 5 }],
  ["sine", { kind: "sine", size: 300, seqLen: 12 }],
  ["adding", { kind: "adding", size: 300, seqLen: 20 }],
  ["parity", { kind: "parity", size: 300, bits: 6 }],
];

describe.each(GENERATORS)("%s", (_kind, spec) => {
  it("is the same for a seed, different for another, and has the shapes datasetShape promised", () => {
    const a = makeDataset({ ...spec, seed: 3 });
    expect(makeDataset({ ...spec, seed: 3 })).toEqual(a);
    expect(makeDataset({ ...spec, seed: 4 }).x).not.toEqual(a.x);
    const shape = datasetShape(spec);
    const size = spec.size ?? 0;
    expect(a).toMatchObject({ examples: size, ...shape });
    expect(a.x).toHaveLength(size * shape.featureShape.reduce((p, d) => p * d, 1));
    expect(a.y).toHaveLength(size * shape.targetShape.reduce((p, d) => p * d, 1));
    expect(a.x.every(Number.isFinite) && a.y.every(Number.isFinite)).toBe(true);
  });
});

describe("blobs", () => {
  it("has balanced classes, each point nearest its own centre", () => {
    const data = blobs({ size: 400, classes: 4, features: 3, spread: 0.05, seed: 2 });
    const counts = [0, 0, 0, 0];
    const centres = Array.from({ length: 4 }, () => [0, 0, 0]);
    for (let i = 0; i < data.examples; i++) {
      const cls = row(data, i, "y").indexOf(1);
      counts[cls] = (counts[cls] ?? 0) + 1;
      row(data, i).forEach((v, f) => {
        (centres[cls] as number[])[f] = ((centres[cls] as number[])[f] as number) + v / 100;
      });
    }
    expect(counts).toEqual([100, 100, 100, 100]);
    for (let i = 0; i < data.examples; i++) {
      const point = row(data, i);
      const distances = centres.map((c) => Math.hypot(...c.map((v, f) => v - (point[f] as number))));
      expect(distances.indexOf(Math.min(...distances))).toBe(row(data, i, "y").indexOf(1));
    }
  });
});

describe("sine", () => {
  it("targets the value after the window: the next window ends with it", () => {
    const data = sine({ size: 200, seqLen: 10, period: 25, noise: 0.05, seed: 1 });
    expect(data).toMatchObject({ featureShape: [10, 1], targetShape: [1] });
    for (let i = 0; i + 1 < data.examples; i++) {
      expect(row(data, i + 1).slice(0, 9)).toEqual(row(data, i).slice(1));
      expect(row(data, i + 1)[9]).toBe(data.y[i]);
    }
  });

  it("without noise, follows sin(2πt / period + phase)", () => {
    const data = sine({ size: 100, seqLen: 5, period: 20, noise: 0, seed: 9 });
    const phase = Math.asin(data.x[0] as number);
    const candidates = [phase, Math.PI - phase];
    const fits = candidates.filter((p) => Array.from(data.y).every((v, i) => Math.abs(v - Math.sin((2 * Math.PI * (i + 5)) / 20 + p)) < 1e-5));
    expect(fits.length).toBeGreaterThan(0);
  });
});

describe("adding", () => {
  it("marks exactly two steps, one in each half, and targets the sum of their values", () => {
    const T = 50;
    const data = adding({ size: 500, seqLen: T, seed: 5 });
    expect(data).toMatchObject({ featureShape: [T, 2], targetShape: [1] });
    for (let i = 0; i < data.examples; i++) {
      const steps = row(data, i);
      const values = steps.filter((_, k) => k % 2 === 0);
      const markers = steps.filter((_, k) => k % 2 === 1);
      const marked = markers.flatMap((m, t) => (m === 1 ? [t] : []));
      expect(markers.every((m) => m === 0 || m === 1)).toBe(true);
      expect(marked).toHaveLength(2);
      expect(marked[0]).toBeLessThan(T / 2);
      expect(marked[1]).toBeGreaterThanOrEqual(T / 2);
      expect(values.every((v) => v >= 0 && v < 1)).toBe(true);
      expect(data.y[i]).toBeCloseTo((values[marked[0] as number] as number) + (values[marked[1] as number] as number), 6);
    }
  });
});

describe("parity", () => {
  it("targets one-hot [even, odd] of the XOR of the bits", () => {
    const data = parity({ size: 500, bits: 7, seed: 1 });
    let odd = 0;
    for (let i = 0; i < data.examples; i++) {
      const bits = row(data, i);
      expect(bits.every((b) => b === 0 || b === 1)).toBe(true);
      const xor = bits.reduce((a, b) => a ^ b, 0);
      expect(row(data, i, "y")).toEqual(xor === 1 ? [0, 1] : [1, 0]);
      odd += xor;
    }
    // Random bits: both parities, roughly evenly.
    expect(odd).toBeGreaterThan(200);
    expect(odd).toBeLessThan(300);
  });
});

describe("splitDataset", () => {
  it("splits a seeded permutation: every example once, the same split for the same seed", () => {
    const data = blobs({ size: 100, classes: 2, features: 1, spread: 1, seed: 1 });
    const { train, validation } = splitDataset(data, 0.2);
    expect([train.examples, validation.examples]).toEqual([80, 20]);
    expect(train.featureShape).toEqual([1]);
    const all = [...train.x, ...validation.x].sort((a, b) => a - b);
    expect(all).toEqual([...data.x].sort((a, b) => a - b));
    expect(splitDataset(data, 0.2)).toEqual({ train, validation });
    expect(splitDataset(data, 0.2, 7).validation.x).not.toEqual(validation.x);
    // Rows stay whole: each validation example's target is its own.
    for (let i = 0; i < validation.examples; i++) {
      const source = data.x.indexOf(validation.x[i] as number);
      expect(row(validation, i, "y")).toEqual(row(data, source, "y"));
    }
  });

  it("keeps everything for training with a fraction of 0, and refuses 1", () => {
    const data = parity({ size: 10, bits: 2, seed: 1 });
    expect(splitDataset(data, 0).validation.examples).toBe(0);
    expect(splitDataset(data, 0).train.examples).toBe(10);
    expect(() => splitDataset(data, 1)).toThrow(RangeError);
  });
});

describe("data caps", () => {
  it("refuses a dataset over 50M numbers, naming data.size, in the check and in makeDataset", () => {
    const spec: DataSpec = { kind: "adding", size: 600_000, seqLen: 50 };
    expect(checkDataSpec(spec)).toEqual([{ field: "/data/size", message: expect.stringContaining("must be at most 495049") }]);
    expect(() => makeDataset(spec)).toThrow(/data\/size must be at most/);
    expect(checkDataSpec({ ...spec, size: 495_049 })).toEqual([]);
  });

  it("refuses sizes above 1,000,000 in the schema", () => {
    try {
      parseJobSpec({ ...demoSpec(), data: { kind: "parity", size: 2_000_000 } }, { maxSteps: 1000 });
      throw new Error("expected a refusal");
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidSpecError);
      expect((error as InvalidSpecError).problems.map((p) => p.field)).toContain("/data/size");
    }
  });
});

describe("seeded randomness", () => {
  it("repeats a sequence for a seed and gives a true permutation", () => {
    const a = createRandom(42);
    const b = createRandom(42);
    expect([a.next(), a.normal(), a.int(10)]).toEqual([b.next(), b.normal(), b.int(10)]);
    const order = Array.from(permutation(1000, createRandom(3)));
    expect([...order].sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(order).not.toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });
});
