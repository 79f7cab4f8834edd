// Faults a job can inject on purpose, to demonstrate, test and benchmark the watchdog: each
// reproduces a real cause of gradient explosion at a known step. Every injected fault is
// reported as an event, so a reader of the run sees it.
import Type, { type Static } from "typebox";

const Step = Type.Integer({ minimum: 0, description: "Step at which the fault strikes (0-based)" });
const Factor = Type.Number({ exclusiveMinimum: 0, maximum: 1e12 });

export const FaultSchema = Type.Union([
  Type.Object(
    {
      kind: Type.Literal("lrSpike"),
      step: Step,
      factor: Factor,
      duration: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1, description: "Steps the learning rate stays multiplied" })),
    },
    { additionalProperties: false, description: "Learning rate × factor for `duration` steps" },
  ),
  Type.Object({ kind: Type.Literal("badBatch"), step: Step, factor: Factor }, { additionalProperties: false, description: "That batch's inputs × factor" }),
  Type.Object({ kind: Type.Literal("gradScale"), step: Step, factor: Factor }, { additionalProperties: false, description: "That step's gradients × factor" }),
  Type.Object({ kind: Type.Literal("nanBatch"), step: Step }, { additionalProperties: false, description: "NaN in that batch's inputs" }),
]);
export type FaultSpec = Static<typeof FaultSchema>;

export const FaultsSchema = Type.Array(FaultSchema, { maxItems: 1000, description: "Faults to inject (demos, tests, benchmarks)" });

/** What the faults do to one step. */
export interface StepFaults {
  /** Multiplies the learning rate (1: none). */
  lrFactor: number;
  /** Multiplies the batch inputs (1: none). */
  inputFactor: number;
  /** Replaces the batch inputs with NaN. */
  nanInputs: boolean;
  /** Multiplies the gradients (1: none). */
  gradFactor: number;
  /** The faults that begin at this step, for the event log. */
  starting: FaultSpec[];
}

export function faultsAt(faults: readonly FaultSpec[] | undefined, step: number): StepFaults {
  const result: StepFaults = { lrFactor: 1, inputFactor: 1, nanInputs: false, gradFactor: 1, starting: [] };
  for (const fault of faults ?? []) {
    const active = fault.kind === "lrSpike" ? step >= fault.step && step < fault.step + (fault.duration ?? 1) : step === fault.step;
    if (!active) continue;
    if (step === fault.step) result.starting.push(fault);
    switch (fault.kind) {
      case "lrSpike":
        result.lrFactor *= fault.factor;
        break;
      case "badBatch":
        result.inputFactor *= fault.factor;
        break;
      case "gradScale":
        result.gradFactor *= fault.factor;
        break;
      case "nanBatch":
        result.nanInputs = true;
        break;
    }
  }
  return result;
}
