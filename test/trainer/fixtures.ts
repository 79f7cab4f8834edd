import { InvalidSpecError, type JobSpec, parseJobSpec, type SpecLimits, type SpecProblem } from "../../trainer/spec.ts";

/** The foundation's minimum spec: a small ReLU MLP on two spirals. */
export function demoSpec(overrides: Partial<JobSpec> = {}): Record<string, unknown> {
  return {
    name: "demo",
    model: {
      layers: [
        { type: "dense", units: 32, activation: "relu", inputShape: [2] },
        { type: "dense", units: 32, activation: "relu" },
        { type: "dense", units: 2 },
      ],
    },
    data: { kind: "spirals", size: 2048, seed: 1 },
    loss: "softmaxCrossEntropy",
    optimizer: { type: "sgd", learningRate: 0.1 },
    batchSize: 64,
    steps: 200,
    seed: 1,
    ...overrides,
  };
}

/** What parseJobSpec refuses in `input`; fails the test when it accepts it. */
export function specProblems(input: unknown, limits: SpecLimits): SpecProblem[] {
  try {
    parseJobSpec(input, limits);
  } catch (error) {
    if (error instanceof InvalidSpecError) return error.problems;
    throw error;
  }
  throw new Error("expected the spec to be rejected");
}
