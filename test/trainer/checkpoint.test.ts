import { beforeAll, describe, expect, it } from "vitest";
import { resolveBackend } from "../../trainer/backend.ts";
import { loadCheckpoints, saveCheckpoint } from "../../trainer/checkpoint-store.ts";
import { type JobSpec, parseJobSpec } from "../../trainer/spec.ts";
import { type GuardDecision, prepareTraining, type StepGuard, type StepRecord, type TrainingCheckpoint } from "../../trainer/train-loop.ts";
import { createTestDatabase, silentLog, type TestDatabase } from "../helpers/database.ts";
import { demoSpec } from "./fixtures.ts";

const spec = (): JobSpec =>
  parseJobSpec({ ...demoSpec(), steps: 120, optimizer: { type: "adam", learningRate: 0.01 }, checkpoint: { everySteps: 40, keep: 2 } }, { maxSteps: 1000 });

const withoutTime = (records: StepRecord[]) => records.map(({ stepMs: _, ...rest }) => rest);

describe("checkpoints", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    await resolveBackend(undefined, silentLog);
    db = await createTestDatabase();
  });

  it("resume from a checkpoint gives exactly the steps of an uninterrupted run", async () => {
    const full: StepRecord[] = [];
    const uninterrupted = prepareTraining(spec());
    await uninterrupted.run({ onStep: (r) => full.push(r) });
    uninterrupted.dispose();

    // A run that crashes at step 100, after its checkpoint of step 80.
    const taken: TrainingCheckpoint[] = [];
    const crashed = prepareTraining(spec());
    let steps = 0;
    await crashed.run({ onCheckpoint: (c) => void taken.push(c), onStep: () => steps++, shouldStop: () => steps >= 100 });
    crashed.dispose();
    expect(taken.map((c) => c.step)).toEqual([40, 80]);

    // Through the database, as a retry on another worker would load it.
    const job = await db.prisma.job.create({ data: { name: "ckpt", spec: {} } });
    for (const checkpoint of taken) await saveCheckpoint(db.prisma, job.id, checkpoint, 2);
    const loaded = await loadCheckpoints(db.prisma, job.id);
    expect(loaded.map((c) => c.step)).toEqual([40, 80]);

    const resumed = prepareTraining(spec());
    await resumed.restore(loaded);
    const after: StepRecord[] = [];
    const summary = await resumed.run({ onStep: (r) => after.push(r) });
    resumed.dispose();
    expect(summary.stepsRun).toBe(120);
    expect(withoutTime(after)).toEqual(withoutTime(full.slice(80)));
  });

  it("keeps only the newest `keep` checkpoints of a job", async () => {
    const job = await db.prisma.job.create({ data: { name: "keep", spec: {} } });
    const training = prepareTraining(spec());
    const taken: TrainingCheckpoint[] = [];
    await training.run({ onCheckpoint: (c) => void taken.push(c) });
    training.dispose();
    for (const checkpoint of taken) await saveCheckpoint(db.prisma, job.id, checkpoint, 1);
    expect((await db.prisma.checkpoint.findMany({ where: { jobId: job.id } })).map((c) => c.step)).toEqual([80]);
  });

  it("a rollback restores the weights bit for bit from the checkpoint", async () => {
    // A guard that asks for one rollback at step 50: the loop must restore the checkpoint of step 40.
    const decisions: Partial<GuardDecision>[] = [];
    const guard: StepGuard = {
      decide: (obs) => {
        const rollback = obs.step === 50;
        decisions.push({ rollbackBefore: rollback ? 50 : null });
        return { clipTo: null, stepScale: 1, lrScale: 1, skip: false, rollbackBefore: rollback ? 50 : null, stop: null, action: rollback ? "rollback" : "none", events: [] };
      },
      snapshot: () => ({}),
      restore: () => {},
      afterRollback: () => {},
    };
    const training = prepareTraining(spec(), { guard });
    const taken: TrainingCheckpoint[] = [];
    let weightsAfterRollback: Float32Array[] = [];
    await training.run({
      onCheckpoint: (c) => void taken.push(c),
      onStep: (r) => {
        if (r.step === 50) weightsAfterRollback = training.readWeights();
      },
      shouldStop: () => decisions.length > 50,
    });
    training.dispose();
    const checkpoint40 = taken.find((c) => c.step === 40) as TrainingCheckpoint;
    const trainable = checkpoint40.weights.map((w) => w.values);
    expect(weightsAfterRollback).toEqual(trainable);
  });
});
