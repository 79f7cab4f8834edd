// The `data` part of a job spec: which generator and its parameters. Every generator is seeded,
// so the same spec gives the same examples. `kind` selects the generator.
import Type, { type Static } from "typebox";
import { taggedUnion } from "./tagged-union.ts";

/** Most examples a dataset may hold. */
export const MAX_EXAMPLES = 1_000_000;
/** Most floats (inputs and targets, all examples) a dataset may hold: 200 MB of Float32. */
export const MAX_DATASET_FLOATS = 50_000_000;

const Size = Type.Integer({ minimum: 8, maximum: MAX_EXAMPLES, description: "Number of examples" });
const Seed = Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, default: 0, description: "Seeds the generator" }));

export const SpiralsDataSchema = Type.Object(
  {
    kind: Type.Literal("spirals"),
    size: Size,
    seed: Seed,
    classes: Type.Optional(Type.Integer({ minimum: 2, maximum: 10, default: 2, description: "Number of spiral arms" })),
    noise: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0.1, description: "Std of Gaussian noise on the angle" })),
  },
  { additionalProperties: false, description: "Interleaved 2-D spirals; one-hot targets over `classes`" },
);

export const BlobsDataSchema = Type.Object(
  {
    kind: Type.Literal("blobs"),
    size: Size,
    seed: Seed,
    classes: Type.Optional(Type.Integer({ minimum: 2, maximum: 100, default: 3, description: "Number of clusters" })),
    features: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, default: 2, description: "Dimensions of each point" })),
    spread: Type.Optional(Type.Number({ minimum: 0, maximum: 10, default: 0.2, description: "Std of each cluster (centres lie in [-1, 1]^features)" })),
  },
  { additionalProperties: false, description: "Gaussian clusters; one-hot targets over `classes`" },
);

export const SineDataSchema = Type.Object(
  {
    kind: Type.Literal("sine"),
    size: Size,
    seed: Seed,
    seqLen: Type.Optional(Type.Integer({ minimum: 2, maximum: 10_000, default: 20, description: "Steps in each input window" })),
    period: Type.Optional(Type.Number({ minimum: 2, maximum: 100_000, default: 25, description: "Period of the sine, in steps" })),
    noise: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0.05, description: "Std of Gaussian noise on each value" })),
  },
  { additionalProperties: false, description: "Windows of one noisy sine wave; the target is the value after the window" },
);

export const AddingDataSchema = Type.Object(
  {
    kind: Type.Literal("adding"),
    size: Size,
    seed: Seed,
    seqLen: Type.Optional(Type.Integer({ minimum: 2, maximum: 10_000, default: 50, description: "Sequence length T" })),
  },
  {
    additionalProperties: false,
    description: "The adding problem (Hochreiter & Schmidhuber 1997; Pascanu, Mikolov & Bengio 2013): (value, marker) pairs; the target is the sum of the two marked values",
  },
);

export const ParityDataSchema = Type.Object(
  {
    kind: Type.Literal("parity"),
    size: Size,
    seed: Seed,
    bits: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, default: 8, description: "Random bits per example" })),
  },
  { additionalProperties: false, description: "Random bits (0 or 1); one-hot target [even, odd] of their XOR" },
);

export const CsvDataSchema = Type.Object(
  {
    kind: Type.Literal("csv"),
    datasetId: Type.String({ format: "uuid", description: "An uploaded dataset (POST /api/v1/datasets)" }),
    size: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_EXAMPLES, description: "Filled in from the dataset when the job is submitted" })),
    features: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: "Filled in from the dataset when the job is submitted" })),
    targets: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: "Filled in from the dataset when the job is submitted" })),
    seed: Seed,
  },
  { additionalProperties: false, description: "An uploaded CSV dataset; its size and shape are recorded in the job when it is submitted" },
);

export const DataSchema = taggedUnion("kind", [SpiralsDataSchema, BlobsDataSchema, SineDataSchema, AddingDataSchema, ParityDataSchema, CsvDataSchema], {
  description: "A seeded generator, or an uploaded dataset, selected by `kind`",
});
export type DataSpec = Static<typeof DataSchema>;
export type DataKind = DataSpec["kind"];
