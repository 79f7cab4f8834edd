import { describe, expect, it } from "vitest";
import { ConfigError, configToEnv, loadConfig } from "../../common/config.ts";

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("fills every default from an empty environment", () => {
    expect(loadConfig({})).toEqual({
      port: 3000,
      host: "127.0.0.1",
      adminToken: undefined,
      corsOrigins: undefined,
      rateLimit: 1200,
      serverUrl: "http://127.0.0.1:3000",
      clientToken: undefined,
      databaseUrl: undefined,
      dataDir: "./.gradguard",
      logLevel: "info",
      logFormat: "auto",
      backend: undefined,
      maxSteps: 1_000_000,
      maxParameters: 50_000_000,
      maxBatchValues: 10_000_000,
      workerConcurrency: 1,
      maxDatasetBytes: 52_428_800,
      maxAttempts: 3,
      leaseMs: 30_000,
      retryBackoffMs: 5_000,
      pollMs: 500,
      alerts: {
        severities: {
          diverged: "critical",
          nonFinite: "warning",
          rollback: "warning",
          repeatedSpikes: "warning",
          lrLowered: "info",
          silent: "critical",
          trainerCrashed: "critical",
        },
        cooldownMs: 300_000,
        silentMs: 120_000,
        spikeCount: 10,
        spikeWindowMs: 60_000,
        webhookAllowPrivate: false,
        webhookTimeoutMs: 10_000,
        webhookRetryMs: 1_000,
        webhookMaxAgeMs: 86_400_000,
      },
    });
  });

  it("parses the variables it is given", () => {
    const config = loadConfig({
      PORT: "8080",
      HOST: "0.0.0.0",
      DATABASE_URL: "postgresql://u@db:5432/gg",
      GRADGUARD_DATA_DIR: "/var/lib/gg",
      LOG_LEVEL: "debug",
      GRADGUARD_BACKEND: "wasm",
      GRADGUARD_MAX_STEPS: "5000",
      GRADGUARD_READ_EVERY: "16",
    });
    expect(config).toMatchObject({ port: 8080, host: "0.0.0.0", databaseUrl: "postgresql://u@db:5432/gg", dataDir: "/var/lib/gg", logLevel: "debug", backend: "wasm", maxSteps: 5000, readEvery: 16 });
  });

  it("treats an empty variable as unset", () => {
    expect(loadConfig({ PORT: "", DATABASE_URL: "  " })).toMatchObject({ port: 3000, databaseUrl: undefined });
  });

  it.each([
    ["PORT", "abc"],
    ["PORT", "70000"],
    ["PORT", "30.5"],
    ["LOG_LEVEL", "loud"],
    ["DATABASE_URL", "mysql://localhost/x"],
    ["GRADGUARD_BACKEND", "tpu"],
    ["GRADGUARD_MAX_STEPS", "0"],
    ["GRADGUARD_READ_EVERY", "-1"],
    ["GRADGUARD_READ_EVERY", "2.5"],
  ])("names %s when it is %j", (name, value) => {
    const problems = problemsOf({ [name]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(`${name}:`);
    expect(problems[0]).toContain(JSON.stringify(value));
  });

  it("reports every bad variable at once", () => {
    const problems = problemsOf({ PORT: "x", LOG_LEVEL: "y" });
    expect(problems.map((p) => p.split(":")[0]).sort()).toEqual(["LOG_LEVEL", "PORT"]);
  });

  it("round-trips through the environment handed to child processes", () => {
    const config = loadConfig({ PORT: "4000", DATABASE_URL: "postgres://x@y/z", GRADGUARD_BACKEND: "cpu", LOG_LEVEL: "warn", GRADGUARD_READ_EVERY: "0" });
    expect(loadConfig(configToEnv(config))).toEqual(config);
  });
});
