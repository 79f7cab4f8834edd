// Synthetic training series for the watchdog tests: seeded, noisy but healthy, with helpers to
// plant spikes and to run a series through `decide`.
import { expect } from "vitest";
import type { WatchdogConfig } from "../../../trainer/watchdog/config.ts";
import { type Decision, decide, initialState, type StepObservation, type WatchdogState } from "../../../trainer/watchdog/watchdog.ts";

export const LAYERS = ["dense_0", "dense_1", "dense_2"];

/** mulberry32: a tiny seeded uniform RNG in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal draws (Box–Muller). */
export function gaussian(random: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

export interface CalmOptions {
  seed?: number;
  /** Typical size of each layer's gradient norm. */
  layerScales?: number[];
  /** Log-normal noise on each layer's norm (σ of the log). */
  noise?: number;
  /** Peak learning rate, reached after a linear warm-up of `warmupSteps`. */
  lr?: number;
  warmupSteps?: number;
}

/**
 * A healthy run: per-layer norms drift slowly (±30% over ~700 steps) with log-normal noise (a
 * shared factor and one per layer), the loss decays with 5% noise, the LR warms up linearly,
 * and the update ratio is lr·‖g‖/‖w‖ with a slowly growing ‖w‖.
 */
export function calmSeries(steps: number, options: CalmOptions = {}): StepObservation[] {
  const { seed = 1, layerScales = [0.6, 0.5, 0.3], noise = 0.2, lr = 0.1, warmupSteps = 100 } = options;
  const normal = gaussian(mulberry32(seed));
  const out: StepObservation[] = [];
  for (let step = 0; step < steps; step++) {
    const drift = 1 + 0.3 * Math.sin((2 * Math.PI * step) / 700);
    const shared = Math.exp(0.5 * noise * normal());
    const layerNorms = layerScales.map((scale) => scale * drift * shared * Math.exp(noise * normal()));
    const gradNorm = Math.hypot(...layerNorms);
    const loss = (0.3 + 2 * Math.exp(-step / 400)) * (1 + 0.05 * normal());
    const stepLr = lr * Math.min(1, (step + 1) / warmupSteps);
    const weightNorm = 10 + 0.002 * step;
    out.push({ step, loss, gradNorm, layerNorms, lr: stepLr, updateRatio: (stepLr * gradNorm) / weightNorm, weightNorm });
  }
  return out;
}

/** A copy of `obs` with every layer norm (hence the global norm and the update) times `factor`. */
export function scaleNorms(obs: StepObservation, factor: number): StepObservation {
  return { ...obs, gradNorm: obs.gradNorm * factor, layerNorms: obs.layerNorms.map((n) => n * factor), updateRatio: obs.updateRatio * factor };
}

/** A copy of `obs` with one layer's norm times `factor`; the global norm and update follow. */
export function scaleLayer(obs: StepObservation, layer: number, factor: number): StepObservation {
  const layerNorms = obs.layerNorms.map((n, i) => (i === layer ? n * factor : n));
  const gradNorm = Math.hypot(...layerNorms);
  return { ...obs, layerNorms, gradNorm, updateRatio: (obs.updateRatio * gradNorm) / obs.gradNorm };
}

/** Every decision must be usable as is: never a NaN clip, LR and step scales in (0, 1], JSON-safe events. */
export function expectSane(decision: Decision): void {
  if (decision.clipTo !== null) {
    expect(Number.isFinite(decision.clipTo)).toBe(true);
    expect(decision.clipTo).toBeGreaterThan(0);
  }
  expect(decision.stepScale).toBeGreaterThan(0);
  expect(decision.stepScale).toBeLessThanOrEqual(1);
  const bounded = decision.clipTo !== null || decision.stepScale < 1;
  expect(Number.isFinite(decision.lrScale)).toBe(true);
  expect(decision.lrScale).toBeGreaterThan(0);
  expect(decision.lrScale).toBeLessThanOrEqual(1);
  expect(JSON.parse(JSON.stringify(decision.events))).toEqual(decision.events);
  expect(decision.events.some((e) => e.kind === "clip")).toBe(bounded);
  expect(decision.skip).toBe(decision.action === "skip" || decision.action === "rollback" || decision.action === "stop");
  expect(decision.action === "none").toBe(!bounded && !decision.skip && decision.rollbackBefore === null && decision.stop === null && !decision.events.some((e) => e.kind === "lrLowered"));
}

export interface Run {
  decisions: Decision[];
  state: WatchdogState;
}

/**
 * Runs a series through `decide`. Like the trainer, it reports each update ratio at the LR scale
 * in force: a series' `updateRatio` is the one at the scheduled LR.
 */
export function run(config: WatchdogConfig, series: readonly StepObservation[], state: WatchdogState = initialState(config, LAYERS)): Run {
  const decisions: Decision[] = [];
  let current = state;
  for (const obs of series) {
    const result = decide(config, current, { ...obs, updateRatio: obs.updateRatio * current.ladder.lrScale });
    expectSane(result.decision);
    decisions.push(result.decision);
    current = result.state;
  }
  return { decisions, state: current };
}

/** Steps whose decision did something (the step row's action is not "none"). */
export function interventions(decisions: readonly Decision[]): number[] {
  return decisions.flatMap((d, i) => (d.action === "none" ? [] : [i]));
}

/** Deep-freezes a value so that any mutation throws (test modules run in strict mode). */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
