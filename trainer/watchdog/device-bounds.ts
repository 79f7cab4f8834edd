// What the watchdog can decide about a step BEFORE seeing its numbers: the thresholds its state
// already holds. On a GPU, reading a step's numbers back to the host before its update stalls
// the device (×3.4 on the reference MLP, DESIGN.md); instead the trainer applies these bounds
// on the device, as PyTorch's clip_grad_norm_ applies max_norm without a read, and hands the
// numbers to `decide` a few steps later. Each field mirrors one rule of `decide`, so that with
// the state `decide` has at that step the device does what `decide` would do to the step's own
// update (tested), with one difference: AutoClip's percentile leaves out the step's own norm.
import type { WatchdogConfig } from "./config.ts";
import { ZCLIP_EPSILON } from "./detectors.ts";
import { meanStd, percentileOfSorted, stdFloor } from "./stats.ts";
import type { WatchdogState } from "./watchdog.ts";

const NONE = Number.POSITIVE_INFINITY;

/** Thresholds on a step's loss, gradient norm g and update ratio r; Infinity where there is none. */
export interface DeviceBounds {
  /** Clip g to this whenever g exceeds it (staticClip; AutoClip's percentile of the norms seen). */
  clipTo: number;
  /**
   * ZClip's running mean and deviation, z = (g − mean)/denominator with denominator = std + ε:
   * above zThreshold, g is clipped to mean + (zThreshold²/z)·std; above skipZ the step is skipped.
   */
  zClip: { mean: number; std: number; denominator: number; zThreshold: number; skipZ: number } | null;
  /** The rolling window's norm outlier threshold: g above it is clipped to it. */
  normOutlier: number;
  /** ZClip and the norm outlier act only when r ≥ this (the spike gate; 0: always). */
  gateUpdateRatio: number;
  /**
   * The update-size detector: a step size s = lr·lrScale/‖w‖ above factor × typical is taken at
   * the typical size (the update scaled by typical/s).
   */
  updateSize: { typical: number; factor: number } | null;
  /** The trust region: the update is scaled so that r·stepScale ≤ this (r at the LR in force). */
  maxUpdateRatio: number;
  /** Skip the step when its loss exceeds this (a loss blow-up against the reference). */
  skipAboveLoss: number;
  /** Skip a step whose loss or gradient norm is not finite. */
  skipNonFinite: boolean;
}

/** The bounds `decide` would apply to the next step, from `state`. Pure. */
export function deviceBounds(config: WatchdogConfig, state: WatchdogState): DeviceBounds {
  const det = config.detectors;
  const rungs = config.ladder;
  const clip = rungs.clip.enabled;
  const skipZ = rungs.skip.enabled ? rungs.skip.zThreshold : NONE;

  let clipTo = NONE;
  if (clip && det.staticClip.enabled) clipTo = det.staticClip.maxNorm;
  const auto = state.autoClip;
  if (clip && det.autoClip.enabled && auto.seen + 1 > det.autoClip.warmupSteps && auto.sorted.length > 0) {
    clipTo = Math.min(clipTo, percentileOfSorted(auto.sorted, det.autoClip.percentile));
  }

  const z = state.zClip;
  const zClip =
    det.zClip.enabled && z.mean !== null && z.variance !== null && (clip || Number.isFinite(skipZ))
      ? { mean: z.mean, std: Math.sqrt(z.variance), denominator: Math.sqrt(z.variance) + ZCLIP_EPSILON, zThreshold: clip ? det.zClip.zThreshold : NONE, skipZ }
      : null;

  const norms = state.rolling.norms.values;
  let normOutlier = NONE;
  if (clip && det.rollingOutlier.enabled && det.rollingOutlier.onNorm && norms.length >= det.rollingOutlier.minValues) {
    const stats = meanStd(norms);
    normOutlier = stats.mean + det.rollingOutlier.sigmas * stdFloor(stats.std, stats.mean);
  }

  const gate = det.spikeGate.enabled ? state.spikeGate : null;
  const gateUpdateRatio =
    gate && gate.logUpdateRatio !== null && gate.count >= det.spikeGate.warmupSteps ? det.spikeGate.minUpdateJump * Math.exp(gate.logUpdateRatio) : 0;

  const lrScale = state.ladder.lrScale;
  const size = state.updateSize;
  const sizeKnown = clip && det.updateSize.enabled && size.count >= det.updateSize.warmupSteps && size.logStepSize != null;

  const blowup = state.lossBlowup;
  const judgingLoss = rungs.skip.enabled && det.lossBlowup.enabled && blowup.referenceCount >= det.lossBlowup.referenceSteps && blowup.referenceMax !== null && blowup.referenceMax > 0;

  return {
    clipTo,
    zClip,
    normOutlier,
    gateUpdateRatio,
    updateSize: sizeKnown ? { typical: Math.exp(size.logStepSize as number), factor: det.updateSize.factor } : null,
    maxUpdateRatio: clip && det.trustRegion.enabled && lrScale > 0 ? det.trustRegion.maxUpdateRatio * lrScale : NONE,
    skipAboveLoss: judgingLoss ? det.lossBlowup.referenceFactor * (blowup.referenceMax as number) : NONE,
    skipNonFinite: det.nonFinite.enabled,
  };
}
