// The detectors. Each one reads its own slice of the state and one step's numbers, and returns
// what it found (a Finding, or null) and its next slice. None of them decides what to do: the
// ladder (ladder.ts) and decide (watchdog.ts) turn findings into a decision. All of them are
// O(window) or better per step; none sorts an unbounded array.
import type { WatchdogConfig } from "./config.ts";
import { emptyRing, finiteOr0, fmt, meanStd, nextRandom, percentileOfSorted, pushRing, type Ring, replaceSorted, stdFloor } from "./stats.ts";

type Detectors = WatchdogConfig["detectors"];

export type DetectorName = "nonFinite" | "trustRegion" | "staticClip" | "autoClip" | "zClip" | "normOutlier" | "lossOutlier" | "lossBlowup" | "updateSize" | "layerSpike";

export interface Finding {
  detector: DetectorName;
  /** Counts toward the ladder (lowering the LR, rolling back). Routine clipping (static, AutoClip) does not. */
  spike: boolean;
  /** The global norm this detector would clip to; null when clipping is not its answer. */
  clipTo: number | null;
  /**
   * Factor this detector would put on the step's update, through this step's learning rate
   * (1: none). The update detectors bound the update itself: clipping the gradient does not
   * shrink an adaptive optimizer's step (Adam's first one is about lr·√parameters whatever ‖g‖ is).
   */
  stepScale?: number;
  /** The detector does not trust the step at all. */
  skip: boolean;
  /** One line of evidence in words. */
  message: string;
  /** The evidence in numbers: observed value, threshold, z-score, percentile, … */
  evidence: Record<string, unknown>;
}


// --- trust region (ours) ----------------------------------------------------------------------
// An absolute ceiling on the update relative to the weights, which needs no history: it guards
// step 0 and every detector's warm-up. The ceiling holds at the scheduled LR: the step's update
// is scaled down so that it would be ceiling·‖w‖ at the scheduled LR, and a lowered LR (rung 2)
// shrinks the bounded update further instead of being cancelled by a looser bound. The update
// ratio is the optimizer's own (lr·lrScale·‖Δw/lr‖/‖w‖: lr·‖g‖/‖w‖ for SGD, Adam's normalised
// step for Adam), so the bound is the same for every optimizer.

/**
 * `lrScale`: the watchdog's LR scale in force, which the observed update ratio includes.
 * `sizeScale`: the factor the update-size detector already put on this update; the bound judges
 * what is left, and its stepScale, like every finding's, is a factor on the proposed update.
 */
export function trustRegion(config: Detectors["trustRegion"], updateRatio: number, lrScale: number, sizeScale = 1): Finding | null {
  if (!(Number.isFinite(updateRatio) && updateRatio > 0 && lrScale > 0)) return null;
  const scheduledRatio = (updateRatio * sizeScale) / lrScale;
  if (!(scheduledRatio > config.maxUpdateRatio)) return null;
  const stepScale = (config.maxUpdateRatio * lrScale) / updateRatio;
  return {
    detector: "trustRegion",
    spike: true,
    clipTo: null,
    stepScale,
    skip: false,
    message: `the update would move the weights by ${fmt(scheduledRatio)} of their norm at the scheduled LR (ceiling ${config.maxUpdateRatio})`,
    evidence: { updateRatio, scheduledRatio, maxUpdateRatio: config.maxUpdateRatio, lrScale, stepScale },
  };
}

// --- static threshold (PyTorch clip_grad_norm_) -----------------------------------------------

export function staticClip(config: Detectors["staticClip"], gradNorm: number): Finding | null {
  if (!(gradNorm > config.maxNorm)) return null;
  return {
    detector: "staticClip",
    spike: false,
    clipTo: config.maxNorm,
    skip: false,
    message: `gradient norm ${fmt(gradNorm)} exceeds the static max norm ${fmt(config.maxNorm)}`,
    evidence: { gradNorm, threshold: config.maxNorm },
  };
}

// --- AutoClip (Seetharaman et al. 2020) -------------------------------------------------------
// The paper keeps every norm. To bound memory and the per-step cost this keeps a uniform sample
// of all norms seen so far (reservoir sampling, Algorithm R) of at most historySize values, held
// sorted so the percentile is one lookup and an insertion is one binary search and one splice.
// Until historySize norms have been seen the sample IS the full history, as in the paper.

export interface AutoClipState {
  sorted: number[];
  seen: number;
  /** mulberry32 seed for the reservoir's choices (uint32), so decisions replay exactly. */
  seed: number;
}

export const initialAutoClip = (): AutoClipState => ({ sorted: [], seen: 0, seed: 0x2545f491 });

export function autoClip(config: Detectors["autoClip"], state: AutoClipState, gradNorm: number): { finding: Finding | null; state: AutoClipState } {
  // As in the paper, the current norm joins the history before the percentile is taken.
  const seen = state.seen + 1;
  let { sorted, seed } = state;
  if (sorted.length < config.historySize) {
    sorted = replaceSorted(sorted, gradNorm);
  } else {
    const draw = nextRandom(seed);
    seed = draw.seed;
    const slot = Math.floor(draw.value * seen);
    // Any index is a uniformly chosen member of the sample, so the sorted position serves as
    // Algorithm R's slot.
    if (slot < config.historySize) sorted = replaceSorted(sorted, gradNorm, slot);
  }
  const next = { sorted, seen, seed };
  if (seen <= config.warmupSteps) return { finding: null, state: next };
  const threshold = percentileOfSorted(sorted, config.percentile);
  if (!(gradNorm > threshold)) return { finding: null, state: next };
  return {
    finding: {
      detector: "autoClip",
      spike: false,
      clipTo: threshold,
      skip: false,
      message: `gradient norm ${fmt(gradNorm)} exceeds the ${config.percentile}th percentile (${fmt(threshold)}) of ${seen} norms seen`,
      evidence: { gradNorm, threshold, percentile: config.percentile, normsSeen: seen, sampleSize: sorted.length },
    },
    state: next,
  };
}

// --- ZClip (Kumar et al. 2025) ----------------------------------------------------------------
// Follows the reference implementation (bluorion-com/ZClip, zscore mode, adaptive scaling):
// the first warmupSteps norms seed the mean and population variance; then z = (g − μ)/(σ + ε),
// a norm with z > zThreshold is clipped to μ + (zThreshold²/z)·σ, and the EMA learns the norm
// actually kept (the clipped one), the variance against the updated mean; with
// skipUpdateOnSpike a clipped norm is not learned at all.

export interface ZClipState {
  warmup: number[];
  mean: number | null;
  variance: number | null;
}

export const initialZClip = (): ZClipState => ({ warmup: [], mean: null, variance: null });

/** ε in z = (g − μ)/(σ + ε). */
export const ZCLIP_EPSILON = 1e-6;

/** `skipZ`: z-score above which the step is not trusted at all (Infinity when the skip rung is off). */
export function zClip(config: Detectors["zClip"], skipZ: number, state: ZClipState, gradNorm: number): { finding: Finding | null; state: ZClipState } {
  if (state.mean === null || state.variance === null) {
    const warmup = [...state.warmup, gradNorm];
    if (warmup.length < config.warmupSteps) return { finding: null, state: { ...state, warmup } };
    const { mean, std } = meanStd(warmup);
    return { finding: null, state: { warmup: [], mean: finiteOr0(mean), variance: finiteOr0(std * std) } };
  }
  const { mean, variance } = state;
  const std = Math.sqrt(variance);
  const z = (gradNorm - mean) / (std + ZCLIP_EPSILON);
  let finding: Finding | null = null;
  let kept = gradNorm;
  if (z > config.zThreshold) {
    const clipTo = mean + ((config.zThreshold * config.zThreshold) / z) * std;
    kept = clipTo;
    const skip = z > skipZ;
    finding = {
      detector: "zClip",
      spike: true,
      clipTo,
      skip,
      message: `gradient norm ${fmt(gradNorm)} is z = ${fmt(z)} against its running mean ${fmt(mean)} (σ ${fmt(std)}; clip above z ${config.zThreshold}${skip ? `, skip above z ${skipZ}` : ""})`,
      evidence: { gradNorm, mean, std, z, zThreshold: config.zThreshold, clipTo, ...(Number.isFinite(skipZ) ? { skipZThreshold: skipZ } : {}) },
    };
  }
  if (finding && config.skipUpdateOnSpike) return { finding, state };
  const nextMean = config.alpha * mean + (1 - config.alpha) * kept;
  const nextVariance = config.alpha * variance + (1 - config.alpha) * (kept - nextMean) ** 2;
  // After the warm-up `warmup` is always empty: it is reused rather than allocated every step.
  return { finding, state: { warmup: state.warmup.length === 0 ? state.warmup : [], mean: finiteOr0(nextMean), variance: finiteOr0(nextVariance) } };
}

// --- rolling-window outlier (OLMo) ------------------------------------------------------------
// A value more than `sigmas` standard deviations above the mean of the last `window` values is
// an outlier; the detector judges once it has `minValues` values. An outlier does not enter the
// window: let in, even bounded at the threshold, each one would widen the band by about a
// quarter (36σ² over 128 values) and a run of spikes would soon pass unseen.

export interface RollingState {
  norms: Ring;
  losses: Ring;
}

export const initialRolling = (): RollingState => ({ norms: emptyRing(), losses: emptyRing() });

export function rollingOutlier(
  config: Detectors["rollingOutlier"],
  ring: Ring,
  value: number,
  what: "norm" | "loss",
): { finding: Finding | null; ring: Ring } {
  if (ring.values.length < config.minValues) return { finding: null, ring: pushRing(ring, value, config.window) };
  const stats = meanStd(ring.values);
  const std = stdFloor(stats.std, stats.mean);
  const threshold = stats.mean + config.sigmas * std;
  if (!(value > threshold)) return { finding: null, ring: pushRing(ring, value, config.window) };
  const z = (value - stats.mean) / std;
  const label = what === "norm" ? "gradient norm" : "loss";
  return {
    finding: {
      detector: what === "norm" ? "normOutlier" : "lossOutlier",
      spike: true,
      clipTo: what === "norm" ? threshold : null,
      skip: false,
      message: `${label} ${fmt(value)} is ${fmt(z)}σ above the mean ${fmt(stats.mean)} of the last ${ring.values.length} (threshold ${config.sigmas}σ = ${fmt(threshold)})`,
      evidence: { [what === "norm" ? "gradNorm" : "loss"]: value, mean: stats.mean, std, z, sigmas: config.sigmas, threshold, windowValues: ring.values.length },
    },
    ring,
  };
}

// --- loss blow-up (Megatron: 10× the max of the first 100 losses; Axolotl: 2× the first loss
// for 3 consecutive steps) ----------------------------------------------------------------------
// Both rules need a positive reference: with a loss that can be zero or negative a ratio means
// nothing, and the rule stays silent. A loss 10× above anything in the reference appears at one
// step, most often from one bad batch: that step is not trusted (skipped). A loss that has stayed
// above 2× its start for several steps belongs to the weights, not to this batch: skipping would
// leave the weights, and the loss, where they are (and would repeat every step), while descending
// the (bounded) gradient of a high loss is what lowers it. So that rule does not skip; it counts
// as trouble on the loss, which climbs to a rollback, and is evidence for stopping the job.

export interface LossBlowupState {
  startLoss: number | null;
  referenceMax: number | null;
  referenceCount: number;
  aboveStart: number;
}

export const initialLossBlowup = (): LossBlowupState => ({ startLoss: null, referenceMax: null, referenceCount: 0, aboveStart: 0 });

export function lossBlowup(config: Detectors["lossBlowup"], state: LossBlowupState, loss: number): { finding: Finding | null; state: LossBlowupState } {
  const { startLoss, referenceMax } = state;
  const aboveStart = startLoss !== null && startLoss > 0 && loss > config.startFactor * startLoss ? state.aboveStart + 1 : 0;
  const judging = state.referenceCount >= config.referenceSteps && referenceMax !== null && referenceMax > 0;
  let next = state;
  if (state.referenceCount < config.referenceSteps) {
    next = { startLoss: startLoss ?? loss, referenceMax: Math.max(referenceMax ?? loss, loss), referenceCount: state.referenceCount + 1, aboveStart };
  } else if (aboveStart !== state.aboveStart) {
    next = { ...state, aboveStart };
  }

  let finding: Finding | null = null;
  if (judging && loss > config.referenceFactor * referenceMax) {
    finding = {
      detector: "lossBlowup",
      spike: true,
      clipTo: null,
      skip: true,
      message: `loss ${fmt(loss)} is above ${config.referenceFactor}× the largest of the first ${config.referenceSteps} losses (${fmt(referenceMax)})`,
      evidence: { loss, rule: "reference", reference: referenceMax, factor: config.referenceFactor, threshold: config.referenceFactor * referenceMax },
    };
  } else if (startLoss !== null && aboveStart >= config.consecutiveSteps) {
    finding = {
      detector: "lossBlowup",
      spike: true,
      clipTo: null,
      skip: false,
      message: `loss ${fmt(loss)} has been above ${config.startFactor}× the first loss (${fmt(startLoss)}) for ${aboveStart} consecutive steps`,
      evidence: { loss, rule: "start", reference: startLoss, factor: config.startFactor, threshold: config.startFactor * startLoss, consecutiveSteps: aboveStart },
    };
  }
  return { finding, state: next };
}

// --- update size ------------------------------------------------------------------------------
// The proposed update is the optimizer's direction times the step size lr/‖w‖. The gradient-norm
// detectors and the trust region judge the first factor and the whole; this one judges the step
// size against its typical value: the geometric mean of the applied steps' sizes, as an EMA of
// their logs. A 40× learning-rate spike multiplies it by 40 at its own step while the gradient
// norm stays normal. Gradient noise does not move it at all: judged on the whole update, the
// heavy-tailed norms of a converging run would pass for update spikes. A log EMA follows a
// learning-rate warm-up within ~1/(1−alpha) steps. An oversized step is taken at the typical
// size (stepScale): a learning-rate spike costs no training step. Only applied updates teach the
// typical size: a skipped one does not.

export interface UpdateSizeState {
  count: number;
  /**
   * EMA of log(lr·lrScale/‖w‖) over the applied steps. (A state saved when the detector judged
   * the whole update ratio holds `logMean` instead, in other units: it is ignored, and the
   * detector warms up again.)
   */
  logStepSize: number | null;
}

export const initialUpdateSize = (): UpdateSizeState => ({ count: 0, logStepSize: null });

/** The step size lr·lrScale/‖w‖, NaN when unknown. */
export function stepSize(lr: number, lrScale: number, weightNorm: number | undefined): number {
  return weightNorm !== undefined && Number.isFinite(weightNorm) && weightNorm > 0 && Number.isFinite(lr) && lr > 0 ? (lr * lrScale) / weightNorm : Number.NaN;
}

export function updateSize(config: Detectors["updateSize"], state: UpdateSizeState, size: number): Finding | null {
  if (!Number.isFinite(size) || state.count < config.warmupSteps || state.logStepSize == null) return null;
  const typicalSize = Math.exp(state.logStepSize);
  if (!(size > config.factor * typicalSize)) return null;
  const jump = size / typicalSize;
  return {
    detector: "updateSize",
    // The gradient is sound; only the step size is off, and the step is taken at the typical
    // size: contained at its own step, it neither skips a good batch nor climbs the ladder.
    spike: false,
    clipTo: null,
    stepScale: 1 / jump,
    skip: false,
    message: `the step size lr/‖w‖ is ${fmt(jump)}× its typical value (${fmt(size)} vs ${fmt(typicalSize)}; threshold ${config.factor}×)`,
    evidence: { stepSize: size, typicalStepSize: typicalSize, factor: config.factor, threshold: config.factor * typicalSize, jump },
  };
}

/** Learns the step size (lr·lrScale/‖w‖) of the update actually applied. */
export function learnUpdateSize(config: Detectors["updateSize"], state: UpdateSizeState, appliedStepSize: number): UpdateSizeState {
  if (!(Number.isFinite(appliedStepSize) && appliedStepSize > 0)) return state;
  const log = Math.log(appliedStepSize);
  if (state.logStepSize == null) return { count: 1, logStepSize: log };
  return { count: state.count + 1, logStepSize: finiteOr0(config.alpha * state.logStepSize + (1 - config.alpha) * log) };
}

// --- spike gate ---------------------------------------------------------------------------------
// A gradient-norm spike matters by the update it makes. SGD's update grows with the norm; Adam's
// hardly does (a 10× norm moves m̂/√v̂ by about 2×), and a healthy run's heavy-tailed norms make
// occasional 3–10× jumps that its loss never notices. The gate keeps a typical update ratio (an
// EMA of its log over the applied steps) and lets the norm detectors act only on a step whose
// proposed update is at least minUpdateJump× that.

export interface SpikeGateState {
  count: number;
  /** EMA of log(updateRatio) of the applied steps; null before the first. */
  logUpdateRatio: number | null;
}

export const initialSpikeGate = (): SpikeGateState => ({ count: 0, logUpdateRatio: null });

/** How many times its typical size the proposed update is; null while warming up or unknown. */
export function updateJump(config: Detectors["spikeGate"], state: SpikeGateState, updateRatio: number): number | null {
  if (!(Number.isFinite(updateRatio) && updateRatio > 0) || state.logUpdateRatio === null || state.count < config.warmupSteps) return null;
  return updateRatio / Math.exp(state.logUpdateRatio);
}

export function learnSpikeGate(config: Detectors["spikeGate"], state: SpikeGateState, appliedUpdateRatio: number): SpikeGateState {
  if (!(Number.isFinite(appliedUpdateRatio) && appliedUpdateRatio > 0)) return state;
  const log = Math.log(appliedUpdateRatio);
  if (state.logUpdateRatio === null) return { count: 1, logUpdateRatio: log };
  return { count: state.count + 1, logUpdateRatio: finiteOr0(config.alpha * state.logUpdateRatio + (1 - config.alpha) * log) };
}

// --- per layer --------------------------------------------------------------------------------
// Each layer's typical norm is an EMA (alpha 0.97, as ZClip). A layer's jump is its norm over its
// typical norm; the largest jumps are named in every spike event. A layer whose jump exceeds
// `jumpFactor` while nothing else fired is reported on its own (a warning, no mitigation). The
// EMA learns each norm bounded by jumpFactor × typical, so a jump does not become the norm.

export interface LayersState {
  count: number;
  means: number[];
}

export const initialLayers = (layers: number): LayersState => ({ count: 0, means: new Array<number>(layers).fill(0) });

export interface LayerJump {
  layer: string;
  norm: number;
  typical: number;
  jump: number;
}

export function layerJumps(config: Detectors["layers"], state: LayersState, names: readonly string[], norms: readonly number[]): LayerJump[] {
  if (state.count < config.warmupSteps) return [];
  return norms
    .map((norm, i) => {
      const typical = state.means[i] ?? 0;
      return { layer: names[i] ?? `layer_${i}`, norm, typical, jump: layerJump(norm, typical) };
    })
    .sort((a, b) => b.jump - a.jump)
    .slice(0, config.top);
}

/**
 * Whether some layer jumped past jumpFactor: when none did and no other detector fired, the
 * jumps are needed for nothing, and this check costs no allocation.
 */
export function anyLayerJumped(config: Detectors["layers"], state: LayersState, norms: readonly number[]): boolean {
  if (state.count < config.warmupSteps) return false;
  for (let i = 0; i < norms.length; i++) if (layerJump(norms[i] as number, state.means[i] ?? 0) > config.jumpFactor) return true;
  return false;
}

function layerJump(norm: number, typical: number): number {
  return norm / Math.max(typical, 1e-30);
}

export function layerSpike(config: Detectors["layers"], jumps: readonly LayerJump[]): Finding | null {
  const jumped = jumps.filter((j) => j.jump > config.jumpFactor);
  const top = jumped[0];
  if (!top) return null;
  return {
    detector: "layerSpike",
    spike: false,
    clipTo: null,
    skip: false,
    message: `layer ${top.layer}'s gradient norm ${fmt(top.norm)} is ${fmt(top.jump)}× its typical ${fmt(top.typical)}`,
    evidence: { jumpFactor: config.jumpFactor, layers: jumped },
  };
}

export function learnLayers(config: Detectors["layers"], state: LayersState, norms: readonly number[]): LayersState {
  const warm = state.count >= config.warmupSteps;
  const means = norms.map((norm, i) => {
    const mean = state.means[i] ?? 0;
    if (state.count === 0) return norm;
    const kept = warm ? Math.min(norm, config.jumpFactor * mean) : norm;
    return finiteOr0(config.alpha * mean + (1 - config.alpha) * kept);
  });
  return { count: state.count + 1, means };
}

// --- vanishing gradients ----------------------------------------------------------------------
// Every layer before the last is compared with the last one. A layer below `ratio` of it for
// `consecutiveSteps` steps in a row is reported once per job. A layer without weights reports a
// norm of 0 and would count as vanishing; today every layer type in a spec has weights.

export interface VanishingState {
  counts: number[];
  warned: boolean[];
}

export const initialVanishing = (layers: number): VanishingState => ({ counts: new Array<number>(layers).fill(0), warned: new Array<boolean>(layers).fill(false) });

export interface VanishingFinding {
  layers: { layer: string; norm: number; fractionOfLast: number }[];
  lastLayer: string;
  lastNorm: number;
}

export function vanishing(
  config: Detectors["vanishing"],
  state: VanishingState,
  names: readonly string[],
  norms: readonly number[],
): { finding: VanishingFinding | null; state: VanishingState } {
  const lastIndex = norms.length - 1;
  const last = norms[lastIndex] ?? 0;
  if (lastIndex < 1) return { finding: null, state };
  // No layer is below a last layer whose norm is not positive (0 or NaN).
  const threshold = last > 0 ? config.ratio * last : Number.NEGATIVE_INFINITY;
  // The usual step: no layer below the ratio, none counting. Nothing changes, nothing is allocated.
  if (state.counts.every((count, i) => count === 0 && !belowLast(norms, i, lastIndex, threshold))) return { finding: null, state };
  const counts = state.counts.map((count, i) => (belowLast(norms, i, lastIndex, threshold) ? count + 1 : 0));
  const newly = counts.flatMap((count, i) => (count >= config.consecutiveSteps && !state.warned[i] ? [i] : []));
  if (newly.length === 0) return { finding: null, state: { counts, warned: state.warned } };
  const warned = state.warned.map((w, i) => w || newly.includes(i));
  return {
    finding: {
      layers: newly.map((i) => ({ layer: names[i] ?? `layer_${i}`, norm: norms[i] ?? 0, fractionOfLast: (norms[i] ?? 0) / last })),
      lastLayer: names[lastIndex] ?? `layer_${lastIndex}`,
      lastNorm: last,
    },
    state: { counts, warned },
  };
}

/** Whether layer i's norm is below `threshold` (the last layer's never is). */
function belowLast(norms: readonly number[], i: number, lastIndex: number, threshold: number): boolean {
  return i < lastIndex && (norms[i] ?? 0) < threshold;
}
