// deviceBounds: what the watchdog's state already says about the next step. Its agreement with
// `decide` on real training steps is checked in test/trainer/deferred-reads.test.ts; here, which
// bound each detector and rung gives, on synthetic series.
import { describe, expect, it } from "vitest";
import { presetConfig, resolveWatchdogConfig } from "../../../trainer/watchdog/config.ts";
import { deviceBounds } from "../../../trainer/watchdog/device-bounds.ts";
import { initialState } from "../../../trainer/watchdog/watchdog.ts";
import { calmSeries, LAYERS, run } from "./series.ts";

const NONE = Number.POSITIVE_INFINITY;

describe("deviceBounds", () => {
  it("before any step, gradguard bounds only the update (trust region) and non-finite steps", () => {
    const config = presetConfig("gradguard");
    expect(deviceBounds(config, initialState(config, LAYERS))).toEqual({
      clipTo: NONE,
      zClip: null,
      normOutlier: NONE,
      gateUpdateRatio: 0,
      updateSize: null,
      maxUpdateRatio: 0.1,
      skipAboveLoss: NONE,
      skipNonFinite: true,
    });
  });

  it("after 200 calm steps, gives each detector's threshold from the state", () => {
    const config = presetConfig("gradguard");
    const series = calmSeries(200, { seed: 3 });
    const { state } = run(config, series);
    const bounds = deviceBounds(config, state);
    const z = state.zClip;
    expect(bounds.zClip).toEqual({ mean: z.mean, std: Math.sqrt(z.variance as number), denominator: Math.sqrt(z.variance as number) + 1e-6, zThreshold: 4.5, skipZ: 25 });
    const norms = state.rolling.norms.values;
    const mean = norms.reduce((a, b) => a + b, 0) / norms.length;
    const std = Math.sqrt(norms.reduce((a, v) => a + (v - mean) ** 2, 0) / norms.length);
    expect(bounds.normOutlier).toBeCloseTo(mean + 6 * std, 10);
    expect(bounds.gateUpdateRatio).toBeCloseTo(4 * Math.exp(state.spikeGate.logUpdateRatio as number), 12);
    expect(bounds.updateSize).toEqual({ typical: Math.exp(state.updateSize.logStepSize as number), factor: 10 });
    expect(bounds.skipAboveLoss).toBeCloseTo(10 * (state.lossBlowup.referenceMax as number), 12);
    // The trust region holds at the scheduled LR: a lowered LR lowers the bound on the observed ratio.
    const lowered = { ...state, ladder: { ...state.ladder, lrScale: 0.25 } };
    expect(deviceBounds(config, lowered).maxUpdateRatio).toBeCloseTo(0.025, 12);
  });

  it("AutoClip's percentile is taken over the norms seen so far", () => {
    const config = presetConfig("autoclip");
    const { state } = run(config, calmSeries(101, { seed: 4 }));
    const sorted = [...state.autoClip.sorted];
    expect(deviceBounds(config, state).clipTo).toBeCloseTo((sorted[10] as number), 12); // 10th percentile of 101 values
    expect(deviceBounds(presetConfig("static"), initialState(presetConfig("static"), LAYERS)).clipTo).toBe(1);
  });

  it("gives no bound for a rung or detector that is off", () => {
    const noClip = resolveWatchdogConfig({ policy: "gradguard", ladder: { clip: { enabled: false } } });
    const { state } = run(noClip, calmSeries(200, { seed: 5 }));
    const bounds = deviceBounds(noClip, state);
    // Without the clip rung only skipping is left: ZClip's skip z-score still holds.
    expect(bounds).toMatchObject({ clipTo: NONE, normOutlier: NONE, updateSize: null, maxUpdateRatio: NONE, skipNonFinite: true });
    expect(bounds.zClip).toMatchObject({ zThreshold: NONE, skipZ: 25 });
    const noSkip = resolveWatchdogConfig({ policy: "gradguard", ladder: { skip: { enabled: false } } });
    const skipless = deviceBounds(noSkip, run(noSkip, calmSeries(200, { seed: 5 })).state);
    expect(skipless).toMatchObject({ skipAboveLoss: NONE, zClip: { skipZ: NONE } });
    const off = presetConfig("off");
    expect(deviceBounds(off, run(off, calmSeries(200, { seed: 5 })).state)).toMatchObject({ clipTo: NONE, zClip: null, maxUpdateRatio: NONE, skipNonFinite: false });
  });
});
