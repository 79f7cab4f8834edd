// The mitigation ladder above clipping and skipping: lower the learning rate when spikes repeat
// and warm it back when calm, roll back when trouble persists that clipping and a lower LR do
// not contain, stop when rollbacks run out and the loss diverges.
// Rungs 1 (clip) and 3 (skip) are decided per step in watchdog.ts; this file keeps the counters
// that make the ladder climb and descend across steps.
import type { WatchdogConfig } from "./config.ts";
import { fmt } from "./stats.ts";

export interface LadderState {
  /** Factor on the scheduled learning rate (1 = unchanged). */
  lrScale: number;
  /** Applied (clipped or reported) steps with a spike of any kind, the trust region's included, within the longest counting window: rung 2. */
  spikeSteps: number[];
  /** Skipped steps, within the longest counting window: rungs 2 and 4. */
  skipSteps: number[];
  /** Steps with a spike other than the trust region's, within the rollback window: rung 4 once the LR is at its floor. */
  troubleSteps: number[];
  /** Steps with a finding on the loss (non-finite, blow-up, outlier), within the rollback window: rung 4 at any LR. */
  lossSteps: number[];
  lastSpikeStep: number | null;
  /** First step of the current trouble episode; null when calm. An episode ends after rollback.windowSteps calm steps. */
  troubleStart: number | null;
  lastTroubleStep: number | null;
  /** No lowering or restoring before this step. */
  cooldownUntil: number | null;
  /** The warm-back in progress: from which step, starting at which scale. */
  restore: { startStep: number; fromScale: number } | null;
  /**
   * Highest scale a warm-back returns to (1: the schedule). Trouble while warming back means
   * the scale reached is as high as this run bears for now: the LR that was lowered for it was
   * too high, not unlucky (Adam without warm-up, an LR that only fit a smaller loss).
   */
  ceiling: number;
  rollbacksUsed: number;
  /** Step ranges (inclusive) whose batches the trainer must not train on again. */
  skipBatches: { from: number; to: number }[];
  /** The last rollback: to before which step, and the last step whose batch it skipped. */
  lastRollback: { before: number; to: number } | null;
}

export const initialLadder = (): LadderState => ({
  lrScale: 1,
  spikeSteps: [],
  skipSteps: [],
  troubleSteps: [],
  lossSteps: [],
  lastSpikeStep: null,
  troubleStart: null,
  lastTroubleStep: null,
  cooldownUntil: null,
  restore: null,
  ceiling: 1,
  rollbacksUsed: 0,
  skipBatches: [],
  lastRollback: null,
});

export interface LadderInput {
  step: number;
  /** The scheduled learning rate of this step (before lrScale). */
  lr: number;
  /** A detector that counts for the ladder fired (rung 2: lower the LR; no warm-back). */
  spike: boolean;
  /** A spike other than the trust region's: it starts or continues a trouble episode. */
  escalating: boolean;
  /** A finding on the loss (non-finite, blow-up, outlier): clipping cannot contain what already happened. */
  lossTrouble: boolean;
  /** The loss is non-finite or blown up: the only evidence that may stop the job. */
  diverging: boolean;
  /** The step is skipped (rung 3, or non-finite). */
  skipped: boolean;
  /** The findings in words, for the explanations. */
  summary: string;
}

export interface LadderEvent {
  kind: "lrLowered" | "lrRestoreStarted" | "lrRestored" | "rollback" | "diverged";
  severity: "info" | "warning" | "critical";
  message: string;
  detail: Record<string, unknown>;
}

export interface LadderOutcome {
  ladder: LadderState;
  lowered: boolean;
  rollbackBefore: number | null;
  stop: string | null;
  events: LadderEvent[];
}

const inWindow = (steps: readonly number[], step: number, window: number) => steps.filter((s) => s > step - window && s <= step);

/**
 * The steps still in the window, plus `step` if `add`. Most steps drop nothing and add nothing:
 * the array itself is returned then (state arrays are never modified, so sharing is safe).
 */
function windowed(steps: readonly number[], step: number, window: number, add: boolean): number[] {
  const all = steps.every((s) => s > step - window && s <= step);
  if (all && !add) return steps as number[];
  const kept = all ? steps.slice() : inWindow(steps, step, window);
  if (add) kept.push(step);
  return kept;
}

export function climbLadder(config: WatchdogConfig["ladder"], before: LadderState, input: LadderInput): LadderOutcome {
  const { step } = input;
  const { lowerLr, rollback, stop } = config;
  const events: LadderEvent[] = [];
  // Trouble episodes (and the rollback target) are made of the findings a rollback may answer;
  // the trust region's routine bound on an intrinsically large gradient is not one of them.
  const trouble = input.escalating || input.skipped;
  const ladder: LadderState = { ...before };

  if (ladder.troubleStart !== null && ladder.lastTroubleStep !== null && step - ladder.lastTroubleStep >= rollback.windowSteps) {
    ladder.troubleStart = null;
  }
  if (trouble) {
    ladder.troubleStart ??= step;
    ladder.lastTroubleStep = step;
  }
  const countWindow = Math.max(lowerLr.windowSteps, rollback.windowSteps);
  // A state saved before troubleSteps and lossSteps existed has neither.
  ladder.spikeSteps = windowed(ladder.spikeSteps, step, countWindow, input.spike && !input.skipped);
  ladder.skipSteps = windowed(ladder.skipSteps, step, countWindow, input.skipped);
  ladder.troubleSteps = windowed(ladder.troubleSteps ?? [], step, rollback.windowSteps, input.escalating);
  ladder.lossSteps = windowed(ladder.lossSteps ?? [], step, rollback.windowSteps, input.lossTrouble);
  if (input.spike) ladder.lastSpikeStep = step;

  // Rungs 4 and 5: trouble that clipping, skipping and a lower LR did not end. Norm trouble
  // (spikes that clipping bounds, outliers that skipping keeps out) counts only once the LR is
  // at its floor: clipping and a lower LR are the remedy for it, and rolling back would throw
  // away the progress they protect. Trouble on the loss counts at any LR.
  const atFloor = !lowerLr.enabled || ladder.lrScale <= lowerLr.minScale;
  if (trouble && (rollback.enabled || stop.enabled)) {
    const spikes = ladder.troubleSteps.filter((s) => atFloor || ladder.lossSteps.includes(s)).length;
    const skips = inWindow(ladder.skipSteps, step, rollback.windowSteps).filter((s) => atFloor || ladder.lossSteps.includes(s)).length;
    if (spikes >= rollback.afterSpikes || skips >= rollback.afterSkips) {
      const troubleStart = ladder.troubleStart ?? step;
      // Trouble that resumes right after the batches the last rollback skipped is the same
      // trouble: it began where that one did, so roll back as far again.
      const resumed = ladder.lastRollback !== null && troubleStart - ladder.lastRollback.to <= rollback.windowSteps && troubleStart > ladder.lastRollback.to;
      const rollbackBefore = resumed && ladder.lastRollback ? Math.min(ladder.lastRollback.before, troubleStart) : troubleStart;
      const evidence = {
        spikesInWindow: spikes,
        skipsInWindow: skips,
        lossTroubleInWindow: ladder.lossSteps.length,
        lrAtFloor: atFloor,
        windowSteps: rollback.windowSteps,
        afterSpikes: rollback.afterSpikes,
        afterSkips: rollback.afterSkips,
        troubleStart,
        maxRollbacks: rollback.enabled ? rollback.maxRollbacks : 0,
      };
      const counted = atFloor ? "" : " on the loss (the LR is above its floor, so norm trouble does not count yet)";
      const why = `${spikes} spikes and ${skips} skipped steps${counted} in the last ${rollback.windowSteps} steps (limits ${rollback.afterSpikes} and ${rollback.afterSkips}), trouble since step ${troubleStart}; this step: ${input.summary}`;
      if (rollback.enabled && ladder.rollbacksUsed < rollback.maxRollbacks) {
        const skipBatches = [...ladder.skipBatches, { from: troubleStart, to: step }];
        const rolled: LadderState = {
          ...ladder,
          rollbacksUsed: ladder.rollbacksUsed + 1,
          skipBatches,
          lastRollback: { before: rollbackBefore, to: step },
          spikeSteps: [],
          skipSteps: [],
          troubleSteps: [],
          lossSteps: [],
          troubleStart: null,
          lastTroubleStep: null,
          restore: null,
        };
        events.push({
          kind: "rollback",
          severity: "critical",
          message: `rolling back to the last checkpoint before step ${rollbackBefore} and skipping the batches of steps ${troubleStart}–${step} (rollback ${rolled.rollbacksUsed} of ${rollback.maxRollbacks})${resumed ? ` (the trouble resumed right after the batches skipped up to step ${ladder.lastRollback?.to})` : ""}: ${why}`,
          detail: { ...evidence, rollbackBefore, resumed, skipBatches: { from: troubleStart, to: step }, rollbacksUsed: rolled.rollbacksUsed },
        });
        return { ladder: rolled, lowered: false, rollbackBefore, stop: null, events };
      }
      // Out of rollbacks, only a loss that is non-finite or blown up at this very step stops
      // the job; anything else is still bounded by clipping, skipping and the lowered LR.
      if (stop.enabled && input.diverging) {
        const explanation = rollback.enabled
          ? `diverged at step ${step}: ${why}; all ${rollback.maxRollbacks} rollbacks are used`
          : `diverged at step ${step}: ${why}; rollbacks are off`;
        events.push({ kind: "diverged", severity: "critical", message: explanation, detail: { ...evidence, rollbacksUsed: ladder.rollbacksUsed } });
        return { ladder, lowered: false, rollbackBefore: null, stop: explanation, events };
      }
    }
  }

  // Rung 2: lower the LR when applied spikes repeat, or skipped steps persist, with a cool-down;
  // warm it back once calm. The two are counted apart, skips against a higher count: a skipped
  // update never reached the weights, so bad batches and a short LR spike say nothing about the
  // LR, while skips that go on (an LR that stays too high, a norm that stays out of range) mean
  // the LR no longer fits, and lowering it is what lets the updates through again.
  let lowered = false;
  const cooled = ladder.cooldownUntil === null || step >= ladder.cooldownUntil;
  if (lowerLr.enabled && (input.spike || input.skipped) && cooled && ladder.lrScale > lowerLr.minScale) {
    const spikes = inWindow(ladder.spikeSteps, step, lowerLr.windowSteps).length;
    const skips = inWindow(ladder.skipSteps, step, lowerLr.windowSteps).length;
    if (spikes >= lowerLr.spikes || skips >= lowerLr.skips) {
      const scaleBefore = ladder.lrScale;
      ladder.lrScale = Math.max(lowerLr.minScale, scaleBefore * lowerLr.factor);
      if (ladder.restore !== null || ladder.ceiling < 1) ladder.ceiling = Math.min(ladder.ceiling, ladder.lrScale);
      ladder.cooldownUntil = step + lowerLr.cooldownSteps;
      ladder.restore = null;
      lowered = true;
      const what = spikes >= lowerLr.spikes ? `${spikes} bounded spikes` : `${skips} skipped steps`;
      events.push({
        kind: "lrLowered",
        severity: "warning",
        message: `learning rate lowered from ${fmt(input.lr * scaleBefore)} to ${fmt(input.lr * ladder.lrScale)} after ${what} in the last ${lowerLr.windowSteps} steps; this step: ${input.summary}`,
        detail: {
          lrBefore: input.lr * scaleBefore,
          lrAfter: input.lr * ladder.lrScale,
          scaleBefore,
          scaleAfter: ladder.lrScale,
          spikesInWindow: spikes,
          skipsInWindow: skips,
          windowSteps: lowerLr.windowSteps,
          cooldownUntil: ladder.cooldownUntil,
        },
      });
    }
  }
  if ((input.spike || input.skipped) && ladder.restore !== null) {
    // The warm-back stops at the scale it reached, and never goes higher: see `ceiling`.
    ladder.ceiling = Math.min(ladder.ceiling ?? 1, ladder.lrScale);
    ladder.restore = null;
  }
  // A state saved before the ceiling existed has none.
  const ceiling = ladder.ceiling ?? 1;
  const calm = ladder.lastSpikeStep === null || step - ladder.lastSpikeStep >= lowerLr.calmSteps;
  if (lowerLr.enabled && !input.spike && !input.skipped && ladder.lrScale < ceiling && calm && cooled) {
    const target = ceiling === 1 ? `${fmt(input.lr)}` : `${fmt(input.lr * ceiling)} (the highest LR calm since trouble came back while warming up, ×${fmt(ceiling)} the schedule)`;
    if (ladder.restore === null) {
      ladder.restore = { startStep: step, fromScale: ladder.lrScale };
      events.push({
        kind: "lrRestoreStarted",
        severity: "info",
        message: `no spike for ${ladder.lastSpikeStep === null ? "ever" : step - ladder.lastSpikeStep} steps: warming the learning rate back from ${fmt(input.lr * ladder.lrScale)} to ${target} over ${lowerLr.restoreSteps} steps (${lowerLr.restoreShape})`,
        detail: { scaleBefore: ladder.lrScale, lrBefore: input.lr * ladder.lrScale, ceiling, restoreSteps: lowerLr.restoreSteps, shape: lowerLr.restoreShape, calmSteps: lowerLr.calmSteps },
      });
    }
    const { startStep, fromScale } = ladder.restore;
    const progress = (step - startStep + 1) / lowerLr.restoreSteps;
    if (progress >= 1) {
      ladder.lrScale = ceiling;
      ladder.restore = null;
      events.push({
        kind: "lrRestored",
        severity: "info",
        message: `learning rate restored to ${ceiling === 1 ? `the schedule (${fmt(input.lr)})` : target}`,
        detail: { scaleBefore: fromScale, scaleAfter: ceiling, lrAfter: input.lr * ceiling, restoreSteps: lowerLr.restoreSteps },
      });
    } else {
      const eased = lowerLr.restoreShape === "cosine" ? (1 - Math.cos(Math.PI * progress)) / 2 : progress;
      ladder.lrScale = fromScale + (ceiling - fromScale) * eased;
    }
  }
  return { ladder, lowered, rollbackBefore: null, stop: null, events };
}

