// What a hostile client can try beyond bad syntax (test/server/fuzz*.test.ts covers that):
// specs that would exhaust the machine (refused by caps that name their variable), specs that
// reach for files or the prototype chain, socket.io events that are not in the contract, and
// secrets that must never be logged. Roles per route: roles.test.ts; token storage: auth.test.ts.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOG_REDACT_PATHS } from "../../common/logger.ts";
import { buildApp } from "../../server/app.ts";
import { createToken } from "../../server/tokens.ts";
import { createTestApp, TEST_CONFIG, type TestApp } from "../helpers/app.ts";
import { silentLog, type TestDatabase } from "../helpers/database.ts";
import { connectLive } from "../helpers/live-client.ts";
import { demoSpec } from "../trainer/fixtures.ts";

let app: TestApp;
let db: TestDatabase;
beforeAll(async () => {
  ({ app, db } = await createTestApp());
});

async function submit(spec: unknown, target: TestApp = app) {
  const response = await target.inject({ method: "POST", url: "/api/v1/jobs", payload: typeof spec === "string" ? spec : JSON.stringify(spec), headers: { "content-type": "application/json" } });
  return { status: response.statusCode, type: response.headers["content-type"], body: response.json() as { detail: string; errors?: { field: string; message: string }[] } };
}

/** A topology of 2 → 65536 → 65536 → 2 units: 4.3·10^9 weights. */
const hugeTopology = {
  class_name: "Sequential",
  config: {
    name: "huge",
    layers: [
      { class_name: "Dense", config: { name: "a", units: 65536, batch_input_shape: [null, 2] } },
      { class_name: "Dense", config: { name: "b", units: 65536 } },
      { class_name: "Dense", config: { name: "c", units: 2 } },
    ],
  },
};

describe("resource caps", () => {
  it("refuse 10^9-parameter models, as layers or as a topology, naming GRADGUARD_MAX_PARAMETERS", async () => {
    const before = await db.prisma.job.count();
    const layers = await submit({ ...demoSpec(), model: { layers: [{ type: "dense", units: 65536, inputShape: [2] }, { type: "dense", units: 16384 }, { type: "dense", units: 2 }] } });
    expect(layers.status).toBe(400);
    expect(layers.body.errors).toContainEqual({ in: "body", field: "/model/layers/1", message: expect.stringMatching(/1073954816 parameters, more than the 50000000 allowed \(the cap set by GRADGUARD_MAX_PARAMETERS\)/) });
    // Before the fix a topology was built with tfjs's real initializers: minutes of event loop.
    const topology = await submit({ ...demoSpec(), model: { topology: hugeTopology } });
    expect(topology.status).toBe(400);
    expect(topology.body.detail).toMatch(/4295360514 parameters, .*GRADGUARD_MAX_PARAMETERS/);
    expect(await db.prisma.job.count()).toBe(before);
  });

  it("refuse 10^9 steps and huge batches, naming their variables, and follow the configured caps", async () => {
    const steps = await submit({ ...demoSpec(), steps: 1_000_000_000 });
    expect(steps.body.errors).toContainEqual({ in: "body", field: "/steps", message: expect.stringContaining("GRADGUARD_MAX_STEPS") });
    const batch = await submit({ ...demoSpec(), data: { kind: "sine", size: 60_000, seqLen: 10_000 }, batchSize: 2048, model: { layers: [{ type: "flatten", inputShape: [10_000, 1] }, { type: "dense", units: 1 }] }, loss: "meanSquaredError" });
    expect(batch.status).toBe(400);
    expect(batch.body.errors).toContainEqual({ in: "body", field: "/batchSize", message: expect.stringMatching(/must be at most 1000: .*GRADGUARD_MAX_BATCH_VALUES/) });

    const strict = await buildApp({ prisma: db.prisma, config: { ...TEST_CONFIG, maxParameters: 1000, maxBatchValues: 100 }, logger: silentLog });
    const capped = await strict.inject({ method: "POST", url: "/api/v1/jobs", payload: demoSpec() as Record<string, string>, headers: { authorization: `Bearer ${TEST_CONFIG.adminToken}` } });
    await strict.close();
    const fields = (capped.json() as { errors: { field: string; message: string }[] }).errors;
    expect(fields.find((e) => e.field === "/model/layers/1")?.message).toMatch(/more than the 1000 allowed \(the cap set by GRADGUARD_MAX_PARAMETERS\)/);
    expect(fields.find((e) => e.field === "/batchSize")?.message).toMatch(/must be at most 50: .*GRADGUARD_MAX_BATCH_VALUES/);
  });
});

describe("specs cannot reach files, code or the prototype chain", () => {
  it("refuses paths where an id is expected, and keeps path-like names as inert text", async () => {
    for (const datasetId of ["../../etc/passwd", "/etc/passwd", "file:///etc/passwd", "..%2f..%2fetc%2fpasswd"]) {
      const refused = await submit({ ...demoSpec(), data: { kind: "csv", datasetId } });
      expect(refused.status, datasetId).toBe(400);
      expect(refused.body.errors?.some((e) => e.field.startsWith("/data"))).toBe(true);
    }
    // A name is a label: stored and returned as given, never opened.
    const named = await submit({ ...demoSpec(), name: "../../etc/passwd" });
    expect(named.status).toBe(201);
    expect((named.body as unknown as { name: string }).name).toBe("../../etc/passwd");
    for (const url of ["/api/v1/datasets/..%2F..%2Fetc%2Fpasswd", "/api/v1/jobs/..%2F..%2Fetc%2Fpasswd/steps"]) {
      const response = await app.inject({ url });
      expect(response.statusCode, url).toBe(400);
      expect(response.body).not.toMatch(/root:x:0:0/);
    }
    // Dot segments resolve inside the URL space: at worst the dashboard's page, never a file.
    for (const url of ["/api/v1/../../etc/passwd", "/assets/..%2F..%2F..%2Fetc%2Fpasswd", "/..%2F..%2Fpackage.json"]) {
      const response = await app.inject({ url });
      expect(response.statusCode, url).toBeLessThan(500);
      expect(response.body, url).not.toMatch(/root:x:0:0|"devDependencies"/);
    }
  });

  it("refuses __proto__ and constructor keys, and nothing is polluted", async () => {
    const spec = JSON.stringify(demoSpec());
    const attempts = [
      spec.replace(/^\{/, '{"__proto__":{"polluted":"yes"},'),
      spec.replace(/^\{/, '{"constructor":{"prototype":{"polluted":"yes"}},'),
      spec.replace('"model":{', '"model":{"__proto__":{"polluted":"yes"},'),
      spec.replace('"data":{', '"data":{"constructor":{"prototype":{"polluted":"yes"}},'),
    ];
    for (const body of attempts) {
      const response = await submit(body);
      expect(response.status, body.slice(0, 80)).toBe(400);
      expect(response.type).toMatch(/problem\+json/);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty("polluted");
  });

  it("refuses layer classes and initializers outside the allow-lists (no custom code in a topology)", async () => {
    const custom = structuredClone(hugeTopology);
    custom.config.layers = [{ class_name: "Lambda", config: { name: "a", units: 2, batch_input_shape: [null, 2] } }];
    const response = await submit({ ...demoSpec(), model: { topology: custom } });
    expect(response.status).toBe(400);
    expect(response.body.errors?.map((e) => e.field)).toContain("/model/topology/config/layers/0/class_name");
  });
});

describe("the live channel", () => {
  let server: FastifyInstance;
  let url: string;
  afterAll(async () => {
    await server?.close();
  });

  it("has no command a read token could send: unknown events change nothing and the connection goes on", async () => {
    server = await buildApp({ prisma: db.prisma, config: TEST_CONFIG, logger: silentLog, databaseUrl: db.url });
    url = await server.listen({ port: 0, host: "127.0.0.1" });
    const jobId = (await submit({ ...demoSpec(), name: "watched" })).body as unknown as { id: string };
    const { token } = await createToken(db.prisma, "viewer", "read");
    const socket = await connectLive(url, token);
    const commandsBefore = await db.prisma.command.count();
    const untyped = socket as unknown as { emit(event: string, ...args: unknown[]): void };
    for (const event of ["job:command", "command", "job:cancel", "jobs:delete", "tokens:create"]) {
      untyped.emit(event, { jobId: jobId.id, type: "setLr", lr: 10 }, () => {});
    }
    const subscribed = await socket.timeout(5_000).emitWithAck("job:subscribe", { jobId: jobId.id, fromStep: 0 });
    expect("data" in subscribed).toBe(true);
    expect(await db.prisma.command.count()).toBe(commandsBefore);
    expect((await db.prisma.job.findUniqueOrThrow({ where: { id: jobId.id } })).status).toBe("queued");
    socket.close();
  });
});

describe("logs", () => {
  it("redact secrets wherever they sit in a logged object (the real logger, in a process of its own)", async () => {
    const secrets = ["Bearer gg_header-secret", "gg_token-field", "webhook-signing-secret", "pg-password", "postgresql://u:pg-url-secret@db/gg"];
    const script = `
      import { createLogger } from "./common/logger.ts";
      const log = createLogger({ logLevel: "trace", logFormat: "json" }, "redaction");
      log.info({ req: { headers: { authorization: ${JSON.stringify(secrets[0])}, cookie: "session=c00kie" } } }, "a request");
      log.info({ token: ${JSON.stringify(secrets[1])}, webhook: { secret: ${JSON.stringify(secrets[2])} } }, "a token");
      log.warn({ password: ${JSON.stringify(secrets[3])}, config: { databaseUrl: ${JSON.stringify(secrets[4])} } }, "a connection");
      log.info({ handshake: { auth: { token: "socket-secret" } } }, "a handshake");`;
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: new URL("../..", import.meta.url) });
    const lines = stdout.trim().split("\n");
    expect(lines).toHaveLength(4);
    for (const secret of [...secrets, "c00kie", "socket-secret"]) expect(stdout).not.toContain(secret);
    expect(stdout).toContain('"[Redacted]"');
    expect(LOG_REDACT_PATHS).toContain("req.headers.authorization");
  });
});
