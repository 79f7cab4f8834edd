import { beforeAll, describe, expect, it } from "vitest";
import { resolveBackend } from "../../trainer/backend.ts";
import { faultsAt } from "../../trainer/faults.ts";
import { parseJobSpec } from "../../trainer/spec.ts";
import { prepareTraining, type StepRecord, type TrainingEvent } from "../../trainer/train-loop.ts";
import { silentLog } from "../helpers/database.ts";
import { demoSpec } from "./fixtures.ts";

// Unguarded, so each fault's raw effect on the norms shows (the watchdog's tests show the rest).
async function train(faults: unknown[], overrides: Record<string, unknown> = {}) {
  const spec = { ...demoSpec(), steps: 40, faults, watchdog: { policy: "off" }, ...overrides };
  const training = prepareTraining(parseJobSpec(spec, { maxSteps: 10_000 }));
  const records: StepRecord[] = [];
  const events: TrainingEvent[] = [];
  await training.run({ onStep: (r) => records.push(r), onEvent: (e) => events.push(e) });
  training.dispose();
  return { records, events };
}

describe("faults", () => {
  let clean: StepRecord[];
  beforeAll(async () => {
    await resolveBackend(undefined, silentLog);
    clean = (await train([])).records;
  });

  it("resolve per step: an lrSpike lasts its duration, the others one step", () => {
    const faults = [
      { kind: "lrSpike" as const, step: 5, factor: 40, duration: 3 },
      { kind: "badBatch" as const, step: 6, factor: 1000 },
    ];
    expect(faultsAt(faults, 4)).toMatchObject({ lrFactor: 1, inputFactor: 1, starting: [] });
    expect(faultsAt(faults, 5)).toMatchObject({ lrFactor: 40, starting: [faults[0]] });
    expect(faultsAt(faults, 6)).toMatchObject({ lrFactor: 40, inputFactor: 1000, starting: [faults[1]] });
    expect(faultsAt(faults, 8)).toMatchObject({ lrFactor: 1 });
  });

  it("gradScale multiplies that step's gradient norm exactly, and is reported as an event", async () => {
    const { records, events } = await train([{ kind: "gradScale", step: 20, factor: 100 }]);
    expect(records[19]).toEqual({ ...clean[19], stepMs: records[19]?.stepMs });
    expect((records[20]?.gradNorm ?? 0) / (clean[20]?.gradNorm ?? 1)).toBeCloseTo(100, 3);
    expect(events).toEqual([expect.objectContaining({ step: 20, kind: "faultInjected", detail: expect.objectContaining({ fault: "gradScale", factor: 100 }) })]);
  });

  it("badBatch makes that step's gradient norm jump", async () => {
    const { records } = await train([{ kind: "badBatch", step: 20, factor: 1000 }], { model: { layers: [{ type: "dense", units: 32, activation: "tanh", inputShape: [2] }, { type: "dense", units: 2 }] } });
    const before = records[19]?.gradNorm ?? 0;
    expect(records[20]?.gradNorm).toBeGreaterThan(10 * before);
  });

  it("nanBatch makes that step non-finite", async () => {
    const { records } = await train([{ kind: "nanBatch", step: 20 }]);
    expect(records[19]?.nonFinite).toBe(false);
    expect(records[20]?.nonFinite).toBe(true);
  });

  it("lrSpike multiplies the applied learning rate and the proposed update for its duration", async () => {
    const { records } = await train([{ kind: "lrSpike", step: 20, factor: 40, duration: 2 }]);
    expect(records.slice(19, 23).map((r) => r.lr)).toEqual([0.1, 4, 4, 0.1]);
    expect((records[20]?.updateRatio ?? 0) / (clean[20]?.updateRatio ?? 1)).toBeCloseTo(40, 3);
  });

  it("refuses a fault that would never strike, naming it", () => {
    expect(() => parseJobSpec({ ...demoSpec(), steps: 10, faults: [{ kind: "nanBatch", step: 10 }] }, { maxSteps: 100 })).toThrow(/\/faults\/0\/step/);
  });
});
