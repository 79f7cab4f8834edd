// decide as a whole: healthy runs are left alone, `off` never intervenes, NaN is never applied,
// the function is pure and its state survives JSON.
import { describe, expect, it } from "vitest";
import { POLICIES, presetConfig, resolveWatchdogConfig, type WatchdogConfig } from "../../../trainer/watchdog/config.ts";
import { decide, initialState, type StepObservation, type WatchdogState } from "../../../trainer/watchdog/watchdog.ts";
import { calmSeries, deepFreeze, interventions, LAYERS, mulberry32, run, scaleLayer, scaleNorms } from "./series.ts";

const gradguard = presetConfig("gradguard");

/** A series with one of everything: norm spikes, an LR spike, a loss spike, NaN and Inf, a layer jump. */
function eventful(steps = 1200, seed = 41): StepObservation[] {
  const random = mulberry32(seed);
  return calmSeries(steps, { seed }).map((o, i) => {
    if (i % 97 === 50) return scaleNorms(o, 3 + 20 * random());
    if (i % 211 === 100) return { ...o, lr: o.lr * 40, updateRatio: o.updateRatio * 40 };
    if (i % 173 === 120) return { ...o, loss: o.loss * 8 };
    if (i % 301 === 200) return { ...o, loss: Number.NaN };
    if (i % 401 === 300) return { ...o, gradNorm: Number.POSITIVE_INFINITY, layerNorms: [Number.POSITIVE_INFINITY, 1, 1] };
    if (i % 263 === 150) return scaleLayer(o, 1, 15);
    return o;
  });
}

describe("a healthy run", () => {
  it.each([
    [1, 0.2],
    [2, 0.2],
    [3, 0.25],
    [4, 0.25],
    [5, 0.25],
  ])("is left alone by gradguard: seed %i, %f log-normal noise, 2,000 steps", (seed, noise) => {
    const { decisions } = run(gradguard, calmSeries(2000, { seed, noise }));
    const acted = interventions(decisions);
    expect(acted.length).toBeLessThanOrEqual(2000 * 0.005);
    // whatever it did was a clip: no skipped step, no LR change, no rollback
    expect(new Set(acted.map((s) => decisions[s]?.action))).toEqual(new Set(acted.length > 0 ? ["clip"] : []));
    expect(decisions.every((d) => d.lrScale === 1)).toBe(true);
    expect(decisions.flatMap((d) => d.events).length).toBeLessThanOrEqual(2000 * 0.005);
  });
});

describe("off", () => {
  it("never intervenes and never reports, whatever happens", () => {
    const { decisions } = run(presetConfig("off"), [...eventful(), ...calmSeries(200, { layerScales: [1e-6, 1e-5, 1] })]);
    expect(decisions.every((d) => d.action === "none" && d.events.length === 0 && d.clipTo === null && !d.skip && d.lrScale === 1)).toBe(true);
  });
});

describe("non-finite values", () => {
  const history = () => run(gradguard, calmSeries(300, { seed: 42 })).state;
  const next = calmSeries(301, { seed: 42 })[300] as StepObservation;

  it.each([
    ["a NaN loss", { ...next, loss: Number.NaN }, []],
    ["an infinite gradient norm", { ...next, gradNorm: Number.POSITIVE_INFINITY }, []],
    ["a NaN in one layer's norm", { ...next, gradNorm: Number.NaN, layerNorms: [0.5, Number.NaN, 0.3] }, ["dense_1"]],
    ["a -Infinity loss", { ...next, loss: Number.NEGATIVE_INFINITY }, []],
  ])("skips %s under gradguard, never clips to NaN, and keeps it out of every history", (_what, obs, layers) => {
    const before = history();
    const { decision, state } = decide(gradguard, before, obs);
    expect(decision).toMatchObject({ skip: true, clipTo: null, action: "skip" });
    expect(decision.events[0]).toMatchObject({ kind: "nonFinite", detail: { findings: [{ detector: "nonFinite", nonFiniteLayers: layers }] } });
    expect(JSON.parse(JSON.stringify(decision.events))).toEqual(decision.events);
    const { ladder: _l1, ...detectorsBefore } = before;
    const { ladder: _l2, ...detectorsAfter } = state;
    expect(detectorsAfter).toEqual(detectorsBefore);
  });

  it("skips a non-finite step even with the skip rung off: no rung makes a NaN update safe", () => {
    const noSkip = resolveWatchdogConfig({ ladder: { skip: { enabled: false } } });
    const { decision } = decide(noSkip, run(noSkip, calmSeries(300, { seed: 42 })).state, { ...next, loss: Number.NaN });
    expect(decision).toMatchObject({ skip: true, clipTo: null, action: "skip" });
  });

  it.each(["static", "autoclip", "zclip"] as const)("is passed through untouched by %s, like its source", (policy) => {
    const config = presetConfig(policy);
    const before = run(config, calmSeries(300, { seed: 42 })).state;
    const { decision } = decide(config, before, { ...next, gradNorm: Number.NaN, loss: Number.NaN });
    expect(decision).toMatchObject({ skip: false, clipTo: null, action: "none", events: [] });
  });
});

describe("purity and state", () => {
  const everything = resolveWatchdogConfig({
    detectors: { staticClip: { enabled: true, maxNorm: 3 }, autoClip: { enabled: true, historySize: 64, percentile: 90 } },
  });

  it("never modifies its input state or observation", () => {
    let state = initialState(everything, LAYERS);
    for (const obs of eventful(800)) {
      deepFreeze(state);
      const copy = JSON.stringify(state);
      const result = decide(everything, state, deepFreeze(obs));
      expect(JSON.stringify(state)).toBe(copy);
      expect(result.state).not.toBe(state);
      state = result.state;
    }
  });

  const configs: [string, WatchdogConfig][] = [
    ["gradguard", gradguard],
    ["gradguard with static clipping and a small AutoClip reservoir", everything],
    ...POLICIES.filter((p) => p !== "gradguard").map((p): [string, WatchdogConfig] => [p, presetConfig(p)]),
  ];

  it.each(configs)("%s: a JSON round trip mid-series gives identical decisions afterwards", (_name, config) => {
    const series = eventful(1200);
    const whole = run(config, series);
    const firstHalf = run(config, series.slice(0, 600));
    const roundTripped = JSON.parse(JSON.stringify(firstHalf.state)) as WatchdogState;
    expect(roundTripped).toEqual(firstHalf.state); // nothing was lost: no NaN, Infinity or undefined
    const secondHalf = run(config, series.slice(600), roundTripped);
    expect(secondHalf.decisions).toEqual(whole.decisions.slice(600));
    expect(secondHalf.state).toEqual(whole.state);
  });

  it("continues from a state saved before the trust region (no loss or trouble counters, an update-size mean in other units)", () => {
    const series = calmSeries(900, { seed: 45 });
    const saved = JSON.parse(JSON.stringify(run(gradguard, series.slice(0, 600)).state));
    const { troubleSteps: _t, lossSteps: _l, ...ladder } = saved.ladder;
    const old = { ...saved, ladder, updateSize: { count: saved.updateSize.count, logMean: Math.log(1e-4) } } as WatchdogState;
    const { decisions, state } = run(gradguard, series.slice(600), old);
    const uninterrupted = run(gradguard, series).decisions.slice(600);
    expect(decisions.map((d) => d.action)).toEqual(uninterrupted.map((d) => d.action));
    expect(state.updateSize.logStepSize).not.toBeNull();
    expect(state.ladder).toMatchObject({ troubleSteps: [], lossSteps: [] });
  });

  it("stores only finite numbers, even after overflowing observations", () => {
    const huge = calmSeries(200, { seed: 43 }).map((o, i) => (i % 7 === 3 ? { ...o, gradNorm: 1e300, layerNorms: [1e300, 1e300, 1e300], loss: 1e300, updateRatio: 1e300 } : o));
    const { state } = run(everything, huge);
    const numbers: number[] = [];
    JSON.stringify(state, (_key, value) => {
      if (typeof value === "number") numbers.push(value);
      return value;
    });
    expect(numbers.every(Number.isFinite)).toBe(true);
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);
  });

  it("keeps decide cheap: a long run stays bounded in state and time", () => {
    const series = calmSeries(20_000, { seed: 44 });
    let state = initialState(gradguard, LAYERS);
    const started = performance.now();
    for (const obs of series) state = decide(gradguard, state, obs).state;
    const perStepMs = (performance.now() - started) / series.length;
    expect(perStepMs).toBeLessThan(0.5);
    expect(JSON.stringify(state).length).toBeLessThan(20_000);
  });
});
