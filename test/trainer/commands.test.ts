import { beforeAll, describe, expect, it } from "vitest";
import { resolveBackend } from "../../trainer/backend.ts";
import type { PendingCommand } from "../../trainer/commands.ts";
import { parseJobSpec } from "../../trainer/spec.ts";
import { prepareTraining, type StepRecord, type TrainingCheckpoint, type TrainingEvent } from "../../trainer/train-loop.ts";
import { silentLog } from "../helpers/database.ts";
import { demoSpec } from "./fixtures.ts";

/** Trains, handing `commands[step]` to the loop before that step. */
async function trainWith(commands: Record<number, PendingCommand[]>, overrides: Record<string, unknown> = {}) {
  const training = prepareTraining(parseJobSpec({ ...demoSpec(), steps: 60, ...overrides }, { maxSteps: 1000 }));
  const records: StepRecord[] = [];
  const events: TrainingEvent[] = [];
  const acks: [string, number, string | null][] = [];
  const checkpoints: TrainingCheckpoint[] = [];
  const summary = await training.run({
    onStep: (r) => records.push(r),
    onEvent: (e) => events.push(e),
    onCheckpoint: (c) => void checkpoints.push(c),
    // Before step k the loop has recorded k steps; each batch of commands is handed over once.
    takeCommands: () => {
      const due = commands[records.length] ?? [];
      delete commands[records.length];
      return due;
    },
    onCommandApplied: (c, step, error) => acks.push([c.id, step, error]),
  });
  training.dispose();
  return { records, events, acks, checkpoints, summary };
}

let id = 0;
const command = (c: Record<string, unknown>) => ({ ...c, id: String(++id) }) as PendingCommand;

describe("operator commands in the loop", () => {
  beforeAll(() => resolveBackend(undefined, silentLog));

  it("setLearningRate replaces the schedule from the next step; scaleLearningRate multiplies it", async () => {
    const { records, acks, events } = await trainWith({ 10: [command({ type: "setLearningRate", value: 0.02 })], 20: [command({ type: "scaleLearningRate", factor: 0.5 })] }, { watchdog: { policy: "off" } });
    expect(records.slice(8, 12).map((r) => r.lr)).toEqual([0.1, 0.1, 0.02, 0.02]);
    expect(records[20]?.lr).toBe(0.01);
    expect(acks.map(([, step, error]) => [step, error])).toEqual([[10, null], [20, null]]);
    expect(events.filter((e) => e.kind === "commandApplied").map((e) => e.detail)).toEqual([
      { command: { type: "setLearningRate", value: 0.02 }, lrBefore: 0.1, lrAfter: 0.02 },
      { command: { type: "scaleLearningRate", factor: 0.5 }, lrBefore: 0.02, lrAfter: 0.01 },
    ]);
  });

  it("setClipThreshold clips every later step to it", async () => {
    const { records } = await trainWith({ 5: [command({ type: "setClipThreshold", maxNorm: 0.01 })] }, { watchdog: { policy: "off" } });
    expect(records[4]?.clipCoef).toBe(1);
    for (const r of records.slice(5)) {
      expect(r.gradNormAfter).toBeCloseTo(Math.min(r.gradNorm, 0.01), 10);
      expect(r.action).toBe(r.gradNorm > 0.01 ? "clip" : "none");
    }
  });

  it("checkpoint takes one at that step; stop ends the run there", async () => {
    const { records, checkpoints, summary } = await trainWith({ 7: [command({ type: "checkpoint" })], 30: [command({ type: "stop" })] });
    expect(checkpoints.map((c) => c.step)).toEqual([7]);
    expect(records).toHaveLength(30);
    expect(summary).toMatchObject({ stepsRun: 30, stoppedByCommand: true, stopped: true });
  });

  it("setPolicy off stops the watchdog's interventions; the setting survives a checkpoint", async () => {
    const faults = [{ kind: "nanBatch", step: 40 }];
    const guarded = await trainWith({}, { faults });
    expect(guarded.records[40]?.action).toBe("skip");
    const off = await trainWith({ 10: [command({ type: "setPolicy", policy: "off" }), command({ type: "checkpoint" })] }, { faults });
    expect(off.records[40]?.action).toBe("none");
    expect(off.checkpoints[0]?.state.operator.policy).toBe("off");
  });

  it("pause holds the next step until resume", async () => {
    const training = prepareTraining(parseJobSpec({ ...demoSpec(), steps: 20 }, { maxSteps: 100 }));
    let steps = 0;
    const queue: PendingCommand[] = [];
    const pausedChanges: boolean[] = [];
    const run = training.run({ onStep: () => steps++, takeCommands: () => queue.splice(0), onPausedChange: (p) => pausedChanges.push(p) });
    queue.push(command({ type: "pause" }));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const heldAt = steps;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(steps).toBe(heldAt);
    expect(heldAt).toBeLessThan(20);
    queue.push(command({ type: "resume" }));
    expect((await run).stepsRun).toBe(20);
    expect(pausedChanges).toEqual([true, false]);
    training.dispose();
  });
});
