// The training loop: builds model, data and optimizer from a spec and runs the steps. Each step
// is measured, judged by the guard (the watchdog), and applied as decided; faults are injected
// where the spec asks; checkpoints are taken on schedule and kept for rollback. It knows
// nothing of Postgres or sockets: everything leaves through the callbacks.
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import * as tf from "@tensorflow/tfjs-core";
import { type Dataset, makeDataset, splitDataset } from "./data/datasets.ts";
import { faultsAt } from "./faults.ts";
import { createGuard } from "./guard.ts";
import { buildModel, dropoutCounters, restoreDropoutCounters } from "./model.ts";
import { makeOptimizer, readOptimizerScalars, scheduledRate, writeOptimizerScalars } from "./optimizer.ts";
import { createRandom, permutation, type Random } from "./random.ts";
import type { PendingCommand } from "./commands.ts";
import type { JobSpec } from "./spec.ts";
import {
  type AppliedOnDevice,
  applyUpdate,
  type Batch,
  boundedStep,
  type GradientMeasurement,
  LOSSES,
  measureGradients,
  type PendingReadout,
  readBoundedSteps,
  type StepContext,
} from "./train-step.ts";
import { clipCoefficient, type Decision, type DeviceBounds, type Policy, type StepObservation } from "./watchdog/index.ts";

export type StepAction = "none" | "clip" | "lowerLr" | "skip" | "rollback" | "stop";

/** What one step produced: one Step row. */
export interface StepRecord {
  step: number;
  loss: number;
  gradNorm: number;
  layerNorms: number[];
  weightNorm: number;
  /** ‖Δw‖/‖w‖ of the proposed update (lr·‖g‖/‖w‖ for SGD). */
  updateRatio: number;
  /** Norm of the gradients actually applied (0 when skipped). */
  gradNormAfter: number;
  clipCoef: number;
  action: StepAction;
  /** Learning rate applied (or that would have been, for a skipped step). */
  lr: number;
  nonFinite: boolean;
  stepMs: number;
  /** Validation loss, on the steps where it was measured. */
  valLoss: number | null;
}

export interface TrainingEvent {
  step: number;
  kind: string;
  severity: "info" | "warning" | "critical";
  message: string;
  detail: Record<string, unknown>;
}

/** What the guard sees of a step before its update, and what it decides: the watchdog's types. */
export type GuardObservation = StepObservation;
export type GuardDecision = Decision;

/** The watchdog, seen from the loop: decides, and its state travels with checkpoints. */
export interface StepGuard {
  decide(observation: GuardObservation): GuardDecision;
  snapshot(): unknown;
  restore(snapshot: unknown): void;
  /** After a rollback: history from the checkpoint, counters from now. */
  afterRollback(restored: unknown): void;
  /** What it would bound the next step's update to, before seeing its numbers (for reads in batches). */
  deviceBounds?(): DeviceBounds;
}

/** Everything needed to continue exactly: model and optimizer tensors, cursors, guard state. */
export interface TrainingCheckpoint {
  /** Steps completed; training continues at this step. */
  step: number;
  weights: NamedValues[];
  optimizer: NamedValues[];
  state: {
    sampler: SamplerState;
    lrScale: number;
    optimizerScalars: Record<string, number>;
    dropout: Record<string, number>;
    operator: OperatorSettings;
    guard: unknown;
    /** The weight norm in use (see WeightNormCache); absent in checkpoints saved before it. */
    weightNorm?: WeightNormCache | null;
  };
}

/**
 * ‖w‖ measured at `step` and reused for the next steps: it moves by the update ratio per step
 * (about 1e-3 in healthy training), and measuring it costs as much as measuring the gradient.
 * It is measured again every WEIGHT_NORM_EVERY steps, after any update that moved the weights
 * by more than REMEASURE_AFTER_RATIO of their norm, and after weights are restored. Kept with
 * checkpoints, so a resumed run measures exactly when the uninterrupted one would.
 */
export interface WeightNormCache {
  value: number;
  step: number;
}
const WEIGHT_NORM_EVERY = 10;
const REMEASURE_AFTER_RATIO = 0.01;

/** What operators' commands changed, kept with checkpoints so a resumed job keeps it. */
export interface OperatorSettings {
  /** Replaces the schedule (setLearningRate); null: the schedule applies. */
  learningRate: number | null;
  /** Multiplies the learning rate (scaleLearningRate). */
  learningRateFactor: number;
  /** Clip the global norm to this on top of the watchdog (setClipThreshold). */
  maxNorm: number | null;
  /** The watchdog policy chosen by setPolicy; null: the spec's. */
  policy: Policy | null;
}

export interface NamedValues {
  name: string;
  shape: number[];
  values: Float32Array;
}

export interface TrainCallbacks {
  /** After every step, in step order. Must not block: buffer, don't write. */
  onStep?(record: StepRecord): void;
  /** For each event, before the onStep of its step. */
  onEvent?(event: TrainingEvent): void;
  /** Each checkpoint taken on schedule (persist it; the loop keeps its own for rollback). */
  onCheckpoint?(checkpoint: TrainingCheckpoint): void | Promise<void>;
  /** After a rollback to the checkpoint of `step`: newer checkpoints are no longer valid. */
  onCheckpointsDiscarded?(step: number): void | Promise<void>;
  /** Checked before each step; true stops the loop cleanly after the current step. */
  shouldStop?(): boolean;
  /** Operator commands that arrived since the last call, applied before the next step. */
  takeCommands?(): PendingCommand[];
  /** A command took effect before `step`, or was rejected with `error`. */
  onCommandApplied?(command: PendingCommand, step: number, error: string | null): void;
  /** The job was paused (true) or resumed (false) by a command. */
  onPausedChange?(paused: boolean): void;
}

export interface TrainSummary {
  layerNames: string[];
  /** Steps completed in all (the last step is stepsRun - 1). */
  stepsRun: number;
  /** Stopped early: by shouldStop (hand the job back) or by a stop command. */
  stopped: boolean;
  stoppedByCommand: boolean;
  /** Why the guard stopped the job, if it did. */
  diverged: string | null;
  finalLoss: number | null;
  finalValLoss: number | null;
}

export interface PreparedTraining {
  layerNames: string[];
  /**
   * Continue from the newest of a job's checkpoints (a crash, a retry) instead of step 0. All of
   * them are given, oldest first, so later rollbacks find the same targets as an uninterrupted run.
   */
  restore(checkpoints: TrainingCheckpoint[]): Promise<void>;
  run(callbacks?: TrainCallbacks): Promise<TrainSummary>;
  /** Copies of the trainable variables' values, layer by layer, read synchronously (tests; not on WebGPU in Node). */
  readWeights(): Float32Array[];
  /** Frees the model, optimizer and data tensors. */
  dispose(): void;
}

export interface TrainingOptions {
  /** Replaces the spec's watchdog (tests, benchmarks); null trains unguarded. */
  guard?: StepGuard | null;
  /** The data, when it is not generated from the spec (an uploaded dataset). */
  dataset?: Dataset;
  /**
   * 0 (the default): the guard decides from each step's numbers before its update, which costs a
   * device→host read per step. n ≥ 1: each update is bounded on the device by what the guard
   * already knows (StepGuard.deviceBounds), and the numbers of n steps are read back at once and
   * judged then; rollbacks, LR changes and stops take effect from the next step. A device
   * backend's read stalls its queue (×3.4 on a GPU, DESIGN.md): see readEveryFor in backend.ts.
   */
  readEvery?: number;
}

/** Builds everything a spec needs; `run` then trains it. Layer names are known before step 0. */
export function prepareTraining(spec: JobSpec, options: TrainingOptions = {}): PreparedTraining {
  const { train, validation } = splitDataset(options.dataset ?? makeDataset(spec.data), spec.validation.fraction);
  const built = buildModel(spec);
  let guard = options.guard === undefined ? createGuard(spec.watchdog, built.layerNames) : (options.guard ?? undefined);
  let operator: OperatorSettings = { learningRate: null, learningRateFactor: 1, maxNorm: null, policy: null };
  let optimizer = makeOptimizer(spec.optimizer);
  const context: StepContext = { model: built.model, optimizer, loss: LOSSES[spec.loss], layerVariables: built.layerVariables };
  const sampler = new BatchSampler(train, spec.batchSize, spec.seed);
  const validationBatches = validation.examples > 0 ? validationTensors(validation) : [];
  const readEvery = options.readEvery ?? 0;
  let firstStep = 0;
  let lrScale = 1;
  let weightNorm: WeightNormCache | null = null;
  /** Newest last; at most spec.checkpoint.keep. */
  const checkpoints: TrainingCheckpoint[] = [];

  const capture = async (step: number): Promise<TrainingCheckpoint> => ({
    step,
    weights: await Promise.all(built.model.weights.map((weight) => named(weight.name, weight.read()))),
    optimizer: await Promise.all(
      (await optimizer.getWeights()).map(async ({ name, tensor }) => {
        const values = await named(name, tensor);
        // getWeights hands out the optimizer's own variables (keep them) and a fresh
        // iteration-count tensor (free it).
        if (typeof (tensor as tf.Variable).assign !== "function") tensor.dispose();
        return values;
      }),
    ),
    state: {
      sampler: sampler.snapshot(),
      lrScale,
      optimizerScalars: await readOptimizerScalars(optimizer),
      dropout: dropoutCounters(built.model),
      operator: { ...operator },
      guard: guard?.snapshot() ?? null,
      weightNorm,
    },
  });

  /** Weights and optimizer back to the checkpoint; cursors only when resuming, not on rollback. */
  const restoreTensors = async (checkpoint: TrainingCheckpoint) => {
    const weights = checkpoint.weights.map((w) => tf.tensor(w.values, w.shape));
    built.model.setWeights(weights);
    tf.dispose(weights);
    // A fresh optimizer: setWeights on a used one would leak its old accumulators.
    optimizer.dispose();
    optimizer = makeOptimizer(spec.optimizer);
    context.optimizer = optimizer;
    const values = checkpoint.optimizer.map((o) => ({ name: o.name, tensor: tf.tensor(o.values, o.shape) }));
    await optimizer.setWeights(values);
    tf.dispose(values.map((v) => v.tensor));
    writeOptimizerScalars(optimizer, checkpoint.state.optimizerScalars);
    weightNorm = null;
  };

  /** The learning rate before faults and the watchdog: the schedule, or the operator's. */
  const baseRate = (step: number) => (operator.learningRate ?? scheduledRate(spec.optimizer, step, spec.steps)) * operator.learningRateFactor;
  const effectiveRate = (step: number) => baseRate(step) * lrScale;

  const validationLoss = async (): Promise<number> => {
    const total = tf.tidy(() =>
      tf.addN(validationBatches.map((b) => tf.mul(LOSSES[spec.loss](b.y, built.model.predict(b.x) as tf.Tensor), b.x.shape[0] as number))),
    );
    const value = (await total.data())[0] as number;
    total.dispose();
    return value / validation.examples;
  };

  return {
    layerNames: built.layerNames,
    readWeights: () => built.layerVariables.flat().map((variable) => variable.dataSync() as Float32Array),
    dispose: () => {
      built.model.dispose();
      optimizer.dispose();
      for (const batch of validationBatches) tf.dispose([batch.x, batch.y]);
    },
    async restore(saved) {
      const checkpoint = saved.at(-1);
      if (!checkpoint) return;
      await restoreTensors(checkpoint);
      sampler.restore(checkpoint.state.sampler);
      restoreDropoutCounters(built.model, checkpoint.state.dropout ?? {});
      lrScale = checkpoint.state.lrScale;
      weightNorm = checkpoint.state.weightNorm ?? null;
      operator = { ...checkpoint.state.operator };
      // A policy switched by command before the checkpoint: its state only fits its own guard.
      if (operator.policy !== null && options.guard === undefined) guard = createGuard({ policy: operator.policy }, built.layerNames);
      if (guard && checkpoint.state.guard !== null) guard.restore(checkpoint.state.guard);
      firstStep = checkpoint.step;
      checkpoints.splice(0, checkpoints.length, ...saved.slice(-spec.checkpoint.keep));
    },
    async run(callbacks = {}) {
      let finalLoss: number | null = null;
      let finalValLoss: number | null = null;
      let diverged: string | null = null;
      let step = firstStep;
      const emit = (event: TrainingEvent) => callbacks.onEvent?.(event);
      if (checkpoints.length === 0) checkpoints.push(await capture(step)); // rollback target before any trouble

      let paused = false;
      let stoppedByCommand = false;
      /** Applies an operator command before `step`; returns why it was rejected, or null. */
      const apply = async (command: PendingCommand): Promise<string | null> => {
        const lrBefore = effectiveRate(step);
        switch (command.type) {
          case "setLearningRate":
            operator = { ...operator, learningRate: command.value, learningRateFactor: 1 };
            break;
          case "scaleLearningRate":
            operator = { ...operator, learningRateFactor: operator.learningRateFactor * command.factor };
            break;
          case "setClipThreshold":
            operator = { ...operator, maxNorm: command.maxNorm };
            break;
          case "setPolicy":
            if (options.guard !== undefined) return "this training has a fixed guard";
            guard = createGuard({ policy: command.policy }, built.layerNames);
            operator = { ...operator, policy: command.policy };
            lrScale = 1;
            break;
          case "pause":
          case "resume":
            paused = command.type === "pause";
            callbacks.onPausedChange?.(paused);
            break;
          case "checkpoint": {
            const checkpoint = await capture(step);
            checkpoints.push(checkpoint);
            if (checkpoints.length > spec.checkpoint.keep) checkpoints.shift();
            await callbacks.onCheckpoint?.(checkpoint);
            break;
          }
          case "stop":
            stoppedByCommand = true;
            break;
        }
        const { id: _, ...args } = command;
        emit({
          step,
          kind: "commandApplied",
          severity: "info",
          message: `applied ${command.type} before step ${step}`,
          detail: { command: args, lrBefore, lrAfter: effectiveRate(step) },
        });
        return null;
      };
      const applyCommands = async (commands: PendingCommand[]) => {
        for (const command of commands) {
          const error = await apply(command);
          callbacks.onCommandApplied?.(command, step, error);
        }
      };

      /** What a step was measured as, decided and applied: the end of every step, host-decided or read later. */
      const conclude = async (done: ConcludedStep) => {
        const { step, measurement, observation, decision, applied, events } = done;
        const appliedRatio = applied.skipped ? 0 : (applied.lr * measurement.updateNorm) / measurement.weightNorm;
        if (!(appliedRatio <= REMEASURE_AFTER_RATIO)) weightNorm = null;
        for (const event of events) emit(event);

        if (decision.rollbackBefore !== null) {
          const target = [...checkpoints].reverse().find((c) => c.step <= (decision.rollbackBefore as number)) ?? checkpoints[0];
          if (target) {
            // Checkpoints taken after it may hold the trouble: never roll back to them.
            checkpoints.splice(checkpoints.indexOf(target) + 1);
            await callbacks.onCheckpointsDiscarded?.(target.step);
            await restoreTensors(target);
            if (guard) guard.afterRollback(target.state.guard);
            const { lastTrained } = done;
            emit({
              step,
              kind: "rolledBack",
              severity: "warning",
              message: `restored the checkpoint of step ${target.step}; batches ${target.step}..${lastTrained} are skipped`,
              detail: { checkpointStep: target.step, skippedBatches: lastTrained - target.step + 1 },
            });
          }
        }
        if (decision.stop !== null) diverged = decision.stop;

        finalLoss = measurement.loss;
        // After a stop, steps read with it were trained too: the validation loss is of the last one.
        const isLast = step === spec.steps - 1 || (diverged !== null && step === done.lastTrained);
        const valLoss = validationBatches.length > 0 && ((step + 1) % spec.validation.everySteps === 0 || isLast) ? await validationLoss() : null;
        if (valLoss !== null) finalValLoss = valLoss;
        const bounded = applied.clipCoef < 1 || applied.stepScale < 1;
        const appliedAction: StepAction = applied.skipped ? "skip" : bounded ? "clip" : "none";
        callbacks.onStep?.({
          step,
          ...measurement,
          updateRatio: observation.updateRatio,
          gradNormAfter: applied.skipped ? 0 : measurement.gradNorm * applied.clipCoef,
          clipCoef: applied.clipCoef,
          action: ACTION_RANK[decidedAction(decision)] > ACTION_RANK[appliedAction] ? decidedAction(decision) : appliedAction,
          lr: applied.lr,
          stepMs: done.stepMs,
          valLoss,
        });
      };

      /** Steps bounded on the device and not read yet (readEvery ≥ 1), oldest first. */
      const pending: PendingStep[] = [];
      /** Reads the pending steps in one transfer and concludes them in order. */
      const readPending = async () => {
        if (pending.length === 0) return;
        const taken = pending.splice(0);
        const results = await readBoundedSteps(context, taken);
        const stepMs = (performance.now() - (taken[0] as PendingStep).started) / taken.length;
        const lastTrained = (taken.at(-1) as PendingStep).step;
        let rolledBackAt: number | null = null;
        for (const [i, { measurement, applied }] of results.entries()) {
          const entry = taken[i] as PendingStep;
          const { step, proposedLr, lrScale: scale } = entry;
          if (entry.knownWeightNorm === undefined) weightNorm = { value: measurement.weightNorm, step };
          const observation = observe(step, measurement, proposedLr, scale);
          const lr = proposedLr * scale * applied.stepScale;
          if (rolledBackAt !== null || diverged !== null) {
            // Trained after the step that rolled back or stopped the job, before that was known.
            const discarded = rolledBackAt !== null;
            await conclude({
              step,
              measurement,
              observation,
              decision: NO_DECISION,
              applied: discarded ? { clipCoef: 1, stepScale: 1, skipped: true, lr } : { ...applied, lr },
              events: entry.events,
              stepMs,
              lastTrained,
            });
            continue;
          }
          const decision = guard?.decide(observation) ?? NO_DECISION;
          lrScale = decision.lrScale;
          if (decision.rollbackBefore !== null) rolledBackAt = step;
          const events = [...entry.events, ...eventsOfDeviceStep(step, measurement, decision, applied, entry.bounds)];
          await conclude({ step, measurement, observation, decision, applied: { ...applied, lr }, events, stepMs, lastTrained });
        }
      };

      for (; step < spec.steps && diverged === null; step++) {
        const commands = callbacks.takeCommands?.() ?? [];
        // Commands apply between known steps: a checkpoint or a new policy needs the guard up to date.
        if (commands.length > 0) await readPending();
        await applyCommands(commands);
        while (paused && !stoppedByCommand && !callbacks.shouldStop?.()) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          await applyCommands(callbacks.takeCommands?.() ?? []);
        }
        if (stoppedByCommand || callbacks.shouldStop?.() || diverged !== null) break;
        const started = performance.now();
        const faults = faultsAt(spec.faults, step);
        const events: TrainingEvent[] = faults.starting.map((fault) => ({
          step,
          kind: "faultInjected",
          severity: "info",
          message: `injected fault ${fault.kind} at step ${step}`,
          detail: { fault: fault.kind, ...fault },
        }));
        const batch = sampler.next(faults.inputFactor, faults.nanInputs);
        const knownWeightNorm = weightNorm !== null && step - weightNorm.step < WEIGHT_NORM_EVERY ? weightNorm.value : undefined;
        const proposedLr = baseRate(step) * faults.lrFactor;
        const isLast = step === spec.steps - 1;

        if (readEvery > 0) {
          const bounds = guard?.deviceBounds?.() ?? NO_BOUNDS;
          const withOperator = { ...bounds, clipTo: Math.min(bounds.clipTo, operator.maxNorm ?? Number.POSITIVE_INFINITY) };
          const readout = boundedStep(context, batch, faults.gradFactor, knownWeightNorm, withOperator, proposedLr * lrScale);
          tf.dispose([batch.x, batch.y]);
          pending.push({ ...readout, step, started, proposedLr, lrScale, events, bounds: withOperator });
          const checkpointDue = (step + 1) % spec.checkpoint.everySteps === 0;
          const validationDue = validationBatches.length > 0 && (step + 1) % spec.validation.everySteps === 0;
          if (pending.length >= readEvery || isLast || checkpointDue || validationDue) await readPending();
        } else {
          const { measurement, grads } = await measureGradients(context, batch, faults.gradFactor, knownWeightNorm);
          if (knownWeightNorm === undefined) weightNorm = { value: measurement.weightNorm, step };
          tf.dispose([batch.x, batch.y]);
          const observation = observe(step, measurement, proposedLr, lrScale);
          const decision = guard?.decide(observation) ?? NO_DECISION;
          lrScale = decision.lrScale;
          const clipCoef = clipCoefficient(measurement.gradNorm, Math.min(decision.clipTo ?? Number.POSITIVE_INFINITY, operator.maxNorm ?? Number.POSITIVE_INFINITY));
          const skip = decision.skip || decision.rollbackBefore !== null || decision.stop !== null;
          const lr = proposedLr * lrScale * decision.stepScale;
          applyUpdate(context, grads, { clipCoef, learningRate: lr, skip });
          const applied = { clipCoef: skip ? 1 : clipCoef, stepScale: skip ? 1 : decision.stepScale, skipped: skip, lr };
          await conclude({ step, measurement, observation, decision, applied, events: [...events, ...decision.events], stepMs: performance.now() - started, lastTrained: step });
        }

        if (pending.length === 0 && (step + 1) % spec.checkpoint.everySteps === 0 && !isLast && diverged === null) {
          const checkpoint = await capture(step + 1);
          checkpoints.push(checkpoint);
          if (checkpoints.length > spec.checkpoint.keep) checkpoints.shift();
          await callbacks.onCheckpoint?.(checkpoint);
        }
        // Let the writer's I/O and signal handlers run between steps.
        await yieldToEventLoop();
      }
      // Steps still on the device when the loop was stopped are concluded, not lost.
      await readPending();
      return { layerNames: built.layerNames, stepsRun: step, stopped: step < spec.steps && diverged === null, stoppedByCommand, diverged, finalLoss, finalValLoss };
    },
  };
}

/**
 * What the guard judges of a step: its measurement, the LR before the guard's scale, and the
 * update ratio at `lrScale`, the guard's scale in force when the step was taken.
 */
export function observe(step: number, measurement: GradientMeasurement, proposedLr: number, lrScale: number): GuardObservation {
  return {
    step,
    loss: measurement.loss,
    gradNorm: measurement.gradNorm,
    layerNorms: measurement.layerNorms,
    lr: proposedLr,
    updateRatio: measurement.weightNorm > 0 ? (proposedLr * lrScale * measurement.updateNorm) / measurement.weightNorm : Number.NaN,
    weightNorm: measurement.weightNorm,
  };
}

/** What an unguarded step does: apply the update as it is. */
export const NO_DECISION: GuardDecision = { clipTo: null, stepScale: 1, lrScale: 1, skip: false, rollbackBefore: null, stop: null, action: "none", events: [] };

/** What an unguarded step is bounded to on the device: nothing. */
const NO_BOUNDS: DeviceBounds = {
  clipTo: Number.POSITIVE_INFINITY,
  zClip: null,
  normOutlier: Number.POSITIVE_INFINITY,
  gateUpdateRatio: 0,
  updateSize: null,
  maxUpdateRatio: Number.POSITIVE_INFINITY,
  skipAboveLoss: Number.POSITIVE_INFINITY,
  skipNonFinite: false,
};

const ACTION_RANK: Record<StepAction, number> = { none: 0, clip: 1, lowerLr: 2, skip: 3, rollback: 4, stop: 5 };

/** What a decision did beyond the step's own update, which the record takes from what was applied. */
const decidedAction = (decision: GuardDecision): StepAction => (decision.action === "clip" || decision.action === "skip" ? "none" : decision.action);

/** A step bounded on the device, waiting to be read: what it was taken with. */
interface PendingStep extends PendingReadout {
  step: number;
  started: number;
  /** The LR before the watchdog's scale, and the scale in force when the step was taken. */
  proposedLr: number;
  lrScale: number;
  /** Its fault events, emitted with the step. */
  events: TrainingEvent[];
  /** What the device bounded it by. */
  bounds: DeviceBounds;
}

interface ConcludedStep {
  step: number;
  measurement: GradientMeasurement;
  observation: GuardObservation;
  decision: GuardDecision;
  /** What the update was, with the learning rate it was applied at. */
  applied: AppliedOnDevice & { lr: number };
  /** The step's events: its faults', then the guard's. */
  events: TrainingEvent[];
  stepMs: number;
  /** The last step trained when this one is concluded (itself, unless it was read late). */
  lastTrained: number;
}

/**
 * The events of a step bounded on the device, once the guard has judged it. Where its decision
 * on the step's own update matches what the device did (within 1%), they are the guard's. Where
 * it does not, the update cannot be taken back, and the guard's clip or skip events would claim
 * what did not happen: they are replaced by one that says what was applied and what the guard
 * wanted. `lateDecision` when the guard wanted more (its state had not seen the last steps when
 * the bounds were set, e.g. during ZClip's warm-up); `clip` or `skip` when the device did more.
 */
function eventsOfDeviceStep(step: number, measurement: GradientMeasurement, decision: GuardDecision, applied: AppliedOnDevice, bounds: DeviceBounds): TrainingEvent[] {
  // A rollback or a stop throws the update away whatever it was.
  if (decision.rollbackBefore !== null || decision.stop !== null) return decision.events;
  const wanted = decision.skip ? 0 : clipCoefficient(measurement.gradNorm, decision.clipTo) * decision.stepScale;
  const done = applied.skipped ? 0 : applied.clipCoef * applied.stepScale;
  if (Math.abs(wanted - done) <= 0.01 * Math.max(wanted, done)) return decision.events;
  const isMitigation = (e: TrainingEvent) => e.kind === "clip" || e.kind === "skip" || e.kind === "nonFinite";
  const describe = (factor: number) => (factor === 0 ? "skipped it" : factor === 1 ? "left it as it was" : `scaled it by ${factor.toPrecision(3)}`);
  const detail = {
    wanted: { skip: decision.skip, clipTo: decision.clipTo, stepScale: decision.stepScale },
    applied: { ...applied },
    findings: decision.events.filter(isMitigation).flatMap((e) => (e.detail.findings as unknown[] | undefined) ?? []),
    bounds: JSON.parse(JSON.stringify(bounds, (_, value) => (typeof value === "number" && !Number.isFinite(value) ? String(value) : value))),
  };
  const told =
    wanted < done
      ? {
          kind: "lateDecision",
          severity: "warning" as const,
          message: `step ${step}: judged from its numbers, the watchdog would have ${describe(wanted)}; on the device, bounded by what was known before the step, the update was ${done === 1 ? "applied as it was" : `scaled by ${done.toPrecision(3)}`}`,
        }
      : {
          kind: applied.skipped ? "skip" : "clip",
          severity: applied.skipped ? ("warning" as const) : ("info" as const),
          message: `step ${step} ${applied.skipped ? "skipped" : `scaled by ${done.toPrecision(3)}`} on the device, by the bounds known before the step; judged from its numbers, the watchdog would have ${describe(wanted)}`,
        };
  return [...decision.events.filter((e) => !isMitigation(e)), { step, ...told, detail }];
}

/** A tensor's values, read asynchronously: WebGPU in Node cannot read synchronously (tfjs's readSync needs OffscreenCanvas). */
async function named(name: string, tensor: tf.Tensor): Promise<NamedValues> {
  return { name, shape: tensor.shape, values: (await tensor.data()) as Float32Array };
}

/** The validation set as tensors once, in chunks small enough for any backend. */
function validationTensors(data: Dataset): Batch[] {
  const chunk = 1024;
  const xSize = size(data.featureShape);
  const ySize = size(data.targetShape);
  const batches: Batch[] = [];
  for (let start = 0; start < data.examples; start += chunk) {
    const n = Math.min(chunk, data.examples - start);
    batches.push({
      x: tf.tensor(data.x.subarray(start * xSize, (start + n) * xSize), [n, ...data.featureShape]),
      y: tf.tensor(data.y.subarray(start * ySize, (start + n) * ySize), [n, ...data.targetShape]),
    });
  }
  return batches;
}

export interface SamplerState {
  /** Random state before this epoch's order was drawn (redraws the same order). */
  epochRandomState: number;
  cursor: number;
}

/** Mini-batches in a seeded order, reshuffled every epoch; its position can be saved and restored. */
class BatchSampler {
  private random: Random;
  private epochRandomState: number;
  private order: Uint32Array;
  private cursor = 0;

  constructor(
    private readonly data: Dataset,
    private readonly batchSize: number,
    seed: number,
  ) {
    this.random = createRandom(seed);
    this.epochRandomState = this.random.state();
    this.order = permutation(data.examples, this.random);
  }

  snapshot(): SamplerState {
    return { epochRandomState: this.epochRandomState, cursor: this.cursor };
  }

  restore(state: SamplerState): void {
    this.random = createRandom(state.epochRandomState);
    this.epochRandomState = state.epochRandomState;
    this.order = permutation(this.data.examples, this.random);
    this.cursor = state.cursor;
  }

  /** The next batch; `inputFactor` and `nanInputs` inject the badBatch and nanBatch faults. */
  next(inputFactor = 1, nanInputs = false): Batch {
    const { data, batchSize } = this;
    const xSize = size(data.featureShape);
    const ySize = size(data.targetShape);
    const x = new Float32Array(batchSize * xSize);
    const y = new Float32Array(batchSize * ySize);
    for (let row = 0; row < batchSize; row++) {
      if (this.cursor === this.order.length) {
        this.epochRandomState = this.random.state();
        this.order = permutation(data.examples, this.random);
        this.cursor = 0;
      }
      const example = this.order[this.cursor++] as number;
      x.set(data.x.subarray(example * xSize, (example + 1) * xSize), row * xSize);
      y.set(data.y.subarray(example * ySize, (example + 1) * ySize), row * ySize);
    }
    if (nanInputs) x.fill(Number.NaN);
    else if (inputFactor !== 1) for (let i = 0; i < x.length; i++) x[i] = (x[i] as number) * inputFactor;
    return { x: tf.tensor(x, [batchSize, ...data.featureShape]), y: tf.tensor(y, [batchSize, ...data.targetShape]) };
  }
}

function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
