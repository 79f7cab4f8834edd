import { describe, expect, it } from "vitest";
import { layerNames } from "../../trainer/model-spec.ts";
import { parseJobSpec } from "../../trainer/spec.ts";
import { demoSpec, specProblems } from "./fixtures.ts";

const limits = { maxSteps: 10_000 };

const fieldsOf = (input: unknown) => specProblems(input, limits).map((p) => p.field);

function withLayer(index: number, patch: Record<string, unknown>): Record<string, unknown> {
  const spec = demoSpec() as { model: { layers: Record<string, unknown>[] } };
  spec.model.layers[index] = { ...spec.model.layers[index], ...patch };
  return spec;
}

describe("job spec", () => {
  it("accepts the minimum spec and fills in every default", () => {
    const spec = parseJobSpec(demoSpec(), limits);
    expect(spec.model.layers?.[0]).toEqual({
      type: "dense",
      units: 32,
      activation: "relu",
      inputShape: [2],
      useBias: true,
      kernelInitializer: "glorotUniform",
      biasInitializer: "zeros",
    });
    expect(spec.model.layers?.[2]).toMatchObject({ activation: "linear" });
    expect(spec.data).toEqual({ kind: "spirals", size: 2048, seed: 1, classes: 2, noise: 0.1 });
    expect(layerNames(spec.model)).toEqual(["dense_0", "dense_1", "dense_2"]);
  });

  it.each([
    ["an unknown layer type", withLayer(1, { type: "transformer" }), "/model/layers/1/type"],
    ["negative units", withLayer(1, { units: -4 }), "/model/layers/1/units"],
    ["a learning rate of zero", { ...demoSpec(), optimizer: { type: "sgd", learningRate: 0 } }, "/optimizer/learningRate"],
    ["a learning rate given as text", { ...demoSpec(), optimizer: { type: "sgd", learningRate: "NaN" } }, "/optimizer/learningRate"],
    ["steps beyond the configured cap", { ...demoSpec(), steps: 1e9 }, "/steps"],
    ["an unknown field", { ...demoSpec(), evil: "require('fs')" }, "/evil"],
    ["an unknown loss", { ...demoSpec(), loss: "hinge" }, "/loss"],
    ["a missing name", { ...demoSpec(), name: undefined }, "/name"],
    ["an input shape that does not match the data", withLayer(0, { inputShape: [3] }), "/model/layers/0/inputShape"],
    ["no input shape on the first layer", withLayer(0, { inputShape: undefined }), "/model/layers/0/inputShape"],
    ["an output size that does not match the classes", withLayer(2, { units: 3 }), "/model/layers/2/units"],
    ["a softmax on logits", withLayer(2, { activation: "sigmoid" }), "/model/layers/2/activation"],
    ["duplicate layer names", withLayer(1, { name: "dense_0" }), "/model/layers/1/name"],
    ["a batch larger than the data", { ...demoSpec(), batchSize: 4096 }, "/batchSize"],
  ])("rejects %s, naming the field", (_what, input, field) => {
    expect(fieldsOf(input)).toContain(field);
  });

  it("reports every problem, not only the first", () => {
    const input = { ...withLayer(0, { inputShape: [5] }), steps: 1e9 };
    expect(fieldsOf(input).sort()).toEqual(["/model/layers/0/inputShape", "/steps"]);
  });
});
