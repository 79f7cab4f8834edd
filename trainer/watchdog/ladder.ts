// The mitigation ladder above clipping and skipping: lower the learning rate when spikes repeat
// and warm it back when calm, roll back when trouble persists, stop when rollbacks run out.
// Rungs 1 (clip) and 3 (skip) are decided per step in watchdog.ts; this file keeps the counters
// that make the ladder climb and descend across steps.
import type { WatchdogConfig } from "./config.ts";
import { fmt } from "./stats.ts";

export interface LadderState {
  /** Factor on the scheduled learning rate (1 = unchanged). */
  lrScale: number;
  /** Steps with a spike, within the longest counting window. */
  spikeSteps: number[];
  /** Skipped steps, within the rollback window. */
  skipSteps: number[];
  lastSpikeStep: number | null;
  /** First step of the current trouble episode; null when calm. An episode ends after rollback.windowSteps calm steps. */
  troubleStart: number | null;
  lastTroubleStep: number | null;
  /** No lowering or restoring before this step. */
  cooldownUntil: number | null;
  /** The warm-back in progress: from which step, starting at which scale. */
  restore: { startStep: number; fromScale: number } | null;
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
  lastSpikeStep: null,
  troubleStart: null,
  lastTroubleStep: null,
  cooldownUntil: null,
  restore: null,
  rollbacksUsed: 0,
  skipBatches: [],
  lastRollback: null,
});

export interface LadderInput {
  step: number;
  /** The scheduled learning rate of this step (before lrScale). */
  lr: number;
  /** A detector that counts for the ladder fired. */
  spike: boolean;
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

export function climbLadder(config: WatchdogConfig["ladder"], before: LadderState, input: LadderInput): LadderOutcome {
  const { step } = input;
  const { lowerLr, rollback, stop } = config;
  const events: LadderEvent[] = [];
  const trouble = input.spike || input.skipped;
  const ladder: LadderState = { ...before };

  if (ladder.troubleStart !== null && ladder.lastTroubleStep !== null && step - ladder.lastTroubleStep >= rollback.windowSteps) {
    ladder.troubleStart = null;
  }
  if (trouble) {
    ladder.troubleStart ??= step;
    ladder.lastTroubleStep = step;
  }
  const countWindow = Math.max(lowerLr.windowSteps, rollback.windowSteps);
  ladder.spikeSteps = [...inWindow(ladder.spikeSteps, step, countWindow), ...(input.spike ? [step] : [])];
  ladder.skipSteps = [...inWindow(ladder.skipSteps, step, rollback.windowSteps), ...(input.skipped ? [step] : [])];
  if (input.spike) ladder.lastSpikeStep = step;

  // Rungs 4 and 5: trouble that clipping, skipping and a lower LR did not end.
  if (trouble && (rollback.enabled || stop.enabled)) {
    const spikes = inWindow(ladder.spikeSteps, step, rollback.windowSteps).length;
    const skips = ladder.skipSteps.length;
    if (spikes >= rollback.afterSpikes || skips >= rollback.afterSkips) {
      const troubleStart = ladder.troubleStart ?? step;
      // Trouble that resumes right after the batches the last rollback skipped is the same
      // trouble: it began where that one did, so roll back as far again.
      const resumed = ladder.lastRollback !== null && troubleStart - ladder.lastRollback.to <= rollback.windowSteps && troubleStart > ladder.lastRollback.to;
      const rollbackBefore = resumed && ladder.lastRollback ? Math.min(ladder.lastRollback.before, troubleStart) : troubleStart;
      const evidence = {
        spikesInWindow: spikes,
        skipsInWindow: skips,
        windowSteps: rollback.windowSteps,
        afterSpikes: rollback.afterSpikes,
        afterSkips: rollback.afterSkips,
        troubleStart,
        maxRollbacks: rollback.enabled ? rollback.maxRollbacks : 0,
      };
      const why = `${spikes} spikes and ${skips} skipped steps in the last ${rollback.windowSteps} steps (limits ${rollback.afterSpikes} and ${rollback.afterSkips}), trouble since step ${troubleStart}; this step: ${input.summary}`;
      if (rollback.enabled && ladder.rollbacksUsed < rollback.maxRollbacks) {
        const skipBatches = [...ladder.skipBatches, { from: troubleStart, to: step }];
        const rolled: LadderState = {
          ...ladder,
          rollbacksUsed: ladder.rollbacksUsed + 1,
          skipBatches,
          lastRollback: { before: rollbackBefore, to: step },
          spikeSteps: [],
          skipSteps: [],
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
      if (stop.enabled) {
        const explanation = rollback.enabled
          ? `diverged at step ${step}: ${why}; all ${rollback.maxRollbacks} rollbacks are used`
          : `diverged at step ${step}: ${why}; rollbacks are off`;
        events.push({ kind: "diverged", severity: "critical", message: explanation, detail: { ...evidence, rollbacksUsed: ladder.rollbacksUsed } });
        return { ladder, lowered: false, rollbackBefore: null, stop: explanation, events };
      }
    }
  }

  // Rung 2: lower the LR when spikes repeat, with a cool-down; warm it back once calm.
  let lowered = false;
  const cooled = ladder.cooldownUntil === null || step >= ladder.cooldownUntil;
  if (lowerLr.enabled && input.spike && cooled && ladder.lrScale > lowerLr.minScale) {
    const spikes = inWindow(ladder.spikeSteps, step, lowerLr.windowSteps).length;
    if (spikes >= lowerLr.spikes) {
      const scaleBefore = ladder.lrScale;
      ladder.lrScale = Math.max(lowerLr.minScale, scaleBefore * lowerLr.factor);
      ladder.cooldownUntil = step + lowerLr.cooldownSteps;
      ladder.restore = null;
      lowered = true;
      events.push({
        kind: "lrLowered",
        severity: "warning",
        message: `learning rate lowered from ${fmt(input.lr * scaleBefore)} to ${fmt(input.lr * ladder.lrScale)} after ${spikes} spikes in the last ${lowerLr.windowSteps} steps; this step: ${input.summary}`,
        detail: {
          lrBefore: input.lr * scaleBefore,
          lrAfter: input.lr * ladder.lrScale,
          scaleBefore,
          scaleAfter: ladder.lrScale,
          spikesInWindow: spikes,
          windowSteps: lowerLr.windowSteps,
          cooldownUntil: ladder.cooldownUntil,
        },
      });
    }
  }
  if (trouble && ladder.restore !== null) {
    ladder.restore = null; // the warm-back pauses at its current scale and starts again after the next calm
  }
  const calm = ladder.lastSpikeStep === null || step - ladder.lastSpikeStep >= lowerLr.calmSteps;
  if (lowerLr.enabled && !trouble && ladder.lrScale < 1 && calm && cooled) {
    if (ladder.restore === null) {
      ladder.restore = { startStep: step, fromScale: ladder.lrScale };
      events.push({
        kind: "lrRestoreStarted",
        severity: "info",
        message: `no spike for ${ladder.lastSpikeStep === null ? "ever" : step - ladder.lastSpikeStep} steps: warming the learning rate back from ${fmt(input.lr * ladder.lrScale)} to ${fmt(input.lr)} over ${lowerLr.restoreSteps} steps (${lowerLr.restoreShape})`,
        detail: { scaleBefore: ladder.lrScale, lrBefore: input.lr * ladder.lrScale, restoreSteps: lowerLr.restoreSteps, shape: lowerLr.restoreShape, calmSteps: lowerLr.calmSteps },
      });
    }
    const { startStep, fromScale } = ladder.restore;
    const progress = (step - startStep + 1) / lowerLr.restoreSteps;
    if (progress >= 1) {
      ladder.lrScale = 1;
      ladder.restore = null;
      events.push({
        kind: "lrRestored",
        severity: "info",
        message: `learning rate restored to the schedule (${fmt(input.lr)})`,
        detail: { scaleBefore: fromScale, scaleAfter: 1, lrAfter: input.lr, restoreSteps: lowerLr.restoreSteps },
      });
    } else {
      const eased = lowerLr.restoreShape === "cosine" ? (1 - Math.cos(Math.PI * progress)) / 2 : progress;
      ladder.lrScale = fromScale + (1 - fromScale) * eased;
    }
  }
  return { ladder, lowered, rollbackBefore: null, stop: null, events };
}

