// The documented Python client (docs/gradguard_client.py), run by a real python3 against a real
// server: what a PyTorch user pastes into a training loop must work as written.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { TEST_ADMIN_TOKEN } from "../helpers/app.ts";
import { createTestDatabase } from "../helpers/database.ts";
import { api, type ServerProcess, startServer } from "../helpers/server-process.ts";

const DOCS = fileURLToPath(new URL("../../docs", import.meta.url));
let server: ServerProcess;
beforeAll(async () => {
  const db = await createTestDatabase();
  server = await startServer({ DATABASE_URL: db.url, GRADGUARD_WORKER_CONCURRENCY: "0" });
});

const SCRIPT = `
import json, math, sys
from gradguard_client import Gradguard, GradguardError
guard = Gradguard(sys.argv[1], sys.argv[2], name="python-loop", layer_names=["a", "b"])
out = []
for step in range(200):
    norm = 50.0 if step == 150 else 1.0 + (step % 7) * 0.01
    if step == 180:
        norm = float("nan")
    d = guard.step(step, 1.0 / (1 + step), norm, [norm * 0.6, norm * 0.8], lr=0.01, weight_norm=10.0)
    out.append(d)
again = guard.steps([{"step": 150, "loss": 0.1, "gradNorm": 50.0, "layerNorms": [30.0, 40.0]}])
try:
    guard.step(500, 1.0, 1.0, [1.0])
    error = None
except GradguardError as e:
    error = str(e)
print(json.dumps({"run": guard.run_id, "decisions": out, "again": again, "error": error}))
`;

describe("the Python client", () => {
  it("registers a run, gets a decision per step, and is answered the same on a retry", async () => {
    const result = spawnSync("python3", ["-c", SCRIPT, server.url, TEST_ADMIN_TOKEN], { cwd: DOCS, encoding: "utf8", env: { PATH: process.env.PATH ?? "", PYTHONPATH: DOCS } });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    const { run, decisions, again, error } = JSON.parse(result.stdout);
    expect(decisions).toHaveLength(200);
    expect(decisions[150].action).not.toBe("none");
    expect(decisions[180]).toMatchObject({ skip: true });
    expect(decisions.slice(0, 150).filter((d: { action: string }) => d.action !== "none").length).toBeLessThanOrEqual(1);
    expect(again[0]).toEqual(decisions[150]);
    expect(error).toMatch(/^400 Invalid request: step 500 has 1 layer norms; the run has 2 layers/);
    const { body } = await api<{ step: number[] }>(server.url, `/jobs/${run}/steps`);
    expect(body.step).toHaveLength(200);
  });
});
