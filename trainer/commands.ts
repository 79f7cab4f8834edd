// Commands an operator sends a running job (POST /api/v1/jobs/:id/commands): part of the job
// contract, like the spec. They travel through Postgres (a Command row plus NOTIFY job_control)
// and the training loop applies them at the next step boundary.
import Type, { type Static } from "typebox";
import { POLICIES } from "./watchdog/index.ts";

export const CommandSchema = Type.Union([
  Type.Object(
    { type: Type.Literal("setLearningRate"), value: Type.Number({ exclusiveMinimum: 0, maximum: 1000, description: "The learning rate from now on; replaces the schedule" }) },
    { additionalProperties: false },
  ),
  Type.Object(
    { type: Type.Literal("scaleLearningRate"), factor: Type.Number({ exclusiveMinimum: 0, maximum: 1000, description: "Multiplies the learning rate from now on (0.5 halves it)" }) },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      type: Type.Literal("setClipThreshold"),
      maxNorm: Type.Union([Type.Number({ exclusiveMinimum: 0, maximum: 1e12 }), Type.Null()], { description: "Clip the global gradient norm to this (on top of the watchdog); null removes it" }),
    },
    { additionalProperties: false },
  ),
  Type.Object({ type: Type.Literal("setPolicy"), policy: Type.Enum(POLICIES, { description: "Switch the watchdog to this preset (its history starts afresh)" }) }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal("pause") }, { additionalProperties: false, description: "Hold training before the next step (the job keeps its worker)" }),
  Type.Object({ type: Type.Literal("resume") }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal("checkpoint") }, { additionalProperties: false, description: "Take a checkpoint at the next step boundary" }),
  Type.Object({ type: Type.Literal("stop") }, { additionalProperties: false, description: "End training at the next step boundary; the job ends as cancelled, its checkpoints kept" }),
]);
export type Command = Static<typeof CommandSchema>;

/** A command as the loop receives it: with the id its acknowledgement refers to. */
export type PendingCommand = Command & { id: string };
