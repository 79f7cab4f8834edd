import type { TSchema } from "typebox";
import Value from "typebox/value";
import { describe, expect, it } from "vitest";
import {
  InvalidWatchdogConfigError,
  POLICIES,
  presetConfig,
  resolveWatchdogConfig,
  type WatchdogConfig,
  WatchdogSpecSchema,
} from "../../../trainer/watchdog/config.ts";

const enabled = (config: WatchdogConfig) => ({
  detectors: Object.entries(config.detectors).flatMap(([name, d]) => (d.enabled ? [name] : [])),
  ladder: Object.entries(config.ladder).flatMap(([name, r]) => (r.enabled ? [name] : [])),
});

function errorPaths(input: unknown): string[] {
  expect(Value.Check(WatchdogSpecSchema, input)).toBe(false);
  return [...Value.Errors(WatchdogSpecSchema, input)].map((e) => e.instancePath);
}

describe("watchdog presets", () => {
  it("makes gradguard the default, with every detector but the reference clippers and every rung", () => {
    expect(resolveWatchdogConfig(undefined)).toEqual(presetConfig("gradguard"));
    expect(resolveWatchdogConfig({})).toEqual(presetConfig("gradguard"));
    expect(enabled(presetConfig("gradguard"))).toEqual({
      detectors: ["nonFinite", "trustRegion", "zClip", "rollingOutlier", "lossBlowup", "updateSize", "spikeGate", "layers", "vanishing"],
      ladder: ["clip", "lowerLr", "skip", "rollback", "stop"],
    });
  });

  it.each([
    ["off", [], []],
    ["static", ["staticClip"], ["clip"]],
    ["autoclip", ["autoClip"], ["clip"]],
    ["zclip", ["zClip"], ["clip"]],
  ] as const)("%s switches on only its own source's parts (no NaN skipping)", (policy, detectors, ladder) => {
    expect(enabled(presetConfig(policy))).toEqual({ detectors, ladder });
  });

  it("uses the sources' defaults", () => {
    const d = presetConfig("gradguard").detectors;
    expect(d.staticClip.maxNorm).toBe(1.0);
    expect(d.autoClip.percentile).toBe(10);
    expect(presetConfig("zclip").detectors.zClip).toEqual({ enabled: true, alpha: 0.97, warmupSteps: 25, zThreshold: 2.5, skipUpdateOnSpike: false });
    expect(d.zClip).toMatchObject({ zThreshold: 4.5, skipUpdateOnSpike: true });
    expect(d.rollingOutlier).toMatchObject({ window: 128, minValues: 64, sigmas: 6, onNorm: true, onLoss: true });
    expect(d.lossBlowup).toMatchObject({ referenceSteps: 100, referenceFactor: 10, startFactor: 2, consecutiveSteps: 3 });
    expect(d.vanishing).toMatchObject({ ratio: 1e-3, consecutiveSteps: 50 });
    expect(d.trustRegion).toEqual({ enabled: true, maxUpdateRatio: 0.1 });
    expect(presetConfig("gradguard").ladder.lowerLr).toMatchObject({ factor: 0.5, spikes: 3, skips: 10, minScale: 1 / 64 });
    expect(presetConfig("gradguard").ladder.rollback.maxRollbacks).toBe(3);
  });

  it("merges overrides into the preset, leaving the rest and the preset itself alone", () => {
    const config = resolveWatchdogConfig({
      policy: "zclip",
      detectors: { zClip: { alpha: 0.9 }, nonFinite: { enabled: true } },
      ladder: { skip: { enabled: true, zThreshold: 40 } },
    });
    expect(config.policy).toBe("zclip");
    expect(config.detectors.zClip).toEqual({ enabled: true, alpha: 0.9, warmupSteps: 25, zThreshold: 2.5, skipUpdateOnSpike: false });
    expect(config.detectors.nonFinite.enabled).toBe(true);
    expect(config.ladder.skip).toEqual({ enabled: true, zThreshold: 40 });
    expect(config.ladder.rollback.enabled).toBe(false);
    expect(presetConfig("zclip").detectors.zClip.alpha).toBe(0.97);

    const narrowed = resolveWatchdogConfig({ ladder: { rollback: { enabled: false }, lowerLr: { restoreShape: "linear" } } });
    expect(narrowed.policy).toBe("gradguard");
    expect(narrowed.ladder.rollback.enabled).toBe(false);
    expect(narrowed.ladder.lowerLr).toMatchObject({ enabled: true, restoreShape: "linear", factor: 0.5 });
  });

  it("lets every detector and every rung be switched off", () => {
    const allOff = resolveWatchdogConfig({
      detectors: Object.fromEntries(Object.keys(presetConfig("gradguard").detectors).map((k) => [k, { enabled: false }])),
      ladder: Object.fromEntries(Object.keys(presetConfig("gradguard").ladder).map((k) => [k, { enabled: false }])),
    });
    expect(enabled(allOff)).toEqual({ detectors: [], ladder: [] });
  });
});

describe("watchdog spec schema", () => {
  it("accepts every resolved preset written out in full, so no option lacks a schema entry", () => {
    for (const policy of POLICIES) expect(Value.Check(WatchdogSpecSchema, presetConfig(policy))).toBe(true);
  });

  it("documents every option's default in its description", () => {
    const undocumented: string[] = [];
    const walk = (schema: TSchema & { properties?: Record<string, TSchema>; description?: string }, path: string) => {
      if (schema.properties) {
        for (const [key, child] of Object.entries(schema.properties)) walk(child as typeof schema, `${path}/${key}`);
      } else if (!/Default/.test(schema.description ?? "")) {
        undocumented.push(path);
      }
    };
    walk(WatchdogSpecSchema, "");
    expect(undocumented).toEqual([]);
  });

  it.each([
    ["an unknown policy", { policy: "yolo" }, "/policy"],
    ["an unknown top-level field", { policy: "gradguard", clipEverything: true }, "/clipEverything"],
    ["an unknown detector", { detectors: { magic: { enabled: true } } }, "/detectors/magic"],
    ["an unknown option", { detectors: { zClip: { zScore: 3 } } }, "/detectors/zClip/zScore"],
    ["a negative max norm", { detectors: { staticClip: { maxNorm: -1 } } }, "/detectors/staticClip/maxNorm"],
    ["a zero percentile", { detectors: { autoClip: { percentile: 0 } } }, "/detectors/autoClip/percentile"],
    ["an EMA weight of 1", { detectors: { zClip: { alpha: 1 } } }, "/detectors/zClip/alpha"],
    ["a number given as text", { detectors: { zClip: { zThreshold: "2.5" } } }, "/detectors/zClip/zThreshold"],
    ["a fractional window", { detectors: { rollingOutlier: { window: 12.5 } } }, "/detectors/rollingOutlier/window"],
    ["an LR factor above 1", { ladder: { lowerLr: { factor: 2 } } }, "/ladder/lowerLr/factor"],
    ["an unknown restore shape", { ladder: { lowerLr: { restoreShape: "exponential" } } }, "/ladder/lowerLr/restoreShape"],
    ["a negative rollback budget", { ladder: { rollback: { maxRollbacks: -1 } } }, "/ladder/rollback/maxRollbacks"],
    ["a switch given as a string", { ladder: { stop: { enabled: "no" } } }, "/ladder/stop/enabled"],
  ])("rejects %s, naming the field", (_what, input, field) => {
    expect(errorPaths(input)).toContain(field);
    expect(() => resolveWatchdogConfig(input as never)).toThrow(InvalidWatchdogConfigError);
  });

  it("rejects rules across fields when resolving", () => {
    const problems = (input: unknown) => {
      try {
        resolveWatchdogConfig(input as never);
      } catch (error) {
        if (error instanceof InvalidWatchdogConfigError) return error.problems.map((p) => p.field);
        throw error;
      }
      return [];
    };
    expect(problems({ detectors: { rollingOutlier: { window: 32, minValues: 64 } } })).toEqual(["/detectors/rollingOutlier/minValues"]);
    expect(problems({ ladder: { skip: { zThreshold: 3 } } })).toEqual(["/ladder/skip/zThreshold"]);
    expect(problems({ detectors: { rollingOutlier: { window: 64, minValues: 64 } } })).toEqual([]);
  });
});
