// The `data` part of a job spec: which generator (or uploaded dataset) and its parameters.
import Type, { type Static } from "typebox";

export const SpiralsDataSchema = Type.Object(
  {
    kind: Type.Literal("spirals"),
    size: Type.Integer({ minimum: 8, maximum: 1_000_000, description: "Number of examples" }),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, default: 0 })),
    classes: Type.Optional(Type.Integer({ minimum: 2, maximum: 10, default: 2, description: "Number of spiral arms" })),
    noise: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0.1, description: "Std of Gaussian noise on points" })),
  },
  { additionalProperties: false },
);

export const DataSchema = SpiralsDataSchema;
export type DataSpec = Static<typeof DataSchema>;
