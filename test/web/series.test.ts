// The transforms from the API's columnar steps to uPlot data: downsampled buckets keep their
// max (spikes show), live rows append without duplicates, log charts get gaps not zeros.
import { describe, expect, it } from "vitest";
import type { LiveSteps, StepsResponse } from "../../web/src/lib/api-types.ts";
import { alignSeries, appendSteps, gradNormData, heatColor, heatmapGrid, lastValue, lossData, pointMajorLayerNorms, sparklineData, tableFromResponse, worstAction } from "../../web/src/lib/series.ts";

const JOB = "00000000-0000-4000-8000-000000000001";

function stepByStep(steps: number[], norm: (step: number) => number): StepsResponse {
  return {
    jobId: JOB,
    layerNames: ["rnn", "dense"],
    step: steps,
    loss: steps.map((s) => 1 / (s + 1)),
    gradNorm: steps.map(norm),
    gradNormAfter: steps.map((s) => Math.min(norm(s), 4)),
    clipCoef: steps.map((s) => Math.min(1, 4 / norm(s))),
    lr: steps.map(() => 0.5),
    valLoss: steps.map((s) => (s % 2 === 0 ? 0.3 : null)),
    layerNorms: steps.map((s) => [norm(s), 1]),
    action: steps.map((s) => (norm(s) > 4 ? "clip" : "none")),
    nonFinite: steps.map(() => false),
    nextFrom: null,
  };
}

function live(steps: number[], norm: (step: number) => number): LiveSteps {
  const rows = stepByStep(steps, norm);
  return {
    ...rows,
    loss: rows.loss ?? [],
    gradNorm: rows.gradNorm ?? [],
    gradNormAfter: rows.gradNormAfter ?? [],
    clipCoef: rows.clipCoef ?? [],
    lr: rows.lr ?? [],
    valLoss: rows.valLoss ?? [],
    action: rows.action ?? [],
    // The contract's layer-major shape: one array per layer.
    layerNorms: [steps.map(norm), steps.map(() => 1)],
    stepMs: steps.map(() => 1),
    weightNorm: steps.map(() => 1),
    updateRatio: steps.map(() => 0.01),
  };
}

describe("steps to chart data", () => {
  it("draws the norm, its clip threshold only where a step was clipped, and gaps where a log scale cannot go", () => {
    const table = tableFromResponse(stepByStep([0, 1, 2], (s) => [100, 2, 0][s] as number));
    const [x, norm, max, min, after, threshold] = gradNormData(table);
    expect(x).toEqual([0, 1, 2]);
    expect(norm).toEqual([100, 2, null]);
    expect(max).toEqual(norm);
    expect(min).toEqual(norm);
    expect(after).toEqual([4, 2, null]);
    expect(threshold).toEqual([4, null, null]);
  });

  it("keeps a downsampled bucket's max and min, so a one-step spike inside a bucket still shows", () => {
    const body: StepsResponse = {
      jobId: JOB,
      layerNames: ["dense"],
      downsampled: { bucketSize: 64 },
      step: [63, 127],
      stepMin: [0, 64],
      gradNorm: [1.5, 0.06],
      gradNormMin: [1.2, 0.05],
      gradNormMax: [108_500, 18.9],
      nonFinite: [false, true],
      nextFrom: null,
    };
    const table = tableFromResponse(body);
    expect(table.bucketSize).toBe(64);
    expect(gradNormData(table).slice(1, 4)).toEqual([
      [1.5, 0.06],
      [108_500, 18.9],
      [1.2, 0.05],
    ]);
    expect(sparklineData(body)).toEqual([[63, 127], [108_500, 18.9]]);
    expect(lossData(table)[1]).toEqual([null, null]);
  });

  it("appends live rows after the last step held, dropping any it already has, and turns layer-major norms point-major", () => {
    const norm = (s: number) => 10 + s;
    let table = tableFromResponse(stepByStep([0, 1, 2], norm));
    table = appendSteps(table, live([1, 2, 3, 4], norm));
    expect(table.step).toEqual([0, 1, 2, 3, 4]);
    expect(table.gradNorm).toEqual([10, 11, 12, 13, 14]);
    expect(table.layerNorms).toEqual([
      [10, 1],
      [11, 1],
      [12, 1],
      [13, 1],
      [14, 1],
    ]);
    expect(appendSteps(table, live([3, 4], norm))).toBe(table);
    // A REST page (point-major already) appends the same way.
    expect(appendSteps(table, stepByStep([5], norm)).layerNorms.at(-1)).toEqual([15, 1]);
    expect(lastValue([1, 2, null])).toBe(2);
  });

  it("leaves point-major layer norms as they are, even when there are as many steps as layers", () => {
    const rows = { step: [0, 1], layerNames: ["a", "b"], layerNorms: [[1, 2], [3, 4]] };
    expect(pointMajorLayerNorms(rows)).toEqual([[1, 2], [3, 4]]);
    expect(pointMajorLayerNorms({ step: [0, 1, 2], layerNames: ["a", "b"], layerNorms: [[1, 2, 3], [4, 5, 6]] })).toEqual([[1, 4], [2, 5], [3, 6]]);
  });

  it("overlays jobs on the union of their steps", () => {
    const aligned = alignSeries([
      { label: "a", step: [0, 2, 4], values: [1, 2, 3] },
      { label: "b", step: [0, 1, 2], values: [5, null, 6] },
    ]);
    expect(aligned).toEqual([
      [0, 1, 2, 4],
      [1, null, 2, 3],
      [5, null, 6, null],
    ]);
  });

  it("builds the layers × steps heatmap in log10, skipping missing and non-positive norms", () => {
    const table = tableFromResponse({ ...stepByStep([0, 1], (s) => [1000, 0][s] as number), layerNames: ["rnn", "dense"] });
    const grid = heatmapGrid(table);
    expect(grid.columns).toBe(2);
    expect([...grid.cells]).toEqual([3, Number.NaN, 0, 0]);
    expect([grid.min, grid.max]).toEqual([0, 3]);
    expect(heatColor(0)).toEqual([24, 30, 70]);
    expect(heatColor(1)).toEqual([220, 50, 40]);
    expect(heatColor(Number.NaN)).toEqual([24, 30, 70]);
  });

  it("names the most severe intervention for the jobs table", () => {
    expect(worstAction(["none", "clip", "lowerLr", "clip"])).toBe("lowerLr");
    expect(worstAction(["none", "none"])).toBeNull();
    expect(worstAction(undefined)).toBeNull();
  });
});
