import { beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import type { TestDatabase } from "../helpers/database.ts";

let app: TestApp;
let db: TestDatabase;
beforeAll(async () => {
  ({ app, db } = await createTestApp());
});

function irisLike(rows: number): string {
  const lines = ["length,width,species"];
  for (let i = 0; i < rows; i++) lines.push(`${(i % 7) + 0.5},${(i % 3) * 1.5},${i % 2 ? "setosa" : "virginica"}`);
  return `${lines.join("\n")}\n`;
}

const upload = (body: string | Buffer, query = "name=iris&target=species") =>
  app.inject({ method: "POST", url: `/api/v1/datasets?${query}`, headers: { "content-type": "text/csv" }, payload: body });

describe("POST /api/v1/datasets", () => {
  it("stores a CSV and describes it; a job can then train on it", async () => {
    const response = await upload(irisLike(200));
    expect(response.statusCode).toBe(201);
    const dataset = response.json();
    expect(dataset).toMatchObject({ name: "iris", featureColumns: ["length", "width"], targetColumn: "species", labels: ["setosa", "virginica"], rows: 200 });
    expect((await app.inject({ url: `/api/v1/datasets/${dataset.id}` })).json()).toEqual(dataset);
    expect((await app.inject({ url: "/api/v1/datasets" })).json().items.map((d: { id: string }) => d.id)).toContain(dataset.id);

    const job = await app.inject({
      method: "POST",
      url: "/api/v1/jobs",
      payload: {
        name: "on-csv",
        model: { layers: [{ type: "dense", units: 8, activation: "relu", inputShape: [2] }, { type: "dense", units: 2 }] },
        data: { kind: "csv", datasetId: dataset.id },
        loss: "softmaxCrossEntropy",
        optimizer: { type: "adam", learningRate: 0.01 },
        batchSize: 16,
        epochs: 2,
      },
    });
    expect(job.statusCode).toBe(201);
    // The job records what it trains on, and epochs resolved against the real row count.
    expect(job.json().spec.data).toMatchObject({ kind: "csv", datasetId: dataset.id, size: 200, features: 2, targets: 2 });
    expect(job.json().spec.steps).toBe(Math.ceil(180 / 16) * 2);
  });

  it("refuses a job on an unknown dataset, or with a shape that contradicts it, naming the field", async () => {
    const base = { name: "x", model: { layers: [{ type: "dense", units: 2, inputShape: [2] }] }, loss: "softmaxCrossEntropy", optimizer: { type: "sgd", learningRate: 0.1 }, batchSize: 4, steps: 10 };
    const unknown = await app.inject({ method: "POST", url: "/api/v1/jobs", payload: { ...base, data: { kind: "csv", datasetId: "00000000-0000-4000-8000-000000000000" } } });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().errors.map((e: { field: string }) => e.field)).toContain("/data/datasetId");
    const dataset = (await upload(irisLike(40))).json();
    const wrong = await app.inject({ method: "POST", url: "/api/v1/jobs", payload: { ...base, data: { kind: "csv", datasetId: dataset.id, size: 99 } } });
    expect(wrong.json().errors.map((e: { field: string }) => e.field)).toContain("/data/size");
  });

  it("answers a bad CSV with 400 naming the line, and stores nothing", async () => {
    const before = await db.prisma.dataset.count();
    const response = await upload("length,width,species\n1,2,a\n3,oops,b\n");
    expect(response.statusCode).toBe(400);
    expect(response.headers["content-type"]).toMatch(/problem\+json/);
    expect(response.json()).toMatchObject({ detail: 'line 3: column "width": "oops" is not a finite number', errors: [{ in: "body", field: "/line/3" }] });
    expect(await db.prisma.dataset.count()).toBe(before);
  });

  it("answers an upload over the size limit with 413, naming the limit", async () => {
    const response = await upload(irisLike(5000));
    expect(response.statusCode).toBe(413);
    expect(response.json().detail).toContain(`${64 * 1024} bytes`);
  });

  it("requires the target in the query and text/csv as the body", async () => {
    expect((await upload(irisLike(5), "name=iris")).json().errors[0]).toMatchObject({ in: "querystring", field: "/target" });
    const json = await app.inject({ method: "POST", url: "/api/v1/datasets?name=a&target=b", payload: { a: 1 } });
    expect(json.statusCode).toBe(415);
    expect((await app.inject({ url: "/api/v1/datasets/00000000-0000-4000-8000-000000000000" })).statusCode).toBe(404);
  });
});
