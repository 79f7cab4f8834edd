// The new-job form: API field errors placed at the form field they name, union noise dropped;
// JSON pointers read and written; the jobs table's filter and sort.
import { describe, expect, it } from "vitest";
import type { Job } from "../../web/src/lib/api-types.ts";
import { filterJobs, sortJobs } from "../../web/src/lib/jobs-table.ts";
import { getAtPointer, placeErrors, setAtPointer } from "../../web/src/lib/problems.ts";

const FIELDS = ["/name", "/steps", "/optimizer/type", "/optimizer/learningRate"];

describe("problem+json errors in the form", () => {
  it("puts each error at the most specific field that owns it, and the rest above the JSON editor", () => {
    const placed = placeErrors(
      {
        type: "urn:gradguard:problem:invalid-job-spec",
        title: "Invalid request",
        status: 400,
        errors: [
          { in: "body", field: "/steps", message: "must be >= 1" },
          { in: "body", field: "/model/layers/0/units", message: "must be >= 1" },
        ],
      },
      FIELDS,
    );
    expect(placed).toEqual({ byField: { "/steps": ["must be >= 1"] }, other: ["/model/layers/0/units: must be >= 1"] });
  });

  it("drops the noise of a union that matched no variant, keeping the real reason once", () => {
    const variantNoise = [0, 1, 2, 3].map(() => ({ in: "body", field: "/optimizer/type", message: "must be equal to constant" }));
    const reason = [0, 1, 2, 3, 4].map(() => ({ in: "body", field: "/optimizer/learningRate", message: "must be > 0" }));
    const placed = placeErrors(
      { type: "t", title: "Invalid request", status: 400, errors: [...variantNoise, ...reason, { in: "body", field: "/optimizer", message: "must match a schema in anyOf" }] },
      FIELDS,
    );
    expect(placed).toEqual({ byField: { "/optimizer/learningRate": ["must be > 0"] }, other: [] });
  });

  it("shows the detail of a problem without field errors", () => {
    expect(placeErrors({ type: "t", title: "Conflict", status: 409, detail: "job is done" }, FIELDS).other).toEqual(["job is done"]);
  });

  it("reads and writes spec values by JSON pointer without touching the original", () => {
    const spec = { name: "a", optimizer: { type: "sgd", learningRate: 0.5 } };
    expect(getAtPointer(spec, "/optimizer/learningRate")).toBe(0.5);
    expect(getAtPointer(spec, "/watchdog/policy")).toBeUndefined();
    const changed = setAtPointer(spec, "/watchdog/policy", "off");
    expect(changed).toEqual({ ...spec, watchdog: { policy: "off" } });
    expect(spec).not.toHaveProperty("watchdog");
    expect(setAtPointer(changed, "/name", undefined)).not.toHaveProperty("name");
  });
});

describe("the jobs table", () => {
  const job = (id: string, name: string, status: Job["status"], lastStep: number | null, createdAt: string): Job => ({
    id, name, kind: "training", status, lastStep, createdAt, attempts: 1, error: null, backend: "wasm", layerNames: [], paused: false, startedAt: null, finishedAt: null, spec: {},
  });
  const jobs = [
    job("a1", "Explosion demo", "running", 10, "2026-01-01T00:00:03Z"),
    job("b2", "spirals", "succeeded", 600, "2026-01-01T00:00:01Z"),
    job("c3", "explosion off", "diverged", 12, "2026-01-01T00:00:02Z"),
    job("d4", "queued one", "queued", null, "2026-01-01T00:00:04Z"),
  ];

  it("filters by name or id prefix and by status", () => {
    expect(filterJobs(jobs, { text: "EXPLOSION", status: "all" }).map((j) => j.id)).toEqual(["a1", "c3"]);
    expect(filterJobs(jobs, { text: "b2", status: "all" }).map((j) => j.id)).toEqual(["b2"]);
    expect(filterJobs(jobs, { text: "", status: "active" }).map((j) => j.id)).toEqual(["a1", "d4"]);
    expect(filterJobs(jobs, { text: "", status: "diverged" }).map((j) => j.id)).toEqual(["c3"]);
  });

  it("sorts by creation, step, name and status", () => {
    expect(sortJobs(jobs, "created", true).map((j) => j.id)).toEqual(["d4", "a1", "c3", "b2"]);
    expect(sortJobs(jobs, "step", true).map((j) => j.id)).toEqual(["b2", "c3", "a1", "d4"]);
    expect(sortJobs(jobs, "name", false).map((j) => j.id)).toEqual(["a1", "c3", "d4", "b2"]);
    expect(sortJobs(jobs, "status", false).map((j) => j.status)).toEqual(["running", "queued", "diverged", "succeeded"]);
  });
});
