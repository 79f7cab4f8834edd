// The watchdog: a pure function from (config, state, one step's measurements) to a decision and
// the next state. It sees every step BEFORE its update is applied. No tensors, no I/O, no clock:
// the trainer measures, asks `decide`, applies the decision, and keeps the returned state (with
// its checkpoints, for afterRollback). The state is plain JSON data with finite numbers only, so
// it can be stored with a checkpoint and restored into identical decisions.
import type { WatchdogConfig } from "./config.ts";
import {
  anyLayerJumped,
  type AutoClipState,
  autoClip,
  type Finding,
  initialAutoClip,
  initialLayers,
  initialLossBlowup,
  initialRolling,
  initialUpdateSize,
  initialVanishing,
  initialZClip,
  type LayersState,
  type LayerJump,
  layerJumps,
  layerSpike,
  learnLayers,
  learnSpikeGate,
  learnUpdateSize,
  initialSpikeGate,
  type SpikeGateState,
  updateJump,
  type LossBlowupState,
  lossBlowup,
  type RollingState,
  rollingOutlier,
  staticClip,
  stepSize,
  trustRegion,
  type UpdateSizeState,
  updateSize,
  type VanishingState,
  vanishing,
  type ZClipState,
  zClip,
} from "./detectors.ts";
import { climbLadder, initialLadder, type LadderState } from "./ladder.ts";
import { fmt, jsonNumber } from "./stats.ts";

export interface StepObservation {
  step: number;
  loss: number;
  /** Global L2 norm of the gradients, before any clipping. */
  gradNorm: number;
  /** L2 norm of each layer's gradients, in the order of the layer names given to initialState. */
  layerNorms: number[];
  /** The scheduled learning rate of this step, before the watchdog's lrScale. */
  lr: number;
  /**
   * Size of the update this step would apply if the watchdog changed nothing (learning rate
   * scaled by the lrScale in force), relative to the weights: ‖Δw‖/‖w‖, which is lr·‖g‖/‖w‖ for
   * SGD and what the optimizer's state makes of g for the others. NaN when unknown.
   */
  updateRatio: number;
  /** Global L2 norm of the weights before the update; unknown (NaN or absent) turns the update-size detector off. */
  weightNorm?: number;
}

export type EventKind =
  | "clip"
  | "skip"
  | "nonFinite"
  | "lrLowered"
  | "lrRestoreStarted"
  | "lrRestored"
  | "rollback"
  | "diverged"
  | "normSpike"
  | "lossSpike"
  | "lossBlowup"
  | "updateSpike"
  | "layerSpike"
  | "vanishingGradients";

export interface WatchdogEvent {
  step: number;
  kind: EventKind;
  severity: "info" | "warning" | "critical";
  message: string;
  /** The evidence. JSON-safe: a NaN or an infinity appears as the string "NaN", "Infinity", "-Infinity". */
  detail: Record<string, unknown>;
}

export type Action = "none" | "clip" | "lowerLr" | "skip" | "rollback" | "stop";

export interface Decision {
  /** Global norm to clip to; null = no clipping. */
  clipTo: number | null;
  /**
   * Factor on this step's update, applied through this step's learning rate only (1: unchanged):
   * the bound the update detectors put on an update too large for the weights.
   */
  stepScale: number;
  /** Factor on the scheduled LR from this step on (1 = unchanged). */
  lrScale: number;
  /** Do not apply this step's update. */
  skip: boolean;
  /** Roll back to the last checkpoint taken before this step; null = no rollback. */
  rollbackBefore: number | null;
  /** Stop the job as diverged, with this explanation. */
  stop: string | null;
  /** The most severe thing done at this step, for the step row. */
  action: Action;
  /** Every decision that changed something, and every warning, with its evidence. */
  events: WatchdogEvent[];
}

export interface WatchdogState {
  version: 1;
  layerNames: string[];
  autoClip: AutoClipState;
  zClip: ZClipState;
  rolling: RollingState;
  lossBlowup: LossBlowupState;
  updateSize: UpdateSizeState;
  spikeGate: SpikeGateState;
  layers: LayersState;
  vanishing: VanishingState;
  ladder: LadderState;
}

export function initialState(_config: WatchdogConfig, layerNames: string[]): WatchdogState {
  return {
    version: 1,
    layerNames: [...layerNames],
    autoClip: initialAutoClip(),
    zClip: initialZClip(),
    rolling: initialRolling(),
    lossBlowup: initialLossBlowup(),
    updateSize: initialUpdateSize(),
    spikeGate: initialSpikeGate(),
    layers: initialLayers(layerNames.length),
    vanishing: initialVanishing(layerNames.length),
    ladder: initialLadder(),
  };
}

/** Warning kinds for findings that led to no mitigation at their step. */
const WARNING_KIND: Record<Finding["detector"], EventKind | null> = {
  nonFinite: "nonFinite",
  trustRegion: "updateSpike",
  staticClip: null,
  autoClip: null,
  zClip: "normSpike",
  normOutlier: "normSpike",
  lossOutlier: "lossSpike",
  lossBlowup: "lossBlowup",
  updateSize: "updateSpike",
  layerSpike: "layerSpike",
};

/** Findings on the gradient norm alone, which the spike gate lets through only when they reach the update. */
const GATED: ReadonlySet<Finding["detector"]> = new Set(["zClip", "normOutlier"]);

/** Findings on the loss itself: what clipping cannot undo, so they climb to a rollback at any LR. */
const LOSS_DETECTORS: ReadonlySet<Finding["detector"]> = new Set(["nonFinite", "lossBlowup", "lossOutlier"]);

const VANISHING_CURES = [
  "use a ReLU-family activation (relu, elu, selu, gelu, swish) instead of sigmoid or tanh",
  "add residual (skip) connections",
  "add normalization (batch or layer normalization)",
  "use an initialization scaled to the activation (heNormal/heUniform for ReLU, glorot for tanh)",
];

/**
 * Judges one step. Pure: `state` is not modified; the returned state replaces it. Throws only
 * on a programming error (layerNorms not matching the layer names).
 */
export function decide(config: WatchdogConfig, state: WatchdogState, obs: StepObservation): { decision: Decision; state: WatchdogState } {
  if (obs.layerNorms.length !== state.layerNames.length) {
    throw new Error(`watchdog: ${obs.layerNorms.length} layer norms for ${state.layerNames.length} layers (${state.layerNames.join(", ")})`);
  }
  const det = config.detectors;
  const rungs = config.ladder;
  const { step, loss, gradNorm, layerNorms } = obs;
  const next: WatchdogState = { ...state };
  const events: WatchdogEvent[] = [];
  const findings: Finding[] = [];
  const finite = Number.isFinite(loss) && Number.isFinite(gradNorm) && layerNorms.every(Number.isFinite);

  if (!finite) {
    // Nothing non-finite enters any history: it would poison every statistic (and JSON).
    if (!det.nonFinite.enabled) {
      return { decision: { clipTo: null, stepScale: 1, lrScale: state.ladder.lrScale, skip: false, rollbackBefore: null, stop: null, action: "none", events: [] }, state: next };
    }
    const bad = state.layerNames.filter((_, i) => !Number.isFinite(layerNorms[i]));
    findings.push({
      detector: "nonFinite",
      spike: true,
      clipTo: null,
      skip: true,
      message: `loss ${loss} and gradient norm ${gradNorm}${bad.length > 0 ? ` (non-finite in ${bad.join(", ")})` : ""}: the update would corrupt the weights`,
      evidence: { loss, gradNorm, nonFiniteLayers: bad },
    });
  }

  if (finite) {
    // An oversized step size is taken at the typical size; the trust region judges what is left.
    const size = det.updateSize.enabled ? updateSize(det.updateSize, state.updateSize, stepSize(obs.lr, state.ladder.lrScale, obs.weightNorm)) : null;
    pushFinding(findings, size);
    if (det.trustRegion.enabled) pushFinding(findings, trustRegion(det.trustRegion, obs.updateRatio, state.ladder.lrScale, size?.stepScale));
    if (det.staticClip.enabled) pushFinding(findings, staticClip(det.staticClip, gradNorm));
    if (det.autoClip.enabled) {
      const r = autoClip(det.autoClip, state.autoClip, gradNorm);
      next.autoClip = r.state;
      pushFinding(findings, r.finding);
    }
    if (det.zClip.enabled) {
      const skipZ = rungs.skip.enabled ? rungs.skip.zThreshold : Number.POSITIVE_INFINITY;
      const r = zClip(det.zClip, skipZ, state.zClip, gradNorm);
      next.zClip = r.state;
      pushFinding(findings, r.finding);
    }
    if (det.rollingOutlier.enabled) {
      const rolling = { ...state.rolling };
      if (det.rollingOutlier.onNorm) {
        const r = rollingOutlier(det.rollingOutlier, state.rolling.norms, gradNorm, "norm");
        rolling.norms = r.ring;
        pushFinding(findings, r.finding);
      }
      if (det.rollingOutlier.onLoss) {
        const r = rollingOutlier(det.rollingOutlier, state.rolling.losses, loss, "loss");
        rolling.losses = r.ring;
        pushFinding(findings, r.finding);
      }
      next.rolling = rolling;
    }
    if (det.lossBlowup.enabled) {
      const r = lossBlowup(det.lossBlowup, state.lossBlowup, loss);
      next.lossBlowup = r.state;
      pushFinding(findings, r.finding);
    }
    if (det.layers.enabled) next.layers = learnLayers(det.layers, state.layers, layerNorms);
    if (det.spikeGate.enabled) {
      // A state saved before the gate existed has none.
      const jump = updateJump(det.spikeGate, state.spikeGate ?? initialSpikeGate(), obs.updateRatio);
      if (jump !== null && jump < det.spikeGate.minUpdateJump) {
        // Absorbed: nothing is done at this step, but the spike still counts toward lowering
        // the LR when spikes repeat (an LR too high for the run shows as repeated spikes).
        for (const [i, f] of findings.entries()) {
          if (!GATED.has(f.detector)) continue;
          findings[i] = {
            ...f,
            clipTo: null,
            skip: false,
            message: `${f.message}, absorbed: the update would be ${fmt(jump)}× its typical size (acted on from ${det.spikeGate.minUpdateJump}×)`,
            evidence: { ...f.evidence, updateJump: jump, minUpdateJump: det.spikeGate.minUpdateJump },
          };
        }
      }
    }
  }

  // Rungs 1 and 3. A non-finite step is always skipped (no rung can make a NaN update safe);
  // other findings are skipped only when the skip rung is on, and otherwise clipped if they can be.
  const skip = findings.some((f) => f.detector === "nonFinite") || (rungs.skip.enabled && findings.some((f) => f.skip));
  const clipTo = !skip && rungs.clip.enabled ? minClip(findings) : null;
  const stepScale = !skip && rungs.clip.enabled ? minStepScale(findings) : 1;
  const bounded = clipTo !== null || stepScale < 1;
  const spike = findings.some((f) => f.spike);
  // The layers' jumps are evidence for a spike, or a warning of their own past jumpFactor;
  // on a calm step they are needed for nothing, and not built.
  const jumps: LayerJump[] =
    det.layers.enabled && finite && (spike || anyLayerJumped(det.layers, state.layers, layerNorms))
      ? layerJumps(det.layers, state.layers, state.layerNames, layerNorms)
      : [];
  // Spike events name the layers whose norm jumped most; a lone layer jump is a warning of its own.
  if (det.layers.enabled && finite && !spike) pushFinding(findings, layerSpike(det.layers, jumps));
  const layers = spike && jumps.length > 0 ? { layers: jumps } : {};
  const summary =
    findings.length === 0 ? "" : findings.map((f) => f.message).join("; ") + (spike && jumps[0] ? `; largest layer jump: ${jumps[0].layer} (${fmt(jumps[0].jump)}× its typical norm)` : "");

  // Rungs 2, 4 and 5.
  const outcome = climbLadder(rungs, state.ladder, {
    step,
    lr: obs.lr,
    spike,
    escalating: findings.some((f) => f.spike && f.detector !== "trustRegion"),
    lossTrouble: findings.some((f) => LOSS_DETECTORS.has(f.detector)),
    diverging: findings.some((f) => f.detector === "nonFinite" || f.detector === "lossBlowup"),
    skipped: skip,
    summary,
  });
  next.ladder = outcome.ladder;
  const rolledBack = outcome.rollbackBefore !== null;
  const stopped = outcome.stop !== null;

  if (skip) {
    const nonFinite = findings.some((f) => f.detector === "nonFinite");
    events.push({ step, kind: nonFinite ? "nonFinite" : "skip", severity: "warning", message: `step ${step} skipped: ${summary}`, detail: stepEvidence(loss, gradNorm, findings, layers) });
  } else if (bounded && !rolledBack && !stopped) {
    const what = [
      ...(clipTo !== null ? [`clipped from norm ${fmt(gradNorm)} to ${fmt(clipTo)}`] : []),
      ...(stepScale < 1 ? [`update scaled by ${fmt(stepScale)}`] : []),
    ].join(", ");
    events.push({
      step,
      kind: "clip",
      severity: "info",
      message: `step ${step} ${what}: ${summary}`,
      detail: { ...stepEvidence(loss, gradNorm, findings, layers), ...(clipTo !== null ? { clipTo } : {}), ...(stepScale < 1 ? { stepScale } : {}) },
    });
  } else if (!rolledBack && !stopped) {
    for (const f of findings) {
      const kind = WARNING_KIND[f.detector];
      if (kind) events.push({ step, kind, severity: "warning", message: `step ${step}: ${f.message}`, detail: { loss, gradNorm, ...evidenceOf(f), ...layers } });
    }
  }
  // A rollback or a stop replaces this step's clip: its event carries the findings instead.
  for (const e of outcome.events) {
    const carriesFindings = (e.kind === "rollback" || e.kind === "diverged") && !skip;
    events.push({ step, ...e, detail: { ...e.detail, ...(carriesFindings ? { findings: findings.map(evidenceOf) } : {}), ...layers } });
  }

  if (finite && det.vanishing.enabled) {
    const r = vanishing(det.vanishing, state.vanishing, state.layerNames, layerNorms);
    next.vanishing = r.state;
    if (r.finding) {
      const names = r.finding.layers.map((l) => l.layer).join(", ");
      events.push({
        step,
        kind: "vanishingGradients",
        severity: "warning",
        message: `vanishing gradients: ${names} ${r.finding.layers.length > 1 ? "have" : "has"} had gradient norms below ${det.vanishing.ratio} of the last layer's (${r.finding.lastLayer}) for ${det.vanishing.consecutiveSteps} consecutive steps. Try: ${VANISHING_CURES.join("; ")}.`,
        detail: { ...r.finding, ratio: det.vanishing.ratio, consecutiveSteps: det.vanishing.consecutiveSteps, cures: VANISHING_CURES },
      });
    }
  }

  const skipped = skip || rolledBack || stopped;
  if (finite && det.spikeGate.enabled && !skipped) {
    // The typical update learns the one actually applied (bounded, clipped, at the new LR scale).
    const applied = obs.updateRatio * stepScale * clipCoefficient(gradNorm, clipTo) * (outcome.ladder.lrScale / state.ladder.lrScale);
    next.spikeGate = learnSpikeGate(det.spikeGate, state.spikeGate ?? initialSpikeGate(), applied);
  }
  if (finite && det.updateSize.enabled && !skipped && !findings.some((f) => f.detector === "updateSize")) {
    // The typical step size learns the step sizes the schedule asks for, at the LR scale now in
    // force; an oversized one was taken at the typical size, and teaches nothing.
    next.updateSize = learnUpdateSize(det.updateSize, state.updateSize, stepSize(obs.lr, outcome.ladder.lrScale, obs.weightNorm));
  }

  // The most severe of what was done.
  const action: Action = stopped ? "stop" : rolledBack ? "rollback" : skip ? "skip" : outcome.lowered ? "lowerLr" : bounded ? "clip" : "none";

  const decision: Decision = {
    clipTo: skipped ? null : clipTo,
    stepScale: skipped ? 1 : stepScale,
    lrScale: outcome.ladder.lrScale,
    skip: skipped,
    rollbackBefore: outcome.rollbackBefore,
    stop: outcome.stop,
    action,
    events: events.map((e) => ({ ...e, detail: jsonSafe(e.detail) as Record<string, unknown> })),
  };
  return { decision, state: next };
}

/**
 * The state to continue with after the trainer rolled back to a checkpoint whose saved
 * watchdog state is `restored`: the detectors' history comes from the checkpoint (it predates
 * the trouble); the ladder's memory of what happened since comes from `current` (rollbacks
 * used, the batches to skip, the lowered learning rate and when the last spike was, which holds
 * off the warm-back), as does which layers were already reported as vanishing.
 *
 * gradguard's trainer keeps numbering steps forward after a rollback (the batches since the
 * checkpoint are the skipped ones); a trainer that rewinds its data to the checkpoint must not
 * train the batches `isBatchSkipped` names. Either way, checkpoints taken after the restored one
 * belong to the abandoned run.
 */
export function afterRollback(_config: WatchdogConfig, current: WatchdogState, restored: WatchdogState): WatchdogState {
  if (current.layerNames.join("\u0000") !== restored.layerNames.join("\u0000")) {
    throw new Error("watchdog: the restored state belongs to a model with other layers");
  }
  const base = structuredClone(restored);
  return {
    ...base,
    vanishing: { counts: base.vanishing.counts, warned: [...current.vanishing.warned] },
    ladder: {
      ...base.ladder,
      lrScale: current.ladder.lrScale,
      lastSpikeStep: current.ladder.lastSpikeStep,
      troubleStart: null,
      lastTroubleStep: null,
      cooldownUntil: null,
      restore: null,
      ceiling: current.ladder.ceiling,
      rollbacksUsed: current.ladder.rollbacksUsed,
      skipBatches: current.ladder.skipBatches.map((r) => ({ ...r })),
      lastRollback: current.ladder.lastRollback && { ...current.ladder.lastRollback },
    },
  };
}

/** Whether the batch of `step` is one a rollback said to skip. */
export function isBatchSkipped(state: WatchdogState, step: number): boolean {
  return state.ladder.skipBatches.some((r) => step >= r.from && step <= r.to);
}

/** The factor that clipping the gradient's global norm `gradNorm` to `clipTo` puts on it (1: none). */
export function clipCoefficient(gradNorm: number, clipTo: number | null): number {
  return clipTo !== null && gradNorm > clipTo ? clipTo / gradNorm : 1;
}

function pushFinding(findings: Finding[], finding: Finding | null): void {
  if (finding) findings.push(finding);
}

function minClip(findings: readonly Finding[]): number | null {
  let min: number | null = null;
  for (const f of findings) if (f.clipTo !== null && (min === null || f.clipTo < min)) min = f.clipTo;
  return min;
}

function minStepScale(findings: readonly Finding[]): number {
  let min = 1;
  for (const f of findings) if (f.stepScale !== undefined && f.stepScale < min) min = f.stepScale;
  return min;
}

/** The evidence for a step's mitigation: its numbers, every finding's, and the layers' jumps on a spike. */
function stepEvidence(loss: number, gradNorm: number, findings: readonly Finding[], layers: { layers?: LayerJump[] }): Record<string, unknown> {
  return { loss, gradNorm, findings: findings.map(evidenceOf), ...layers };
}

function evidenceOf(f: Finding): Record<string, unknown> {
  return { detector: f.detector, ...f.evidence };
}

function jsonSafe(value: unknown): unknown {
  if (typeof value === "number") return jsonNumber(value);
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonSafe(v)]));
  return value;
}

