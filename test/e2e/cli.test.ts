// `npm run train`: trains a spec file without server or database.
import { spawnSync } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { demoSpec } from "../trainer/fixtures.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const dir = await mkdtemp(path.join(tmpdir(), "gradguard-cli-"));

async function train(spec: unknown, ...args: string[]) {
  const file = path.join(dir, `${Math.random().toString(36).slice(2)}.json`);
  await writeFile(file, typeof spec === "string" ? spec : JSON.stringify(spec));
  const result = spawnSync("npm", ["run", "--silent", "train", "--", file, ...args], { cwd: ROOT, encoding: "utf8", env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp" } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("npm run train", () => {
  it("trains, shows progress, and ends stdout with a JSON summary", async () => {
    const { code, stdout, stderr } = await train({ ...demoSpec(), steps: 120, faults: [{ kind: "nanBatch", step: 60 }] }, "--json");
    expect(code).toBe(0);
    expect(stderr).toMatch(/step 120\/120 /);
    const summary = JSON.parse(stdout.trim().split("\n").at(-1) as string);
    expect(summary).toMatchObject({ name: "demo", status: "succeeded", steps: 120, faultsInjected: 1 });
    expect(summary.layers.map((l: { name: string }) => l.name)).toEqual(["dense_0", "dense_1", "dense_2"]);
    expect(summary.interventions.nonFinite).toBe(1);
    expect(Number.isFinite(summary.finalLoss)).toBe(true);
  });

  it("refuses a bad spec with exit code 2, naming the field", async () => {
    const { code, stderr } = await train({ ...demoSpec(), batchSize: -3 });
    expect(code).toBe(2);
    expect(stderr).toContain("/batchSize");
  });

  it("says what is wrong with a file that is not JSON, and with no file at all", async () => {
    expect((await train("{ nope")).stderr).toMatch(/cannot read a job spec from .*JSON/);
    const none = spawnSync("npm", ["run", "--silent", "train"], { cwd: ROOT, encoding: "utf8" });
    expect(none.status).toBe(2);
    expect(none.stderr).toContain("usage: npm run train -- <spec.json> [--json]");
  });
});
