import { beforeAll, describe, expect, it } from "vitest";
import { PRESETS } from "../../server/presets.ts";
import { resolveBackend } from "../../trainer/backend.ts";
import { parseJobSpec } from "../../trainer/spec.ts";
import { prepareTraining, type StepRecord } from "../../trainer/train-loop.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import { silentLog } from "../helpers/database.ts";

let app: TestApp;
beforeAll(async () => {
  ({ app } = await createTestApp());
  await resolveBackend(undefined, silentLog);
});

async function firstSteps(id: string, steps: number): Promise<StepRecord[]> {
  const preset = PRESETS.find((p) => p.id === id);
  const training = prepareTraining(parseJobSpec({ ...preset?.spec, steps }, { maxSteps: 10_000 }));
  const records: StepRecord[] = [];
  await training.run({ onStep: (r) => records.push(r) });
  training.dispose();
  return records;
}

describe("presets", () => {
  it("are listed and each is a spec the API accepts", async () => {
    const { items } = (await app.inject({ url: "/api/v1/presets" })).json();
    expect(items.map((p: { id: string }) => p.id)).toEqual(PRESETS.map((p) => p.id));
    for (const preset of items) {
      const response = await app.inject({ method: "POST", url: "/api/v1/jobs", payload: preset.spec });
      expect(response.statusCode, `${preset.id}: ${response.body}`).toBe(201);
    }
  });

  it("the explosion demo does what it says: unguarded it reaches NaN, guarded it stays finite", async () => {
    const off = await firstSteps("explosion-unguarded", 30);
    expect(off.some((r) => r.nonFinite)).toBe(true);
    const guarded = await firstSteps("explosion-guarded", 30);
    expect(guarded.every((r) => Number.isFinite(r.loss))).toBe(true);
    expect(guarded[0]?.action).not.toBe("none");
  });
});
