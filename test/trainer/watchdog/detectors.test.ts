// Each detector alone (the other detectors off), on seeded synthetic series.
import { describe, expect, it } from "vitest";
import { presetConfig, resolveWatchdogConfig, type WatchdogConfig, type WatchdogSpec } from "../../../trainer/watchdog/config.ts";
import { type Decision, decide, initialState, type StepObservation, type WatchdogEvent } from "../../../trainer/watchdog/watchdog.ts";
import { calmSeries, interventions, LAYERS, run, scaleLayer, scaleNorms } from "./series.ts";

/** Everything off except what `spec` switches on. */
const only = (spec: WatchdogSpec): WatchdogConfig => resolveWatchdogConfig({ ...spec, policy: "off" });

const withSpike = (series: StepObservation[], at: number, change: (obs: StepObservation) => StepObservation) =>
  series.map((obs, i) => (i === at ? change(obs) : obs));

const detectorsOf = (d: { events: { detail: Record<string, unknown> }[] }) =>
  d.events.flatMap((e) => ((e.detail.findings as { detector: string }[] | undefined) ?? []).map((f) => f.detector));

/** The first event's first finding, as numbers. */
const firstFinding = (d: Decision | undefined) => ((d?.events[0]?.detail.findings ?? []) as Record<string, number>[])[0] ?? {};

/** Layer names listed in an event's detail. */
const layerNamesOf = (event: WatchdogEvent | undefined) => ((event?.detail.layers ?? []) as { layer: string }[]).map((l) => l.layer);

/** numpy.percentile with linear interpolation, on a copy. */
function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (rank - lo);
}

function meanStd(values: readonly number[]) {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return { mean, std: Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length) };
}

const nanStep = (obs: StepObservation): StepObservation => ({ ...obs, loss: Number.NaN, gradNorm: Number.NaN, layerNorms: obs.layerNorms.map(() => Number.NaN) });

describe("trust region", () => {
  const config = only({ detectors: { trustRegion: { enabled: true } }, ladder: { clip: { enabled: true } } });
  /** A run whose gradient is 1e4 times too large from its very first step. */
  const exploding = () => calmSeries(300, { seed: 5, warmupSteps: 1 }).map((o) => scaleNorms(o, 1e4));

  it("needs no history: the first step of an explosion is scaled so that the update is the ceiling (0.1 of ‖w‖)", () => {
    const series = exploding();
    const { decisions } = run(config, series);
    expect(series[0]?.updateRatio).toBeGreaterThan(10);
    expect(interventions(decisions)).toEqual(series.map((_, i) => i));
    for (const [i, d] of decisions.entries()) {
      const obs = series[i] as StepObservation;
      // The update itself is bounded (through this step's LR), not the gradient: clipping the
      // gradient would not shrink an adaptive optimizer's step.
      expect(d.clipTo).toBeNull();
      expect(d.stepScale * obs.updateRatio).toBeCloseTo(0.1, 12);
    }
    expect(decisions[0]?.events[0]).toMatchObject({ kind: "clip", detail: { findings: [{ detector: "trustRegion", maxUpdateRatio: 0.1 }] } });
  });

  it("holds the ceiling at the scheduled LR, so that a lowered LR shrinks the bounded update further", () => {
    const obs = exploding()[0] as StepObservation;
    const state = initialState(config, LAYERS);
    const lowered = { ...state, ladder: { ...state.ladder, lrScale: 0.25 } };
    // the observed ratio is at the LR in force: a quarter of the scheduled one
    const { decision } = decide(config, lowered, { ...obs, updateRatio: obs.updateRatio * 0.25 });
    expect(decision.stepScale * obs.updateRatio * 0.25).toBeCloseTo(0.1 * 0.25, 12);
  });

  it("holds the ceiling when the update-size detector has already shrunk the step", () => {
    const both = only({ detectors: { trustRegion: { enabled: true }, updateSize: { enabled: true } }, ladder: { clip: { enabled: true } } });
    // 20 calm steps teach the typical step size; then an LR 40× too high on a gradient 1000× too large.
    const series = calmSeries(21, { seed: 7 });
    const last = series[20] as StepObservation;
    series[20] = { ...scaleNorms(last, 1000), lr: last.lr * 40, updateRatio: last.updateRatio * 1000 * 40 };
    const decision = run(both, series).decisions[20] as Decision;
    expect(detectorsOf(decision).sort()).toEqual(["trustRegion", "updateSize"]);
    // Both shrink the same proposed update: the smaller factor wins, and the update is the ceiling.
    expect(decision.stepScale * (series[20] as StepObservation).updateRatio).toBeCloseTo(0.1, 12);
  });

  it("stays silent on healthy runs, on an unknown ratio, and below its ceiling", () => {
    expect(interventions(run(config, calmSeries(2000, { seed: 6 })).decisions)).toEqual([]);
    expect(interventions(run(config, exploding().map((o) => ({ ...o, updateRatio: Number.NaN }))).decisions)).toEqual([]);
    const custom = only({ detectors: { trustRegion: { enabled: true, maxUpdateRatio: 1e6 } }, ladder: { clip: { enabled: true } } });
    expect(interventions(run(custom, exploding()).decisions)).toEqual([]);
  });
});

describe("static threshold (clip_grad_norm_)", () => {
  const config = presetConfig("static");
  const small = () => calmSeries(600, { seed: 3, layerScales: [0.2, 0.15, 0.1], noise: 0.1 });

  it("clips a spike above max norm 1.0 at its step, and nothing else", () => {
    const { decisions } = run(config, withSpike(small(), 300, (o) => scaleNorms(o, 10)));
    expect(interventions(decisions)).toEqual([300]);
    expect(decisions[300]).toMatchObject({ clipTo: 1, action: "clip", skip: false });
    expect(decisions[300]?.events[0]).toMatchObject({ kind: "clip", detail: { findings: [{ detector: "staticClip", threshold: 1 }] } });
  });

  it("has no warm-up, like its source: the very first step is clipped", () => {
    const { decisions } = run(config, withSpike(small(), 0, (o) => scaleNorms(o, 10)));
    expect(decisions[0]?.clipTo).toBe(1);
  });

  it("does not skip a NaN step (its source does not) and never clips to NaN", () => {
    const { decisions } = run(config, withSpike(small(), 100, nanStep));
    expect(decisions[100]).toMatchObject({ clipTo: null, skip: false, action: "none", events: [] });
  });
});

describe("AutoClip", () => {
  const config = presetConfig("autoclip");

  it("clips at the 10th percentile of every norm seen so far, the current one included", () => {
    const series = withSpike(calmSeries(400, { seed: 4 }), 300, (o) => scaleNorms(o, 8));
    const { decisions } = run(config, series);
    const seen = series.slice(0, 301).map((o) => o.gradNorm);
    expect(decisions[300]?.clipTo).toBeCloseTo(percentile(seen, 10), 12);
    expect(decisions[300]?.events[0]?.detail.findings).toMatchObject([{ detector: "autoClip", percentile: 10, normsSeen: 301 }]);
    // By design it clips most steps (every norm above the 10th percentile): that is the source.
    const clipped = interventions(decisions).length / decisions.length;
    expect(clipped).toBeGreaterThan(0.75);
    expect(clipped).toBeLessThan(0.95);
  });

  it("respects a warm-up when one is configured", () => {
    const warm = resolveWatchdogConfig({ policy: "autoclip", detectors: { autoClip: { warmupSteps: 50 } } });
    const { decisions } = run(warm, calmSeries(100, { seed: 5 }));
    expect(interventions(decisions).filter((i) => i < 50)).toEqual([]);
    expect(interventions(decisions).filter((i) => i >= 50).length).toBeGreaterThan(25);
  });

  it("keeps a bounded sample whose percentile still tracks the full history", () => {
    const bounded = resolveWatchdogConfig({ policy: "autoclip", detectors: { autoClip: { historySize: 64 } } });
    const series = calmSeries(3000, { seed: 6 });
    const { state, decisions } = run(bounded, series);
    expect(state.autoClip.sorted).toHaveLength(64);
    expect(state.autoClip.seen).toBe(3000);
    expect(state.autoClip.sorted).toEqual([...state.autoClip.sorted].sort((a, b) => a - b));
    const threshold = decisions.at(-1)?.clipTo ?? Number.NaN;
    const rank = series.filter((o) => o.gradNorm < threshold).length / series.length;
    expect(rank).toBeGreaterThan(0.02);
    expect(rank).toBeLessThan(0.25);
  });

  it("keeps NaN out of its history and never clips to NaN", () => {
    const series = calmSeries(50, { seed: 7 });
    const before = run(config, series.slice(0, 20)).state;
    const result = decide(config, before, nanStep(series[20] as StepObservation));
    expect(result.decision).toMatchObject({ clipTo: null, skip: false, action: "none" });
    expect(result.state.autoClip).toEqual(before.autoClip);
  });
});

describe("ZClip", () => {
  const config = presetConfig("zclip");

  /** A direct transcription of the reference implementation (bluorion-com/ZClip, zscore mode). */
  function referenceZClip(norms: readonly number[], alpha = 0.97, zThr = 2.5, warmup = 25): (number | null)[] {
    const buffer: number[] = [];
    let mean = 0;
    let variance = 0;
    let ready = false;
    return norms.map((g) => {
      if (!ready) {
        buffer.push(g);
        if (buffer.length >= warmup) {
          ({ mean, std: variance } = meanStd(buffer));
          variance *= variance;
          ready = true;
        }
        return null;
      }
      const std = Math.sqrt(variance);
      const z = (g - mean) / (std + 1e-6);
      const clip = z > zThr ? mean + (zThr * std) / (z / zThr) : null;
      const kept = clip ?? g;
      mean = alpha * mean + (1 - alpha) * kept;
      variance = alpha * variance + (1 - alpha) * (kept - mean) ** 2;
      return clip;
    });
  }

  it("clips exactly where and to what the reference implementation does", () => {
    const series = withSpike(calmSeries(2000, { seed: 8 }), 1000, (o) => scaleNorms(o, 10));
    const { decisions } = run(config, series);
    const expected = referenceZClip(series.map((o) => o.gradNorm));
    expect(decisions.map((d) => d.clipTo !== null)).toEqual(expected.map((c) => c !== null));
    decisions.forEach((d, i) => {
      if (d.clipTo !== null) expect(d.clipTo).toBeCloseTo(expected[i] as number, 10);
    });
    expect(decisions[1000]).toMatchObject({ action: "clip" });
    expect(decisions[1000]?.events[0]?.detail.findings).toMatchObject([{ detector: "zClip", zThreshold: 2.5 }]);
  });

  it("with skipUpdateOnSpike (as in gradguard), keeps catching a spike every 4 steps", () => {
    const frozen = only({ detectors: { zClip: { enabled: true, zThreshold: 4.5, skipUpdateOnSpike: true } }, ladder: { clip: { enabled: true } } });
    const spikes = Array.from({ length: 100 }, (_, k) => 300 + 4 * k);
    const series = calmSeries(800, { seed: 8 }).map((o, i) => (spikes.includes(i) ? scaleNorms(o, 4) : o));
    const { decisions } = run(frozen, series);
    expect(spikes.filter((i) => decisions[i]?.action !== "clip")).toEqual([]);
    // Learning the clipped values instead (ZClip's default) lets such a train of spikes through.
    const learning = resolveWatchdogConfig({ policy: "off", detectors: { zClip: { enabled: true, zThreshold: 4.5 } }, ladder: { clip: { enabled: true } } });
    expect(interventions(run(learning, series).decisions).filter((i) => i >= 300).length).toBeLessThan(50);
  });

  it("does not clip during its 25 warm-up steps", () => {
    const early = run(config, withSpike(calmSeries(60, { seed: 9 }), 10, (o) => scaleNorms(o, 20)));
    expect(interventions(early.decisions).filter((i) => i < 25)).toEqual([]);
    const late = run(config, withSpike(calmSeries(60, { seed: 9 }), 40, (o) => scaleNorms(o, 20)));
    expect(late.decisions[40]?.action).toBe("clip");
  });

  it("does not skip NaN (its source does not) and leaves its statistics alone", () => {
    const before = run(config, calmSeries(100, { seed: 10 })).state;
    const result = decide(config, before, nanStep(calmSeries(101, { seed: 10 })[100] as StepObservation));
    expect(result.decision).toMatchObject({ clipTo: null, skip: false, action: "none" });
    expect(result.state.zClip).toEqual(before.zClip);
  });
});

describe("rolling-window outlier (OLMo)", () => {
  const config = only({ detectors: { rollingOutlier: { enabled: true } }, ladder: { clip: { enabled: true } } });

  it("clips a norm more than 6σ above the last 128 norms' mean to that threshold", () => {
    const series = withSpike(calmSeries(400, { seed: 11 }), 300, (o) => scaleNorms(o, 5));
    const { decisions } = run(config, series);
    expect(interventions(decisions)).toEqual([300]);
    const { mean, std } = meanStd(series.slice(172, 300).map((o) => o.gradNorm));
    expect(decisions[300]?.clipTo).toBeCloseTo(mean + 6 * std, 10);
    expect(decisions[300]?.events[0]?.detail.findings).toMatchObject([{ detector: "normOutlier", sigmas: 6, windowValues: 128 }]);
  });

  it("keeps outliers out of the window, so a spike every 4 steps stays visible", () => {
    const spikes = Array.from({ length: 100 }, (_, k) => 300 + 4 * k);
    const series = calmSeries(800, { seed: 11 }).map((o, i) => (spikes.includes(i) ? scaleNorms(o, 8) : o));
    expect(interventions(run(config, series).decisions).filter((i) => i >= 300)).toEqual(spikes);
  });

  it("judges only once 64 values are in the window", () => {
    const at = (step: number) => run(config, withSpike(calmSeries(100, { seed: 12 }), step, (o) => scaleNorms(o, 20))).decisions[step];
    expect(at(63)?.action).toBe("none");
    expect(at(64)?.action).toBe("clip");
  });

  it("reports a loss outlier at its step even when the norm is normal", () => {
    const series = withSpike(calmSeries(400, { seed: 13 }), 350, (o) => ({ ...o, loss: o.loss * 5 }));
    const { decisions } = run(config, series);
    const events = decisions.flatMap((d) => d.events);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ step: 350, kind: "lossSpike", severity: "warning", detail: { detector: "lossOutlier" } });
    expect(decisions[350]?.action).toBe("none"); // alone, a loss outlier only counts toward the ladder
  });

  it("keeps at most 128 values per window", () => {
    const { state } = run(config, calmSeries(500, { seed: 14 }));
    expect(state.rolling.norms.values).toHaveLength(128);
    expect(state.rolling.losses.values).toHaveLength(128);
  });
});

describe("loss blow-up", () => {
  const config = only({ detectors: { lossBlowup: { enabled: true } }, ladder: { skip: { enabled: true } } });
  const series = () => calmSeries(700, { seed: 15 });

  it("skips a loss above 10× the largest of the first 100 losses (Megatron)", () => {
    const base = series();
    const reference = Math.max(...base.slice(0, 100).map((o) => o.loss));
    const { decisions } = run(config, withSpike(base, 400, (o) => ({ ...o, loss: reference * 10.5 })));
    expect(interventions(decisions)).toEqual([400]);
    expect(decisions[400]).toMatchObject({ skip: true, action: "skip", clipTo: null });
    expect(decisions[400]?.events[0]?.detail.findings).toMatchObject([{ detector: "lossBlowup", rule: "reference", reference, factor: 10 }]);
  });

  it("does not apply the reference rule before 100 losses are seen", () => {
    const base = series();
    const { decisions } = run(config, withSpike(base, 50, (o) => ({ ...o, loss: 1000 })));
    expect(decisions[50]?.action).toBe("none");
  });

  it("reports a loss above 2× the first loss for 3 consecutive steps (Axolotl), without skipping: it belongs to the weights", () => {
    const base = series();
    const start = base[0]?.loss as number;
    const high = (o: StepObservation) => ({ ...o, loss: start * 2.2 });
    const planted = base.map((o, i) => (i >= 500 && i <= 503 ? high(o) : o));
    const { decisions } = run(config, planted);
    // Skipping would leave the weights, and so the loss, where they are: the (bounded) update
    // still applies, and the finding climbs the ladder as trouble on the loss.
    expect(interventions(decisions)).toEqual([]);
    expect(decisions.flatMap((d) => d.events).map((e) => [e.step, e.kind])).toEqual([
      [502, "lossBlowup"],
      [503, "lossBlowup"],
    ]);
    expect(decisions[502]?.events[0]?.detail).toMatchObject({ detector: "lossBlowup", rule: "start", consecutiveSteps: 3, factor: 2 });
  });
});

describe("update size", () => {
  const lrSpike = (o: StepObservation): StepObservation => ({ ...o, lr: o.lr * 40, updateRatio: o.updateRatio * 40 });

  it("catches a 40× learning-rate spike at its own step while the gradient norm is normal (gradguard)", () => {
    const base = calmSeries(700, { seed: 16 });
    const { decisions } = run(presetConfig("gradguard"), withSpike(base, 500, lrSpike));
    // Taken at the typical step size: the batch is not lost.
    expect(decisions[500]).toMatchObject({ skip: false, action: "clip" });
    expect(decisions[500]?.stepScale).toBeCloseTo(1 / 40, 1);
    // 40× the typical update would also be past the trust region's ceiling (0.32 of ‖w‖ > 0.1);
    // taken at the typical step size it is not, so only the update size acts.
    expect(detectorsOf(decisions[500] as never)).toEqual(["updateSize"]);
    const findings = (decisions[500]?.events[0]?.detail.findings ?? []) as { detector: string; jump?: number }[];
    expect(findings.find((f) => f.detector === "updateSize")?.jump).toBeCloseTo(40, 0);
    expect(decisions[499]?.action).toBe("none");
    expect(decisions[501]?.action).toBe("none");
  });

  it("scales the update back to the typical step size", () => {
    const config = only({ detectors: { updateSize: { enabled: true } }, ladder: { clip: { enabled: true } } });
    const base = calmSeries(700, { seed: 17 });
    const spiked = withSpike(base, 500, lrSpike);
    const { decisions } = run(config, spiked);
    expect(interventions(decisions)).toEqual([500]);
    const finding = firstFinding(decisions[500]);
    const obs = spiked[500] as StepObservation;
    const typicalStepSize = finding.typicalStepSize as number;
    expect(finding.threshold).toBeCloseTo(10 * typicalStepSize, 12);
    // The step size actually applied is the typical one.
    expect(((decisions[500]?.stepScale as number) * obs.lr) / (obs.weightNorm as number)).toBeCloseTo(typicalStepSize, 12);
    expect(decisions[500]?.clipTo).toBeNull();
  });

  it("waits for 10 known step sizes and ignores steps whose weight norm is unknown", () => {
    const config = only({ detectors: { updateSize: { enabled: true } }, ladder: { clip: { enabled: true } } });
    const flatLr = calmSeries(100, { seed: 18, warmupSteps: 1 });
    expect(run(config, withSpike(flatLr, 5, lrSpike)).decisions[5]?.action).toBe("none");
    expect(run(config, withSpike(flatLr, 50, lrSpike)).decisions[50]?.action).toBe("clip");
    const unknown = flatLr.map((o) => ({ ...o, updateRatio: Number.NaN, weightNorm: Number.NaN }));
    expect(interventions(run(config, withSpike(unknown, 50, (o) => ({ ...o, lr: o.lr * 40 }))).decisions)).toEqual([]);
  });

  it("keeps what it learned across steps whose weight norm is unknown", () => {
    const config = only({ detectors: { updateSize: { enabled: true } }, ladder: { clip: { enabled: true } } });
    const gaps = calmSeries(200, { seed: 18, warmupSteps: 1 }).map((o, i) => (i >= 100 && i < 110 ? { ...o, updateRatio: Number.NaN, weightNorm: undefined } : o));
    const { decisions, state } = run(config, withSpike(gaps, 150, lrSpike));
    expect(interventions(decisions)).toEqual([150]);
    expect(state.updateSize.count).toBe(189);
  });

  it("judges the step size, not the gradient: a gradient spike with the LR unchanged is left to the norm detectors", () => {
    const config = only({ detectors: { updateSize: { enabled: true } }, ladder: { skip: { enabled: true } } });
    const base = calmSeries(700, { seed: 17 });
    expect(interventions(run(config, withSpike(base, 500, (o) => scaleNorms(o, 30))).decisions)).toEqual([]);
    // heavy-tailed norms of a converging run (here up to ~10× the median every few steps)
    const heavy = base.map((o, i) => (i % 7 === 3 ? scaleNorms(o, 2 + (i % 9)) : i % 5 === 1 ? scaleNorms(o, 0.05) : o));
    expect(interventions(run(config, heavy).decisions)).toEqual([]);
  });

  it("follows a short linear LR warm-up without firing", () => {
    const config = only({ detectors: { updateSize: { enabled: true } }, ladder: { skip: { enabled: true } } });
    for (const warmupSteps of [10, 100, 1000]) {
      expect(interventions(run(config, calmSeries(1500, { seed: 19, warmupSteps })).decisions)).toEqual([]);
    }
  });
});

describe("per-layer attribution", () => {
  it.each([0, 1, 2])("names layer %i when its norm jumps", (layer) => {
    const base = calmSeries(500, { seed: 20 });
    const { decisions } = run(presetConfig("gradguard"), withSpike(base, 400, (o) => scaleLayer(o, layer, 30)));
    const event = decisions[400]?.events[0];
    expect(decisions[400]?.action).not.toBe("none");
    expect(layerNamesOf(event)[0]).toBe(LAYERS[layer]);
    expect(event?.message).toContain(`largest layer jump: ${LAYERS[layer]}`);
  });

  it("reports a small layer's jump on its own when the global norm hardly moves", () => {
    const base = calmSeries(500, { seed: 21, layerScales: [1, 1, 0.02] });
    const { decisions } = run(presetConfig("gradguard"), withSpike(base, 300, (o) => scaleLayer(o, 2, 25)));
    expect(decisions[300]?.action).toBe("none");
    expect(decisions[300]?.events).toMatchObject([{ kind: "layerSpike", severity: "warning", detail: { layers: [{ layer: "dense_2" }] } }]);
  });

  it("judges no layer during its 25 warm-up steps", () => {
    const base = calmSeries(100, { seed: 21, layerScales: [1, 1, 0.02] });
    const { decisions } = run(presetConfig("gradguard"), withSpike(base, 10, (o) => scaleLayer(o, 2, 25)));
    expect(decisions.flatMap((d) => d.events)).toEqual([]);
  });
});

describe("vanishing gradients", () => {
  const config = presetConfig("gradguard");

  it("warns once, after 50 consecutive steps, naming the layer and suggesting cures, without mitigating", () => {
    const { decisions } = run(config, calmSeries(300, { seed: 22, layerScales: [1e-5, 0.5, 1] }));
    const events = decisions.flatMap((d) => d.events);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ step: 49, kind: "vanishingGradients", severity: "warning", detail: { layers: [{ layer: "dense_0" }], lastLayer: "dense_2" } });
    for (const cure of ["ReLU", "residual", "normalization", "initialization"]) expect(events[0]?.message).toContain(cure);
    expect(interventions(decisions)).toEqual([]);
  });

  it("names every vanishing layer in one event", () => {
    const { decisions } = run(config, calmSeries(100, { seed: 23, layerScales: [1e-6, 1e-5, 1] }));
    const events = decisions.flatMap((d) => d.events);
    expect(events).toHaveLength(1);
    expect(layerNamesOf(events[0])).toEqual(["dense_0", "dense_1"]);
  });

  it("needs the steps to be consecutive", () => {
    const series = calmSeries(200, { seed: 24, layerScales: [1e-5, 0.5, 1] }).map((o, i) => (i === 40 ? scaleLayer(o, 0, 1e4) : o));
    const events = run(resolveWatchdogConfig({ detectors: { layers: { enabled: false } } }), series).decisions.flatMap((d) => d.events);
    expect(events.map((e) => [e.kind, e.step])).toEqual([["vanishingGradients", 90]]);
  });

  it("stays silent on healthy layers", () => {
    const { state, decisions } = run(config, calmSeries(300, { seed: 25 }));
    expect(decisions.some((d) => d.events.some((e) => e.kind === "vanishingGradients"))).toBe(false);
    expect(state.vanishing.counts).toEqual([0, 0, 0]);
  });
});

it("runs a detector from a state made for its layers only", () => {
  const config = presetConfig("gradguard");
  const state = initialState(config, LAYERS);
  expect(() => decide(config, state, { step: 0, loss: 1, gradNorm: 1, layerNorms: [1], lr: 0.1, updateRatio: 0.01 })).toThrow(/1 layer norms for 3 layers/);
});

describe("spike gate", () => {
  const config = only({ detectors: { zClip: { enabled: true, zThreshold: 4.5, skipUpdateOnSpike: true }, spikeGate: { enabled: true } }, ladder: { clip: { enabled: true } } });
  /** A norm spike that an adaptive optimizer absorbs: the gradient ×`factor`, its update only ×1.5. */
  const absorbed = (factor: number) => (o: StepObservation): StepObservation => ({ ...scaleNorms(o, factor), updateRatio: o.updateRatio * 1.5 });

  it("lets a norm spike that does not reach the update pass, with a warning that says so", () => {
    const { decisions } = run(config, withSpike(calmSeries(400, { seed: 40 }), 300, absorbed(10)));
    expect(interventions(decisions)).toEqual([]);
    expect(decisions[300]?.events).toEqual([
      expect.objectContaining({ kind: "normSpike", severity: "warning", detail: expect.objectContaining({ detector: "zClip", minUpdateJump: 4 }) }),
    ]);
    expect(decisions[300]?.events[0]?.message).toMatch(/absorbed: the update would be 1\.[5-9]\d*× its typical size/);
  });

  it("acts on a spike whose update moves with it (SGD), from 4× its typical size", () => {
    const { decisions } = run(config, withSpike(calmSeries(400, { seed: 40 }), 300, (o) => scaleNorms(o, 10)));
    expect(interventions(decisions)).toEqual([300]);
    expect(decisions[300]?.clipTo).not.toBeNull();
  });

  it("is open during its warm-up, and absorbed spikes still count toward lowering the LR", () => {
    const early = run(config, withSpike(calmSeries(60, { seed: 41 }), 27, absorbed(30)));
    expect(early.decisions[27]?.action).toBe("clip");
    const withLadder = only({ detectors: { zClip: { enabled: true, zThreshold: 4.5, skipUpdateOnSpike: true }, spikeGate: { enabled: true } }, ladder: { clip: { enabled: true }, lowerLr: { enabled: true } } });
    const base = calmSeries(400, { seed: 42 });
    const spiky = base.map((o, i) => (i === 300 || i === 310 || i === 320 ? absorbed(10)(o) : o));
    const { decisions } = run(withLadder, spiky);
    expect(interventions(decisions)).toEqual([320]);
    expect(decisions[320]).toMatchObject({ action: "lowerLr", clipTo: null, lrScale: 0.5 });
  });
});
