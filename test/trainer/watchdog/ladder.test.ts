// The gradguard mitigation ladder: climbing (clip → lower LR → skip → roll back → stop) and
// descending (the LR warmed back once calm), with each rung switchable.
import { describe, expect, it } from "vitest";
import { resolveWatchdogConfig, type WatchdogConfig, type WatchdogSpec } from "../../../trainer/watchdog/config.ts";
import { afterRollback, type Decision, decide, initialState, isBatchSkipped, type StepObservation, type WatchdogState } from "../../../trainer/watchdog/watchdog.ts";
import { calmSeries, expectSane, interventions, LAYERS, run, scaleNorms } from "./series.ts";

// The ladder on its own: the spike gate (detectors.test.ts) would absorb these tests' 4× spikes
// of an SGD-like series, which are what a healthy run's heavy tail looks like.
const gradguard = resolveWatchdogConfig({ detectors: { spikeGate: { enabled: false } } });
const CALM = calmSeries(3000, { seed: 31 });

/** CALM with the norms of `steps` multiplied by `factor`. */
function spiky(steps: number[], factor = 4, base: StepObservation[] = CALM): StepObservation[] {
  const set = new Set(steps);
  return base.map((o, i) => (set.has(i) ? scaleNorms(o, factor) : o));
}

const every = (from: number, count: number, gap: number) => Array.from({ length: count }, (_, k) => from + k * gap);
const actions = (decisions: Decision[], steps: number[]) => steps.map((s) => decisions[s]?.action);
const kinds = (d: Decision | undefined) => d?.events.map((e) => e.kind) ?? [];

/** CALM with the loss of `steps` 100 times higher: a blow-up (above 10× the reference), skipped. */
function blownUp(steps: number[], base: StepObservation[] = CALM): StepObservation[] {
  const set = new Set(steps);
  return base.map((o, i) => (set.has(i) ? { ...o, loss: o.loss * 100 } : o));
}

interface Trained {
  decisions: Decision[];
  rollbacks: { at: number; before: number; resumedAt: number }[];
  stopped: Decision | null;
  state: WatchdogState;
}

/**
 * A trainer in miniature: a checkpoint of the watchdog state before every 50th step; on a
 * rollback it resumes from the last checkpoint before `rollbackBefore`, drops the later
 * (abandoned) checkpoints and never trains on the skipped batches again. `observe` gives a step's
 * observation, knowing where the last skipped range ended (trouble that comes back right after
 * it); its update ratio is taken at the LR scale in force, as the real trainer reports it.
 */
function train(config: WatchdogConfig, observe: (step: number, resumedAfter: number | null) => StepObservation, iterations: number): Trained {
  const checkpoints = new Map<number, WatchdogState>();
  let state = initialState(config, LAYERS);
  let step = 0;
  const decisions: Decision[] = [];
  const rollbacks: Trained["rollbacks"] = [];
  let stopped: Decision | null = null;
  for (let i = 0; i < iterations && !stopped; i++) {
    if (isBatchSkipped(state, step)) {
      step++;
      continue;
    }
    if (step % 50 === 0) checkpoints.set(step, state);
    const obs = observe(step, state.ladder.skipBatches.at(-1)?.to ?? null);
    const { decision, state: next } = decide(config, state, { ...obs, updateRatio: obs.updateRatio * state.ladder.lrScale });
    expectSane(decision);
    decisions.push(decision);
    state = next;
    if (decision.stop !== null) {
      stopped = decision;
    } else if (decision.rollbackBefore !== null) {
      const before = decision.rollbackBefore;
      const at = Math.max(...[...checkpoints.keys()].filter((s) => s < before));
      for (const s of checkpoints.keys()) if (s > at) checkpoints.delete(s);
      const restored = checkpoints.get(at) as WatchdogState;
      state = afterRollback(config, state, restored);
      expect(state.zClip).toEqual(restored.zClip);
      expect(state.rolling).toEqual(restored.rolling);
      expect(state.ladder.rollbacksUsed).toBe(rollbacks.length + 1);
      rollbacks.push({ at: step, before, resumedAt: at });
      step = at;
    } else {
      step++;
    }
  }
  return { decisions, rollbacks, stopped, state };
}

/** Trouble every 4th step from `from` on, coming back right after each range a rollback skipped. */
const every4th = (from: number, trouble: (o: StepObservation) => StepObservation) => (step: number, resumedAfter: number | null) => {
  const start = resumedAfter === null ? from : resumedAfter + 1;
  const o = CALM[step] as StepObservation;
  return step >= start && (step - start) % 4 === 0 ? trouble(o) : o;
};

describe("climbing", () => {
  it("clips a spike, lowers the LR when spikes repeat, and rolls back only once the LR is at its floor", () => {
    const spikes = every(300, 39, 4); // 300, 304, …, 452
    const { decisions, state } = run(gradguard, spiky(spikes).slice(0, 460));
    expect(interventions(decisions)).toEqual(spikes);
    // lowered at the third spike in 50 steps, then once per cool-down of 25 steps, down to 1/64
    const lowered = [308, 336, 364, 392, 420, 448];
    expect(spikes.filter((s) => decisions[s]?.action === "lowerLr")).toEqual(lowered);
    expect(lowered.map((s) => decisions[s]?.lrScale)).toEqual([1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64]);
    expect(kinds(decisions[308])).toEqual(["clip", "lrLowered"]);
    expect(decisions[308]?.events[1]?.detail).toMatchObject({ lrBefore: CALM[308]?.lr, lrAfter: (CALM[308]?.lr as number) / 2, spikesInWindow: 3, cooldownUntil: 333 });
    // clipped spikes with the LR still above its floor never roll back, however many
    expect(decisions.slice(0, 452).every((d) => d.rollbackBefore === null && d.stop === null)).toBe(true);
    // at the floor, the 10 spikes in 50 steps roll back to before the first one and skip its batches
    expect(decisions[452]).toMatchObject({ action: "rollback", rollbackBefore: 300, skip: true, clipTo: null, stop: null });
    expect(kinds(decisions[452])).toEqual(["rollback"]); // the step is not clipped: the rollback replaces it
    expect(decisions[452]?.events[0]?.detail.findings).toEqual(expect.arrayContaining([expect.objectContaining({ detector: "zClip" })]));
    expect(decisions[452]?.events[0]?.detail).toMatchObject({ rollbackBefore: 300, skipBatches: { from: 300, to: 452 }, rollbacksUsed: 1, lrAtFloor: true });
    expect(state.ladder.skipBatches).toEqual([{ from: 300, to: 452 }]);
    expect(isBatchSkipped(state, 299)).toBe(false);
    expect(isBatchSkipped(state, 300)).toBe(true);
    expect(isBatchSkipped(state, 452)).toBe(true);
    expect(isBatchSkipped(state, 453)).toBe(false);
  });

  it("skips outliers too far to trust; a few of them neither lower the LR nor roll back", () => {
    const { decisions } = run(gradguard, spiky([300, 310, 320], 100).slice(0, 400));
    expect(actions(decisions, [300, 310, 320])).toEqual(["skip", "skip", "skip"]);
    expect(decisions[300]?.events[0]?.detail.findings).toEqual(expect.arrayContaining([expect.objectContaining({ detector: "zClip", skipZThreshold: 25 })]));
    expect(interventions(decisions)).toEqual([300, 310, 320]);
    expect(decisions.every((d) => d.lrScale === 1)).toBe(true);
    // with no LR to lower (rung 2 off), 3 skips in 50 steps roll back
    const noLowerLr = resolveWatchdogConfig({ detectors: { spikeGate: { enabled: false } }, ladder: { lowerLr: { enabled: false } } });
    const without = run(noLowerLr, spiky([300, 310, 320], 100).slice(0, 330)).decisions;
    expect(actions(without, [300, 310, 320])).toEqual(["skip", "skip", "rollback"]);
    expect(without[320]?.rollbackBefore).toBe(300);
  });

  it("takes every step of an LR that stays 40× too high at the typical step size, skipping no batch", () => {
    const lrSpike = (o: StepObservation) => ({ ...o, lr: o.lr * 40, updateRatio: o.updateRatio * 40 });
    const series = CALM.slice(0, 400).map((o, i) => (i >= 300 ? lrSpike(o) : o));
    const { decisions } = run(gradguard, series);
    expect(decisions.slice(0, 300).every((d) => d.action === "none")).toBe(true);
    for (const d of decisions.slice(300)) {
      expect(d).toMatchObject({ action: "clip", skip: false, rollbackBefore: null, stop: null, clipTo: null });
      expect(d.stepScale).toBeCloseTo(1 / 40, 2);
    }
    // What is left of the update is in the trust region: nothing climbs the ladder.
    expect(decisions.every((d) => d.lrScale === 1)).toBe(true);
  });

  it("lowers the LR when skips persist (10 in 50 steps), so that trouble that keeps a step from being taken does not go on forever", () => {
    // Loss outliers far beyond the rolling window, every step from 300 on: skipped each time.
    const series = CALM.slice(0, 400).map((o, i) => (i >= 300 ? { ...o, loss: o.loss * 100 } : o));
    const { decisions } = run(resolveWatchdogConfig({ detectors: { spikeGate: { enabled: false } }, ladder: { rollback: { enabled: false }, stop: { enabled: false } } }), series);
    expect(actions(decisions, every(300, 9, 1))).toEqual(new Array(9).fill("skip"));
    expect(decisions[309]).toMatchObject({ action: "skip", lrScale: 0.5 });
    expect(kinds(decisions[309])).toEqual(["skip", "lrLowered"]);
    expect(decisions[309]?.events[1]?.detail).toMatchObject({ skipsInWindow: 10 });
  });

  it("rolls back after repeated non-finite steps", () => {
    const nan = (o: StepObservation) => ({ ...o, loss: Number.NaN });
    const series = CALM.slice(0, 230).map((o, i) => ([200, 201, 202].includes(i) ? nan(o) : o));
    const { decisions } = run(gradguard, series);
    expect(actions(decisions, [200, 201, 202])).toEqual(["skip", "skip", "rollback"]);
    expect(kinds(decisions[200])).toEqual(["nonFinite"]);
  });

  it("rolls back to the checkpoint state, keeps its counters, and stops as diverged when rollbacks run out", () => {
    // The loss blows up every 4th step, and comes back right after each skipped range.
    const { rollbacks, stopped, state } = train(gradguard, every4th(300, (o) => ({ ...o, loss: o.loss * 100 })), 3000);
    // Each time the trouble resumes right after the skipped batches, so it is the same trouble:
    // every rollback goes back before step 300.
    expect(rollbacks).toEqual([
      { at: 308, before: 300, resumedAt: 250 },
      { at: 317, before: 300, resumedAt: 250 },
      { at: 326, before: 300, resumedAt: 250 },
    ]);
    expect(state.ladder.skipBatches).toEqual([
      { from: 300, to: 308 },
      { from: 309, to: 317 },
      { from: 318, to: 326 },
    ]);
    expect(stopped).toMatchObject({ action: "stop", skip: true, rollbackBefore: null, clipTo: null });
    expect(stopped?.stop).toMatch(/^diverged at step 335: .*3 skipped steps .*trouble since step 327.*loss .* is above 10× .*all 3 rollbacks are used$/);
    expect(kinds(stopped ?? undefined)).toContain("diverged");
  });

  it("keeps the LR lowered through the replay until the old trouble is calmSteps behind", () => {
    // three clipped spikes lower the LR; three blown-up losses roll back
    const first = run(gradguard, blownUp([320, 324, 328], spiky([300, 304, 308])).slice(0, 329));
    expect(first.decisions[328]).toMatchObject({ action: "rollback", rollbackBefore: 300 });
    const checkpoint = run(gradguard, CALM.slice(0, 250)).state;
    const resumed = afterRollback(gradguard, first.state, checkpoint);
    expect(resumed.ladder).toMatchObject({ lrScale: 0.5, rollbacksUsed: 1, lastSpikeStep: 328, troubleStart: null, cooldownUntil: null });
    const replay = CALM.slice(250, 600).filter((o) => !isBatchSkipped(resumed, o.step));
    expect(replay.some((o) => o.step === 300 || o.step === 328)).toBe(false);
    const { decisions } = run(gradguard, replay, resumed);
    const byStep = new Map(replay.map((o, i) => [o.step, decisions[i]]));
    for (const [step, d] of byStep) if (step < 378) expect(d?.lrScale).toBe(0.5);
    expect(kinds(byStep.get(378))).toEqual(["lrRestoreStarted"]);
    expect(byStep.get(477)?.lrScale).toBe(1);
  });

  it("rolls back only as far as its own trouble when it starts long after the last rollback", () => {
    const { decisions, state } = run(gradguard, blownUp([300, 304, 308]).slice(0, 340));
    const later = run(gradguard, blownUp([500, 504, 508]).slice(340, 540), state).decisions;
    expect(decisions[308]?.rollbackBefore).toBe(300);
    expect(later[508 - 340]?.rollbackBefore).toBe(500);
  });
});

describe("an exploding run", () => {
  /** Gradients 1e4 times too large from the very first step, with a steady loss. */
  const exploding = calmSeries(3000, { seed: 32, warmupSteps: 1 }).map((o) => scaleNorms(o, 1e4));

  it("is bounded from step 0 on, its LR lowered to the floor, and never skipped, rolled back or stopped", () => {
    const { decisions, rollbacks, stopped } = train(gradguard, (step) => exploding[step] as StepObservation, 1000);
    expect(decisions).toHaveLength(1000);
    expect(decisions[0]).toMatchObject({ action: "clip", skip: false });
    expect(decisions[0]?.events[0]?.detail.findings).toEqual([expect.objectContaining({ detector: "trustRegion" })]);
    // the update applied is the ceiling (0.1 of ‖w‖) at the scheduled LR, times the LR scale
    for (const [step, d] of decisions.entries()) {
      const obs = exploding[step] as StepObservation;
      const before = step === 0 ? 1 : (decisions[step - 1]?.lrScale as number);
      expect(d.stepScale * obs.updateRatio * d.lrScale).toBeCloseTo(0.1 * d.lrScale, 12);
      expect(d.lrScale).toBeLessThanOrEqual(before);
    }
    expect(decisions.filter((d) => d.action === "lowerLr").length).toBe(6);
    expect(decisions.findIndex((d) => d.lrScale === 1 / 64)).toBe(127); // steps 2, 27, 52, 77, 102, 127
    expect(decisions.every((d) => d.stepScale < 1 && !d.skip)).toBe(true);
    expect(rollbacks).toEqual([]);
    expect(stopped).toBeNull();
  });

  it("or with clipped norm spikes every 4th step and a stable loss, rolls back only at the LR floor, and never stops", () => {
    const spikesToo = every4th(300, (o) => scaleNorms(o, 4));
    const { decisions, rollbacks, stopped } = train(gradguard, spikesToo, 3000);
    expect(stopped).toBeNull();
    // the LR reaches its floor at the sixth lowering (step 448) before the first rollback (452)
    expect(rollbacks[0]).toEqual({ at: 452, before: 300, resumedAt: 250 });
    expect(rollbacks.length).toBeGreaterThanOrEqual(1);
    for (const d of decisions.filter((d) => d.action === "rollback")) expect(d.lrScale).toBe(1 / 64);
    expect(decisions.filter((d) => d.action === "lowerLr").length).toBe(6);
    expect(decisions.every((d) => !d.skip || d.action === "rollback")).toBe(true);
  });

  it("whose loss truly diverges still ends in a rollback, then a stop", () => {
    // from step 300 on (and again right after each skipped range) the loss and the norms grow
    // by half every step
    const diverging = (step: number, resumedAfter: number | null) => {
      const start = resumedAfter === null ? 300 : resumedAfter + 1;
      const o = CALM[step] as StepObservation;
      return step < start ? o : { ...scaleNorms(o, 1.5 ** (step - start)), loss: o.loss * 1.5 ** (step - start) };
    };
    const { rollbacks, stopped } = train(gradguard, diverging, 3000);
    // the trouble begins where the norm first stands out (step 302, 2.25× its typical value)
    expect(rollbacks.map((r) => [r.before, r.resumedAt])).toEqual([
      [302, 300],
      [302, 300],
      [302, 300],
    ]);
    expect(stopped?.action).toBe("stop");
    expect(stopped?.stop).toMatch(/^diverged at step \d+: .*all 3 rollbacks are used$/);
    const findings = stopped?.events.flatMap((e) => (e.detail.findings as { detector: string }[] | undefined) ?? []);
    expect(findings).toEqual(expect.arrayContaining([expect.objectContaining({ detector: "lossBlowup" })]));
  });
});

describe("descending", () => {
  it("restores the LR gradually (cosine) once norms are calm, after the cool-down", () => {
    const { decisions } = run(gradguard, spiky([300, 304, 308]).slice(0, 700));
    expect(decisions[308]?.lrScale).toBe(0.5);
    // calm: 50 steps since the last spike (308) → the warm-back starts at 358 and lasts 100 steps
    for (let s = 309; s < 358; s++) expect(decisions[s]?.lrScale).toBe(0.5);
    expect(kinds(decisions[358])).toEqual(["lrRestoreStarted"]);
    expect(decisions[382]?.lrScale).toBeCloseTo(0.5 + 0.5 * ((1 - Math.cos(Math.PI * 0.25)) / 2), 12);
    expect(decisions[407]?.lrScale).toBeCloseTo(0.75, 12);
    for (let s = 359; s <= 457; s++) expect(decisions[s]?.lrScale as number).toBeGreaterThanOrEqual(decisions[s - 1]?.lrScale as number);
    expect(decisions[456]?.lrScale).toBeLessThan(1);
    expect(decisions[457]?.lrScale).toBe(1);
    expect(kinds(decisions[457])).toEqual(["lrRestored"]);
    expect(interventions(decisions).filter((s) => s > 308)).toEqual([]);
    expect(decisions.slice(458).every((d) => d.lrScale === 1 && d.events.length === 0)).toBe(true);
  });

  it("restores linearly when configured", () => {
    const linear = resolveWatchdogConfig({ detectors: { spikeGate: { enabled: false } }, ladder: { lowerLr: { restoreShape: "linear" } } });
    const { decisions } = run(linear, spiky([300, 304, 308]).slice(0, 500));
    expect(decisions[382]?.lrScale).toBeCloseTo(0.625, 12);
  });

  it("stops the warm-back for good at a spike: the scale it reached is the highest the run bears", () => {
    const { decisions, state } = run(gradguard, spiky([300, 304, 308, 400]).slice(0, 700));
    const reached = decisions[399]?.lrScale as number;
    expect(reached).toBeGreaterThan(0.5);
    expect(reached).toBeLessThan(1);
    expect(decisions.slice(400).every((d) => d.lrScale === reached)).toBe(true);
    expect(decisions.slice(400).flatMap(kinds)).not.toContain("lrRestoreStarted");
    expect(state.ladder.ceiling).toBe(reached);
  });

  it("warms back only up to that ceiling after a later lowering, and lowers the ceiling with it", () => {
    // Warm-back interrupted at 400; three more spikes at 500–508 lower the LR from the ceiling.
    const { decisions, state } = run(gradguard, spiky([300, 304, 308, 400, 500, 504, 508]).slice(0, 900));
    const reached = decisions[399]?.lrScale as number;
    expect(decisions[508]?.lrScale).toBeCloseTo(reached / 2, 12);
    expect(state.ladder.ceiling).toBeCloseTo(reached / 2, 12);
    expect(decisions[899]?.lrScale).toBeCloseTo(reached / 2, 12);
  });
});

describe("each rung can be switched off", () => {
  const spikes = every(300, 10, 4);
  const with_ = (overrides: WatchdogSpec): WatchdogConfig => resolveWatchdogConfig({ ...overrides, detectors: { spikeGate: { enabled: false } } });

  it("without lowerLr the LR is never touched", () => {
    const { decisions } = run(with_({ ladder: { lowerLr: { enabled: false } } }), spiky(spikes).slice(0, 340));
    expect(decisions.every((d) => d.lrScale === 1 && !kinds(d).includes("lrLowered"))).toBe(true);
    expect(decisions[336]?.action).toBe("rollback");
  });

  it("without rollback it stops at the trouble a rollback would have answered, when the loss diverges", () => {
    const { decisions } = run(with_({ ladder: { rollback: { enabled: false } } }), blownUp([300, 304, 308]).slice(0, 340));
    expect(decisions[308]).toMatchObject({ action: "stop", rollbackBefore: null });
    expect(decisions[308]?.stop).toContain("rollbacks are off");
    // spikes that clipping bounds, with a steady loss, are not a divergence
    const clipped = run(with_({ ladder: { rollback: { enabled: false }, lowerLr: { enabled: false } } }), spiky(every(300, 100, 4)).slice(0, 700)).decisions;
    expect(clipped.every((d) => d.stop === null)).toBe(true);
    expect(clipped[696]?.action).toBe("clip");
  });

  it("without rollback and stop it keeps clipping", () => {
    const { decisions } = run(with_({ ladder: { rollback: { enabled: false }, stop: { enabled: false } } }), spiky(every(300, 20, 4)).slice(0, 380));
    expect(decisions.every((d) => d.rollbackBefore === null && d.stop === null)).toBe(true);
    expect(decisions[376]?.clipTo).not.toBeNull();
  });

  it("without clip, spikes are reported and still climb the ladder", () => {
    const { decisions } = run(with_({ ladder: { clip: { enabled: false } } }), spiky(spikes).slice(0, 340));
    expect(decisions.every((d) => d.clipTo === null)).toBe(true);
    expect(kinds(decisions[300])).toEqual(["normSpike", "normSpike"]);
    expect(decisions[300]?.action).toBe("none");
    expect(decisions[308]?.action).toBe("lowerLr");
  });

  it("without skip, an extreme outlier is clipped instead", () => {
    const { decisions } = run(with_({ ladder: { skip: { enabled: false } } }), spiky([300], 100).slice(0, 310));
    expect(decisions[300]).toMatchObject({ action: "clip", skip: false });
  });

  it("with maxRollbacks 0 the first trigger stops the job", () => {
    const { decisions } = run(with_({ ladder: { rollback: { maxRollbacks: 0 } } }), blownUp([300, 304, 308]).slice(0, 340));
    expect(decisions[308]?.action).toBe("stop");
  });
});
