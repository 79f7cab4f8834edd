import { describe, expect, it } from "vitest";
import { spirals } from "../../trainer/data/datasets.ts";
import { createRandom, permutation } from "../../trainer/random.ts";

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
