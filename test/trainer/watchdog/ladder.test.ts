// The gradguard mitigation ladder: climbing (clip → lower LR → skip → roll back → stop) and
// descending (the LR warmed back once calm), with each rung switchable.
import { describe, expect, it } from "vitest";
import { presetConfig, resolveWatchdogConfig, type WatchdogConfig } from "../../../trainer/watchdog/config.ts";
import { afterRollback, type Decision, decide, initialState, isBatchSkipped, type StepObservation, type WatchdogState } from "../../../trainer/watchdog/watchdog.ts";
import { calmSeries, expectSane, interventions, LAYERS, run, scaleNorms } from "./series.ts";

const gradguard = presetConfig("gradguard");
const CALM = calmSeries(3000, { seed: 31 });

/** CALM with the norms of `steps` multiplied by `factor`. */
function spiky(steps: number[], factor = 4, base: StepObservation[] = CALM): StepObservation[] {
  const set = new Set(steps);
  return base.map((o, i) => (set.has(i) ? scaleNorms(o, factor) : o));
}

const every = (from: number, count: number, gap: number) => Array.from({ length: count }, (_, k) => from + k * gap);
const actions = (decisions: Decision[], steps: number[]) => steps.map((s) => decisions[s]?.action);
const kinds = (d: Decision | undefined) => d?.events.map((e) => e.kind) ?? [];

describe("climbing", () => {
  it("clips a spike, lowers the LR when spikes repeat, and rolls back when they keep coming", () => {
    const spikes = every(300, 10, 4); // 300, 304, …, 336
    const { decisions, state } = run(gradguard, spiky(spikes).slice(0, 340));
    expect(interventions(decisions)).toEqual(spikes);
    expect(actions(decisions, spikes)).toEqual(["clip", "clip", "lowerLr", "clip", "clip", "clip", "clip", "clip", "clip", "rollback"]);
    // lowered at the third spike in 50 steps, then a cool-down of 25 steps before lowering again
    expect(decisions[308]?.lrScale).toBe(0.5);
    expect(kinds(decisions[308])).toEqual(["clip", "lrLowered"]);
    expect(decisions[308]?.events[1]?.detail).toMatchObject({ lrBefore: CALM[308]?.lr, lrAfter: (CALM[308]?.lr as number) / 2, spikesInWindow: 3, cooldownUntil: 333 });
    // the tenth spike in 50 steps: roll back to before the first one, skip its batches
    expect(decisions[336]).toMatchObject({ rollbackBefore: 300, skip: true, clipTo: null, stop: null });
    expect(kinds(decisions[336])).toEqual(["rollback"]); // the step is not clipped: the rollback replaces it
    expect(decisions[336]?.events[0]?.detail.findings).toEqual(expect.arrayContaining([expect.objectContaining({ detector: "zClip" })]));
    expect(decisions[336]?.events.find((e) => e.kind === "rollback")?.detail).toMatchObject({ rollbackBefore: 300, skipBatches: { from: 300, to: 336 }, rollbacksUsed: 1 });
    expect(state.ladder.skipBatches).toEqual([{ from: 300, to: 336 }]);
    expect(isBatchSkipped(state, 299)).toBe(false);
    expect(isBatchSkipped(state, 300)).toBe(true);
    expect(isBatchSkipped(state, 336)).toBe(true);
    expect(isBatchSkipped(state, 337)).toBe(false);
  });

  it("skips outliers too far to trust and rolls back after 3 skips in 50 steps", () => {
    const { decisions } = run(gradguard, spiky([300, 310, 320], 100).slice(0, 330));
    expect(actions(decisions, [300, 310, 320])).toEqual(["skip", "skip", "rollback"]);
    expect(decisions[300]?.events[0]?.detail.findings).toEqual(expect.arrayContaining([expect.objectContaining({ detector: "zClip", skipZThreshold: 25 })]));
    expect(decisions[320]?.rollbackBefore).toBe(300);
  });

  it("rolls back after repeated non-finite steps", () => {
    const nan = (o: StepObservation) => ({ ...o, loss: Number.NaN });
    const series = CALM.slice(0, 230).map((o, i) => ([200, 201, 202].includes(i) ? nan(o) : o));
    const { decisions } = run(gradguard, series);
    expect(actions(decisions, [200, 201, 202])).toEqual(["skip", "skip", "rollback"]);
    expect(kinds(decisions[200])).toEqual(["nonFinite"]);
  });

  it("rolls back to the checkpoint state, keeps its counters, and stops as diverged when rollbacks run out", () => {
    // A trainer in miniature: a checkpoint of the watchdog state before every 50th step; on a
    // rollback it resumes from the last checkpoint before `rollbackBefore`, drops the later
    // (abandoned) checkpoints and never trains on the skipped batches again. The trouble comes
    // back right after each skipped range.
    const checkpoints = new Map<number, WatchdogState>();
    let state = initialState(gradguard, LAYERS);
    let step = 0;
    let troubleFrom = 300;
    const rollbacks: { before: number; resumedAt: number }[] = [];
    let stopped: Decision | null = null;
    for (let guard = 0; guard < 3000 && !stopped; guard++) {
      if (isBatchSkipped(state, step)) {
        step++;
        continue;
      }
      if (step % 50 === 0) checkpoints.set(step, state);
      const spike = step >= troubleFrom && (step - troubleFrom) % 4 === 0;
      const { decision, state: next } = decide(gradguard, state, spike ? scaleNorms(CALM[step] as StepObservation, 4) : (CALM[step] as StepObservation));
      expectSane(decision);
      state = next;
      if (decision.stop !== null) {
        stopped = decision;
      } else if (decision.rollbackBefore !== null) {
        const before = decision.rollbackBefore;
        const at = Math.max(...[...checkpoints.keys()].filter((s) => s < before));
        for (const s of checkpoints.keys()) if (s > at) checkpoints.delete(s);
        const restored = checkpoints.get(at) as WatchdogState;
        state = afterRollback(gradguard, state, restored);
        expect(state.zClip).toEqual(restored.zClip);
        expect(state.rolling).toEqual(restored.rolling);
        expect(state.ladder.rollbacksUsed).toBe(rollbacks.length + 1);
        expect(state.ladder.lrScale).toBeLessThan(1); // the lowered LR survives the rollback
        rollbacks.push({ before, resumedAt: at });
        troubleFrom = (state.ladder.skipBatches.at(-1)?.to as number) + 1;
        step = at;
      } else {
        step++;
      }
    }
    // Each time the trouble resumes right after the skipped batches, so it is the same trouble:
    // every rollback goes back before step 300.
    expect(rollbacks).toEqual([
      { before: 300, resumedAt: 250 },
      { before: 300, resumedAt: 250 },
      { before: 300, resumedAt: 250 },
    ]);
    expect(state.ladder.skipBatches).toEqual([
      { from: 300, to: 336 },
      { from: 337, to: 373 },
      { from: 374, to: 410 },
    ]);
    expect(stopped).toMatchObject({ action: "stop", skip: true, rollbackBefore: null, clipTo: null });
    expect(stopped?.stop).toMatch(/^diverged at step 447: 10 spikes .*trouble since step 411.*all 3 rollbacks are used$/);
    expect(kinds(stopped ?? undefined)).toContain("diverged");
  });

  it("keeps the LR lowered through the replay until the old trouble is calmSteps behind", () => {
    const first = run(gradguard, spiky(every(300, 10, 4)).slice(0, 337));
    const checkpoint = run(gradguard, CALM.slice(0, 250)).state;
    const resumed = afterRollback(gradguard, first.state, checkpoint);
    expect(resumed.ladder).toMatchObject({ lrScale: 0.5, rollbacksUsed: 1, lastSpikeStep: 336, troubleStart: null, cooldownUntil: null });
    const replay = CALM.slice(250, 600).filter((o) => !isBatchSkipped(resumed, o.step));
    expect(replay.some((o) => o.step === 300 || o.step === 336)).toBe(false);
    const { decisions } = run(gradguard, replay, resumed);
    const byStep = new Map(replay.map((o, i) => [o.step, decisions[i]]));
    for (const [step, d] of byStep) if (step < 386) expect(d?.lrScale).toBe(0.5);
    expect(kinds(byStep.get(386))).toEqual(["lrRestoreStarted"]);
    expect(byStep.get(485)?.lrScale).toBe(1);
  });

  it("rolls back only as far as its own trouble when it starts long after the last rollback", () => {
    const { decisions, state } = run(gradguard, spiky(every(300, 10, 4)).slice(0, 340));
    const later = run(gradguard, spiky(every(500, 10, 4)).slice(340, 540), state).decisions;
    expect(later.at(-4)?.rollbackBefore).toBe(500);
    expect(decisions[336]?.rollbackBefore).toBe(300);
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
    const linear = resolveWatchdogConfig({ ladder: { lowerLr: { restoreShape: "linear" } } });
    const { decisions } = run(linear, spiky([300, 304, 308]).slice(0, 500));
    expect(decisions[382]?.lrScale).toBeCloseTo(0.625, 12);
  });

  it("pauses the warm-back at a spike and resumes from where it was", () => {
    const { decisions } = run(gradguard, spiky([300, 304, 308, 400]).slice(0, 700));
    const paused = decisions[399]?.lrScale as number;
    expect(paused).toBeGreaterThan(0.5);
    expect(decisions[400]?.lrScale).toBe(paused);
    expect(decisions[449]?.lrScale).toBe(paused);
    expect(kinds(decisions[450])).toEqual(["lrRestoreStarted"]);
    expect(decisions[450]?.events[0]?.detail.scaleBefore).toBe(paused);
    expect(decisions[549]?.lrScale).toBe(1);
  });
});

describe("each rung can be switched off", () => {
  const spikes = every(300, 10, 4);
  const with_ = (ladder: Parameters<typeof resolveWatchdogConfig>[0]): WatchdogConfig => resolveWatchdogConfig(ladder);

  it("without lowerLr the LR is never touched", () => {
    const { decisions } = run(with_({ ladder: { lowerLr: { enabled: false } } }), spiky(spikes).slice(0, 340));
    expect(decisions.every((d) => d.lrScale === 1 && !kinds(d).includes("lrLowered"))).toBe(true);
    expect(decisions[336]?.action).toBe("rollback");
  });

  it("without rollback it stops at the trouble a rollback would have answered", () => {
    const { decisions } = run(with_({ ladder: { rollback: { enabled: false } } }), spiky(spikes).slice(0, 340));
    expect(decisions[336]).toMatchObject({ action: "stop", rollbackBefore: null });
    expect(decisions[336]?.stop).toContain("rollbacks are off");
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
    const { decisions } = run(with_({ ladder: { rollback: { maxRollbacks: 0 } } }), spiky(spikes).slice(0, 340));
    expect(decisions[336]?.action).toBe("stop");
  });
});
