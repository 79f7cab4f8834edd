// The job spec's `watchdog` field and the fully resolved configuration the watchdog runs on.
// A spec names a policy (a preset) and may override any option of it; resolveWatchdogConfig
// merges the two. Every detector and every ladder rung has its own `enabled` switch, so any
// preset can be narrowed or widened. Defaults and their sources: README.md in this folder.
import Type, { type Static, type TSchema } from "typebox";
import Value from "typebox/value";

export const POLICIES = ["off", "static", "autoclip", "zclip", "gradguard"] as const;
export type Policy = (typeof POLICIES)[number];

/** The policy a job gets when its spec has no `watchdog` field, or one without `policy`. */
export const DEFAULT_POLICY: Policy = "gradguard";

export interface WatchdogConfig {
  policy: Policy;
  detectors: {
    nonFinite: { enabled: boolean };
    trustRegion: { enabled: boolean; maxUpdateRatio: number };
    staticClip: { enabled: boolean; maxNorm: number };
    autoClip: { enabled: boolean; percentile: number; historySize: number; warmupSteps: number };
    zClip: { enabled: boolean; alpha: number; warmupSteps: number; zThreshold: number; skipUpdateOnSpike: boolean };
    rollingOutlier: { enabled: boolean; onNorm: boolean; onLoss: boolean; window: number; minValues: number; sigmas: number };
    lossBlowup: { enabled: boolean; referenceSteps: number; referenceFactor: number; startFactor: number; consecutiveSteps: number };
    updateSize: { enabled: boolean; alpha: number; warmupSteps: number; factor: number };
    spikeGate: { enabled: boolean; alpha: number; warmupSteps: number; minUpdateJump: number };
    layers: { enabled: boolean; alpha: number; warmupSteps: number; jumpFactor: number; top: number };
    vanishing: { enabled: boolean; ratio: number; consecutiveSteps: number };
  };
  ladder: {
    clip: { enabled: boolean };
    lowerLr: {
      enabled: boolean;
      factor: number;
      spikes: number;
      skips: number;
      windowSteps: number;
      cooldownSteps: number;
      calmSteps: number;
      restoreSteps: number;
      restoreShape: "cosine" | "linear";
      minScale: number;
    };
    skip: { enabled: boolean; zThreshold: number };
    rollback: { enabled: boolean; afterSpikes: number; afterSkips: number; windowSteps: number; maxRollbacks: number };
    stop: { enabled: boolean };
  };
}

// ---------------------------------------------------------------------------------------------
// Schema. Every field is optional (an override); the preset supplies the rest.

const opt = <T extends TSchema>(schema: T) => Type.Optional(schema);
const strict = { additionalProperties: false } as const;
const on = (what: string, presets: string) =>
  opt(Type.Boolean({ description: `Turns ${what} on (true) or off. Default: on in ${presets}, off in the other presets.` }));
const steps = (minimum: number, maximum: number, description: string) => opt(Type.Integer({ minimum, maximum, description }));

export const WatchdogSpecSchema = Type.Object(
  {
    policy: opt(
      Type.Enum(POLICIES, {
        default: DEFAULT_POLICY,
        description:
          "Preset to start from; the other fields override it. off: nothing; static: clip_grad_norm_ at a fixed norm; autoclip: AutoClip; zclip: ZClip; gradguard: every detector and the whole mitigation ladder. Default gradguard.",
      }),
    ),
    detectors: opt(
      Type.Object(
        {
          nonFinite: opt(
            Type.Object(
              { enabled: on("skipping steps whose loss or gradient norm is NaN or ±Infinity", "gradguard") },
              { ...strict, description: "A non-finite step's update is never applied." },
            ),
          ),
          trustRegion: opt(
            Type.Object(
              {
                enabled: on("the trust-region ceiling on the update", "gradguard"),
                maxUpdateRatio: opt(
                  Type.Number({
                    exclusiveMinimum: 0,
                    description:
                      "Largest update allowed at the scheduled LR, relative to the weights (lr·‖g‖/‖w‖, unitless); the gradient is clipped to ceiling·‖w‖/lr, and a lowered LR shrinks the bounded update further. Default 0.1 (ours: healthy runs sit near 1e-3 and rarely above 0.05; a step that moves the weights by more than a tenth of their norm is never sane).",
                  }),
                ),
              },
              { ...strict, description: "An absolute bound that needs no history: active from step 0, through every detector's warm-up." },
            ),
          ),
          staticClip: opt(
            Type.Object(
              {
                enabled: on("static clipping", "static"),
                maxNorm: opt(Type.Number({ exclusiveMinimum: 0, description: "Global L2 norm to clip to (gradient-norm units). Default 1.0 (the usual clip_grad_norm_ max_norm)." })),
              },
              { ...strict, description: "PyTorch clip_grad_norm_: clip every step whose norm exceeds maxNorm." },
            ),
          ),
          autoClip: opt(
            Type.Object(
              {
                enabled: on("AutoClip", "autoclip"),
                percentile: opt(Type.Number({ exclusiveMinimum: 0, maximum: 100, description: "Percentile (0–100] of the norms seen so far to clip at. Default 10 (Seetharaman et al. 2020)." })),
                historySize: steps(16, 100_000, "Most norms kept (a uniform reservoir sample of all norms seen), count. Default 2048 (ours; bounds memory and per-step cost)."),
                warmupSteps: steps(0, 1_000_000, "Norms seen before AutoClip may clip, steps. Default 0 (AutoClip has no warm-up)."),
              },
              { ...strict, description: "AutoClip: clip at the p-th percentile of the gradient norms seen so far." },
            ),
          ),
          zClip: opt(
            Type.Object(
              {
                enabled: on("ZClip", "zclip and gradguard"),
                alpha: opt(Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, description: "EMA weight on the past (unitless). Default 0.97 (ZClip)." })),
                warmupSteps: steps(2, 100_000, "Norms collected to seed the EMA mean and variance, steps; no clipping before. Default 25 (ZClip)."),
                zThreshold: opt(
                  Type.Number({ exclusiveMinimum: 0, description: "z-score (σ units) above which the norm is clipped to μ + (zThreshold²/z)·σ. Default 2.5 (ZClip); 4.5 in gradguard." }),
                ),
                skipUpdateOnSpike: opt(
                  Type.Boolean({
                    description:
                      "A clipped norm leaves the EMA untouched (true) instead of entering it at its clipped value. Default false (ZClip's skip_update_on_spike); true in gradguard, so repeated spikes cannot widen the band that judges them.",
                  }),
                ),
              },
              { ...strict, description: "ZClip (Kumar et al. 2025): z-score of the norm against its EMA mean and variance." },
            ),
          ),
          rollingOutlier: opt(
            Type.Object(
              {
                enabled: on("the rolling-window outlier detector", "gradguard"),
                onNorm: opt(Type.Boolean({ description: "Watch the gradient norm (a norm outlier is clipped to the window's threshold). Default true." })),
                onLoss: opt(Type.Boolean({ description: "Watch the loss (a loss outlier counts as a spike for the ladder). Default true." })),
                window: steps(8, 10_000, "Values in the window, steps. Default 128 (OLMo)."),
                minValues: steps(2, 10_000, "Values needed before the detector judges, steps; at most window. Default 64 (OLMo)."),
                sigmas: opt(Type.Number({ exclusiveMinimum: 0, description: "Outlier: more than this many standard deviations above the window mean (σ units). Default 6 (OLMo)." })),
              },
              { ...strict, description: "OLMo-style spike detection on the last `window` values of the norm and the loss." },
            ),
          ),
          lossBlowup: opt(
            Type.Object(
              {
                enabled: on("the loss blow-up detector", "gradguard"),
                referenceSteps: steps(1, 1_000_000, "Losses whose maximum is the reference; the rule judges after them, steps. Default 100 (Megatron)."),
                referenceFactor: opt(Type.Number({ exclusiveMinimum: 1, description: "Blow-up: loss above this times the reference maximum (unitless). Default 10 (Megatron)." })),
                startFactor: opt(Type.Number({ exclusiveMinimum: 1, description: "Blow-up: loss above this times the first loss… (unitless). Default 2 (Axolotl)." })),
                consecutiveSteps: steps(1, 100_000, "…for this many consecutive steps. Default 3 (Axolotl)."),
              },
              { ...strict, description: "The loss is far above where it started: 10× the reference skips the step; 2× the start for consecutiveSteps is trouble on the loss (toward rollback and stop), not a skip." },
            ),
          ),
          updateSize: opt(
            Type.Object(
              {
                enabled: on("the update-size detector", "gradguard"),
                alpha: opt(Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, description: "EMA weight on the past for the log of the typical step size (unitless). Default 0.9 (ours: follows LR warm-up within ~10 steps)." })),
                warmupSteps: steps(1, 100_000, "Known step sizes before the detector judges, steps. Default 10 (ours)."),
                factor: opt(Type.Number({ exclusiveMinimum: 1, description: "Outlier: step size (lr/‖w‖) above this times the typical one (unitless). Default 10 (ours: a 40× LR spike is 4× past it; gradient noise does not move it)." })),
              },
              { ...strict, description: "Judges the step size lr/‖w‖ (observation lr and weightNorm) against its typical value, so a learning-rate spike is caught at its own step and taken at the typical size; gradient noise does not move it." },
            ),
          ),
          spikeGate: opt(
            Type.Object(
              {
                enabled: on("the spike gate", "gradguard"),
                alpha: opt(Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, description: "EMA weight on the past for the log of the typical update ratio (unitless). Default 0.97 (as ZClip)." })),
                warmupSteps: steps(1, 100_000, "Applied updates before the gate closes on anything, steps. Default 25 (as ZClip)."),
                minUpdateJump: opt(
                  Type.Number({
                    exclusiveMinimum: 1,
                    description:
                      "A gradient-norm spike is acted on only when the proposed update is at least this times its typical size (unitless). Default 4 (ours: the heavy tail of a healthy run's norms stays below it; an explosion is 10× and more).",
                  }),
                ),
              },
              {
                ...strict,
                description:
                  "Acts on a gradient-norm spike (ZClip, rolling outlier on the norm) only when it reaches the update: adaptive optimizers absorb most gradient spikes, and a healthy run's heavy-tailed norms do not move its updates much.",
              },
            ),
          ),
          layers: opt(
            Type.Object(
              {
                enabled: on("per-layer attribution", "gradguard"),
                alpha: opt(Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, description: "EMA weight on the past for each layer's typical norm (unitless). Default 0.97 (as ZClip)." })),
                warmupSteps: steps(1, 100_000, "Steps before layers are judged, steps. Default 25 (as ZClip)."),
                jumpFactor: opt(Type.Number({ exclusiveMinimum: 1, description: "A layer whose norm exceeds this times its typical norm is reported on its own (unitless). Default 10 (ours)." })),
                top: steps(1, 256, "Layers named in each spike event, count. Default 3 (ours)."),
              },
              { ...strict, description: "Names the layers whose norm jumped most relative to their own history." },
            ),
          ),
          vanishing: opt(
            Type.Object(
              {
                enabled: on("the vanishing-gradient warning", "gradguard"),
                ratio: opt(Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, description: "A layer vanishes below this fraction of the last layer's norm (unitless). Default 1e-3 (ours)." })),
                consecutiveSteps: steps(1, 1_000_000, "Consecutive steps below the ratio before the warning, steps. Default 50 (ours)."),
              },
              { ...strict, description: "Warns once per layer; no mitigation." },
            ),
          ),
        },
        { ...strict, description: "What to watch." },
      ),
    ),
    ladder: opt(
      Type.Object(
        {
          clip: opt(Type.Object({ enabled: on("clipping to the detectors' threshold", "static, autoclip, zclip and gradguard") }, { ...strict, description: "Rung 1: the step is applied, bounded." })),
          lowerLr: opt(
            Type.Object(
              {
                enabled: on("lowering the learning rate", "gradguard"),
                factor: opt(Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, description: "LR scale multiplier per lowering (unitless). Default 0.5 (ours)." })),
                spikes: steps(1, 100_000, "Applied (clipped) spike steps within windowSteps that lower the LR, count. Default 3 (ours)."),
                skips: steps(
                  1,
                  100_000,
                  "Skipped steps within windowSteps that lower the LR, count. Default 10 (ours: a skipped update never reached the weights, so a few bad batches or a short LR spike say nothing about the LR; skips that persist mean it no longer fits).",
                ),
                windowSteps: steps(1, 100_000, "Window for counting spikes, steps. Default 50 (ours)."),
                cooldownSteps: steps(0, 100_000, "Steps after a lowering before the LR may be lowered again or restored, steps. Default 25 (ours)."),
                calmSteps: steps(1, 100_000, "Steps without a spike before the LR is restored, steps. Default 50 (ours)."),
                restoreSteps: steps(1, 1_000_000, "Length of the warm-back to the scheduled LR, steps. Default 100 (ours)."),
                restoreShape: opt(Type.Enum(["cosine", "linear"], { description: "Shape of the warm-back. Default cosine (ours)." })),
                minScale: opt(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: "Lowest LR scale (unitless). Default 1/64 (ours: six halvings)." })),
              },
              { ...strict, description: "Rung 2: repeated spikes lower the LR; calm restores it gradually." },
            ),
          ),
          skip: opt(
            Type.Object(
              {
                enabled: on("skipping outliers too far to trust", "gradguard"),
                zThreshold: opt(Type.Number({ exclusiveMinimum: 0, description: "ZClip z-score (σ units) above which the step is skipped instead of clipped. Default 25 (ours: ten times ZClip's 2.5)." })),
              },
              { ...strict, description: "Rung 3: the update is not applied (extreme norm outlier, loss blow-up)." },
            ),
          ),
          rollback: opt(
            Type.Object(
              {
                enabled: on("rolling back to a checkpoint", "gradguard"),
                afterSpikes: steps(1, 100_000, "Spikes within windowSteps that trigger a rollback, count; norm spikes count only once the LR is at its floor, trust-region clips never. Default 10 (ours)."),
                afterSkips: steps(1, 100_000, "Skipped steps within windowSteps that trigger a rollback, count; skips for norm outliers count only once the LR is at its floor. Default 3 (ours)."),
                windowSteps: steps(1, 100_000, "Window for counting, steps; also the calm that ends a trouble episode. Default 50 (ours)."),
                maxRollbacks: steps(0, 1000, "Rollbacks per job before it is stopped as diverged, count. Default 3 (ours)."),
              },
              { ...strict, description: "Rung 4: roll back to the last checkpoint before the trouble began and skip its batches, for trouble on the loss, or for norm trouble that persists with the LR at its floor." },
            ),
          ),
          stop: opt(Type.Object({ enabled: on("stopping a diverged job", "gradguard") }, { ...strict, description: "Rung 5: stop when the rollback trigger fires with rollbacks exhausted and the loss is non-finite or blown up." })),
        },
        { ...strict, description: "How to respond." },
      ),
    ),
  },
  { ...strict, description: "The gradient watchdog: a policy preset plus overrides." },
);

export type WatchdogSpec = Static<typeof WatchdogSpecSchema>;

// ---------------------------------------------------------------------------------------------
// Presets. SOURCE_DEFAULTS holds every option at its documented default, everything off; each
// preset switches on what its source uses.

const SOURCE_DEFAULTS: WatchdogConfig = {
  policy: "off",
  detectors: {
    nonFinite: { enabled: false },
    trustRegion: { enabled: false, maxUpdateRatio: 0.1 },
    staticClip: { enabled: false, maxNorm: 1.0 },
    autoClip: { enabled: false, percentile: 10, historySize: 2048, warmupSteps: 0 },
    zClip: { enabled: false, alpha: 0.97, warmupSteps: 25, zThreshold: 2.5, skipUpdateOnSpike: false },
    rollingOutlier: { enabled: false, onNorm: true, onLoss: true, window: 128, minValues: 64, sigmas: 6 },
    lossBlowup: { enabled: false, referenceSteps: 100, referenceFactor: 10, startFactor: 2, consecutiveSteps: 3 },
    updateSize: { enabled: false, alpha: 0.9, warmupSteps: 10, factor: 10 },
    spikeGate: { enabled: false, alpha: 0.97, warmupSteps: 25, minUpdateJump: 4 },
    layers: { enabled: false, alpha: 0.97, warmupSteps: 25, jumpFactor: 10, top: 3 },
    vanishing: { enabled: false, ratio: 1e-3, consecutiveSteps: 50 },
  },
  ladder: {
    clip: { enabled: false },
    lowerLr: { enabled: false, factor: 0.5, spikes: 3, skips: 10, windowSteps: 50, cooldownSteps: 25, calmSteps: 50, restoreSteps: 100, restoreShape: "cosine", minScale: 1 / 64 },
    skip: { enabled: false, zThreshold: 25 },
    rollback: { enabled: false, afterSpikes: 10, afterSkips: 3, windowSteps: 50, maxRollbacks: 3 },
    stop: { enabled: false },
  },
};

/** Overrides (in spec form) that turn SOURCE_DEFAULTS into each preset. */
const PRESET_OVERRIDES: Record<Policy, WatchdogSpec> = {
  off: {},
  static: { detectors: { staticClip: { enabled: true } }, ladder: { clip: { enabled: true } } },
  autoclip: { detectors: { autoClip: { enabled: true } }, ladder: { clip: { enabled: true } } },
  zclip: { detectors: { zClip: { enabled: true } }, ladder: { clip: { enabled: true } } },
  gradguard: {
    detectors: {
      nonFinite: { enabled: true },
      // Every statistical detector needs a history (ZClip 25 norms, the rolling windows 64,
      // the update size 10, the loss reference 100). A run that explodes from its first step
      // gives them nothing sane to learn, so an absolute bound on the update guards the first
      // steps, and any later step whose update would be absurd whatever the history says.
      trustRegion: { enabled: true },
      // ZClip's 2.5σ clips 2–4% of a healthy run's steps (it is meant as a gentle, frequent
      // bound), and its 33-step EMA of the variance makes z-scores of 3.5–5 common on healthy
      // log-normal noise. gradguard reports every clip as an intervention and lowers the LR
      // when they repeat, so it clips from 4.5σ: about 0.1% of healthy steps on seeded series
      // with 20–30% noise (test/trainer/watchdog), while a doubled norm is still caught.
      // Clipped at 4.5σ, a spike would enter the EMA at μ + (4.5²/z)·σ, about 3σ out, and widen
      // the variance by a fifth: a spike every few steps would soon pass unseen. So spikes are
      // kept out of the statistics, as ZClip's skip_update_on_spike does.
      zClip: { enabled: true, zThreshold: 4.5, skipUpdateOnSpike: true },
      rollingOutlier: { enabled: true },
      lossBlowup: { enabled: true },
      updateSize: { enabled: true },
      // A norm spike that a healthy run shrugs off is not worth an intervention: judged by the
      // update it would make (Adam's barely moves; SGD's moves with the norm), not the norm.
      spikeGate: { enabled: true },
      layers: { enabled: true },
      vanishing: { enabled: true },
    },
    ladder: { clip: { enabled: true }, lowerLr: { enabled: true }, skip: { enabled: true }, rollback: { enabled: true }, stop: { enabled: true } },
  },
};

/** The fully resolved configuration of a preset, without overrides. */
export function presetConfig(policy: Policy): WatchdogConfig {
  return merge({ ...structuredClone(SOURCE_DEFAULTS), policy }, PRESET_OVERRIDES[policy]);
}

/** A rule between fields that the schema cannot express. `field` is a JSON pointer inside the watchdog object. */
export interface WatchdogConfigProblem {
  field: string;
  message: string;
}

export class InvalidWatchdogConfigError extends Error {
  constructor(readonly problems: WatchdogConfigProblem[]) {
    super(`invalid watchdog config: ${problems.map((p) => `${p.field || "/"}: ${p.message}`).join("; ")}`);
    this.name = "InvalidWatchdogConfigError";
  }
}

/** Rules across fields, checked on the resolved config. Empty when it can run. */
export function checkWatchdogConfig(config: WatchdogConfig): WatchdogConfigProblem[] {
  const problems: WatchdogConfigProblem[] = [];
  const rolling = config.detectors.rollingOutlier;
  if (rolling.minValues > rolling.window) {
    problems.push({ field: "/detectors/rollingOutlier/minValues", message: `must be at most window (${rolling.window})` });
  }
  const skip = config.ladder.skip;
  if (skip.enabled && config.detectors.zClip.enabled && skip.zThreshold <= config.detectors.zClip.zThreshold) {
    problems.push({ field: "/ladder/skip/zThreshold", message: `must be above detectors.zClip.zThreshold (${config.detectors.zClip.zThreshold}), or every clip would be a skip` });
  }
  return problems;
}

/**
 * The preset named by `spec.policy` (default gradguard) with the spec's overrides merged in.
 * Throws InvalidWatchdogConfigError when the spec does not match WatchdogSpecSchema or breaks a
 * rule across fields; the job spec validation should have caught both before.
 */
export function resolveWatchdogConfig(spec: WatchdogSpec | undefined): WatchdogConfig {
  const input = spec ?? {};
  if (!Value.Check(WatchdogSpecSchema, input)) {
    throw new InvalidWatchdogConfigError([...Value.Errors(WatchdogSpecSchema, input)].map((e) => ({ field: e.instancePath, message: e.message })));
  }
  const config = merge(presetConfig(input.policy ?? DEFAULT_POLICY), input);
  const problems = checkWatchdogConfig(config);
  if (problems.length > 0) throw new InvalidWatchdogConfigError(problems);
  return config;
}

/** Deep merge of plain objects: `overrides` wins, `base` is not modified. */
function merge<T>(base: T, overrides: unknown): T {
  if (!isPlainObject(base) || !isPlainObject(overrides)) return (overrides === undefined ? base : overrides) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    if (value !== undefined) out[key] = merge(out[key], value);
  }
  return out as T;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
