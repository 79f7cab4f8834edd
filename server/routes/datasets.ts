// /api/v1/datasets: upload a CSV (header row, one example per row) that jobs can train on
// with `"data": { "kind": "csv", "datasetId": … }`.
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import Type from "typebox";
import { CsvError, parseCsv } from "../../trainer/data/csv.ts";
import { type DatasetInfo, saveDataset } from "../../trainer/data/dataset-store.ts";
import { HttpProblem, InvalidRequestProblem, NotFoundProblem, ProblemSchema } from "../errors.ts";

const DatasetSchema = Type.Object({
  id: Type.String({ format: "uuid" }),
  name: Type.String(),
  featureColumns: Type.Array(Type.String()),
  targetColumn: Type.String(),
  labels: Type.Array(Type.String(), { description: "Class labels in one-hot order; empty for regression" }),
  rows: Type.Integer(),
  createdAt: Type.String({ format: "date-time" }),
});

const UploadQuerySchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    target: Type.String({ minLength: 1, maxLength: 200, description: "The target column" }),
    features: Type.Optional(Type.String({ minLength: 1, maxLength: 20_000, description: "Comma-separated feature columns; default all but the target" })),
    task: Type.Enum(["classification", "regression"], { default: "classification" }),
  },
  { additionalProperties: false },
);

const datasetRoutes: FastifyPluginAsyncTypebox<{ maxBytes: number }> = async (app, { maxBytes }) => {
  app.addContentTypeParser("text/csv", { parseAs: "buffer", bodyLimit: maxBytes }, (_request, body, done) => done(null, body));

  app.post(
    "/datasets",
    {
      bodyLimit: maxBytes,
      schema: {
        querystring: UploadQuerySchema,
        consumes: ["text/csv"],
        response: { 201: DatasetSchema, 400: ProblemSchema, 413: ProblemSchema, 415: ProblemSchema },
      },
    },
    async (request, reply) => {
      const { name, target, features, task } = request.query;
      if (!Buffer.isBuffer(request.body)) {
        throw new HttpProblem(415, "Unsupported Media Type", `send the CSV as the body with content-type text/csv, not ${request.headers["content-type"] ?? "nothing"}`);
      }
      let parsed: ReturnType<typeof parseCsv>;
      try {
        parsed = parseCsv(request.body, { target, features: features?.split(",").map((f) => f.trim()), task });
      } catch (error) {
        if (!(error instanceof CsvError)) throw error;
        throw new InvalidRequestProblem(error.message, [{ in: "body", field: error.line === undefined ? "/" : `/line/${error.line}`, message: error.message }], "urn:gradguard:problem:invalid-csv");
      }
      const dataset = await saveDataset(app.prisma, name, parsed);
      reply.code(201).header("location", `${app.prefix}/datasets/${dataset.id}`);
      return toResponse(dataset);
    },
  );

  app.get("/datasets", { schema: { response: { 200: Type.Object({ items: Type.Array(DatasetSchema) }) } } }, async () => {
    const datasets = await app.prisma.dataset.findMany({ omit: { x: true, y: true }, orderBy: { createdAt: "desc" }, take: 500 });
    return { items: datasets.map(toResponse) };
  });

  app.get(
    "/datasets/:id",
    { schema: { params: Type.Object({ id: Type.String({ format: "uuid" }) }, { additionalProperties: false }), response: { 200: DatasetSchema, 400: ProblemSchema, 404: ProblemSchema } } },
    async (request) => {
      const dataset = await app.prisma.dataset.findUnique({ where: { id: request.params.id }, omit: { x: true, y: true } });
      if (!dataset) throw new NotFoundProblem(`dataset ${request.params.id}`);
      return toResponse(dataset);
    },
  );
};

function toResponse(dataset: DatasetInfo) {
  return { ...dataset, createdAt: dataset.createdAt.toISOString() };
}

export default datasetRoutes;
