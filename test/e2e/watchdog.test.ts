// The watchdog inside a real job: injected faults are mitigated at their own step, and the
// step rows and events that a user reads over the API say so.
import { beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { api, type ServerProcess, startServer } from "../helpers/server-process.ts";
import { waitFor } from "../helpers/wait.ts";
import { demoSpec } from "../trainer/fixtures.ts";

interface Steps {
  step: number[];
  loss: (number | null)[];
  nonFinite: boolean[];
  action: string[];
  clipCoef: number[];
  gradNormAfter: (number | null)[];
}
interface Events {
  items: { step: number; kind: string; severity: string; detail: Record<string, unknown> }[];
}

let db: TestDatabase;
let server: ServerProcess;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startServer({ DATABASE_URL: db.url });
});

/** The default watchdog against a bad batch (step 60) and a NaN batch (step 120), as a user sees it. */
async function faultedJob(server: ServerProcess, db: TestDatabase): Promise<void> {
  const spec = {
    ...demoSpec(),
    steps: 200,
    faults: [
      { kind: "badBatch", step: 60, factor: 1000 },
      { kind: "nanBatch", step: 120 },
    ],
  };
  const { body: job } = await api<{ id: string; spec: { watchdog: { policy: string } } }>(server.url, "/jobs", { method: "POST", body: JSON.stringify(spec) });
  expect(job.spec.watchdog.policy).toBe("gradguard");
  await waitFor("the job to finish", async () => {
    const { body } = await api<{ status: string }>(server.url, `/jobs/${job.id}`);
    return ["succeeded", "failed", "diverged"].includes(body.status) ? body.status : undefined;
  }, 60_000).then((status) => expect(status).toBe("succeeded"));

  const { body: steps } = await api<Steps>(server.url, `/jobs/${job.id}/steps`);
  // The bad batch is applied only bounded (clipped) or not at all (skipped), at step 60 itself.
  expect(steps.action[60]).not.toBe("none");
  expect((steps.gradNormAfter[60] ?? 0) < 1).toBe(true);
  // The NaN batch is never applied.
  expect(steps.nonFinite[120]).toBe(true);
  expect(steps.action[120]).toBe("skip");
  expect(steps.gradNormAfter[120]).toBe(0);
  expect(steps.loss.slice(121).every((loss) => loss !== null && Number.isFinite(loss))).toBe(true);

  const { body: events } = await api<Events>(server.url, `/jobs/${job.id}/events`);
  const at = (step: number) => events.items.filter((e) => e.step === step).map((e) => e.kind);
  expect(at(60)).toContain("faultInjected");
  expect(at(60).some((kind) => kind !== "faultInjected")).toBe(true);
  expect(at(120)).toEqual(expect.arrayContaining(["faultInjected", "nonFinite"]));
  const [{ count }] = (await db.query<{ count: number }>(`SELECT count(*)::int AS count FROM "Step" WHERE "jobId" = $1 AND action <> 'none'`, [job.id])) as [{ count: number }];
  expect(count).toBeLessThan(20); // interventions are for the faults, not the healthy steps
}

describe("a faulted job under the default watchdog", () => {
  it("intervenes at the fault steps themselves and finishes healthy", async () => {
    await faultedJob(server, db);
  });

  it("does the same when the trainer reads 8 steps at once and bounds each update on the device (GPU backends)", async () => {
    // A database of its own, so that no other server's worker takes the job.
    const own = await createTestDatabase();
    const batched = await startServer({ DATABASE_URL: own.url, GRADGUARD_READ_EVERY: "8" });
    await faultedJob(batched, own);
    expect(batched.lines.find((line) => line.msg === "training started")).toMatchObject({ readEvery: 8 });
  });

  it("leaves the job alone under policy off: the NaN batch poisons the weights", async () => {
    const spec = { ...demoSpec(), steps: 150, faults: [{ kind: "nanBatch", step: 100 }], watchdog: { policy: "off" } };
    const { body: job } = await api<{ id: string }>(server.url, "/jobs", { method: "POST", body: JSON.stringify(spec) });
    await waitFor("the job to finish", async () => {
      const { body } = await api<{ status: string }>(server.url, `/jobs/${job.id}`);
      return body.status === "succeeded" ? true : undefined;
    }, 60_000);
    const { body: steps } = await api<Steps>(server.url, `/jobs/${job.id}/steps`);
    expect(steps.action.every((a) => a === "none")).toBe(true);
    expect(steps.nonFinite.slice(100).every(Boolean)).toBe(true);
  });
});
