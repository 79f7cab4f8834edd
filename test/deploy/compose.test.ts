// docker-compose.yml, validated and resolved by Debian's docker-compose (`config` needs no Docker
// engine), then held to what a deployment needs and to the configuration schema.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { EnvSchema, loadConfig } from "../../common/config.ts";
import { ROOT } from "./dockerfile.ts";

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string; args?: Record<string, string> };
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  volumes?: string[];
  ports?: unknown[];
  profiles?: string[];
  container_name?: string;
  init?: boolean;
  deploy?: { resources?: { reservations?: { devices?: { driver: string; count?: number | string; device_ids?: string[]; capabilities: string[] }[] } } };
}
interface Compose {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
}

const run = promisify(execFile);
const GRADGUARD_SERVICES = ["server", "trainer", "trainer-cpu"];
const PASSWORD = "marker-password-4f1c";
const ADMIN_TOKEN = "marker-admin-token-9d2e";

let dir: string;
/** The file as Compose resolves it with a password and an admin token in the env file. */
let compose: Compose;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "gradguard-compose-"));
  const result = await composeConfig({ POSTGRES_PASSWORD: PASSWORD, GRADGUARD_ADMIN_TOKEN: ADMIN_TOKEN });
  if (!result.ok) throw new Error(result.error);
  compose = result.compose;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `docker-compose config` with only the given variables (not the caller's environment, nor ./.env). */
async function composeConfig(env: Record<string, string>, overrides: string[] = []): Promise<{ ok: true; compose: Compose } | { ok: false; error: string }> {
  const envFile = path.join(dir, `${Object.keys(env).join("-") || "empty"}.env`);
  await writeFile(envFile, Object.entries(env).map(([key, value]) => `${key}=${value}\n`).join(""));
  try {
    const { stdout } = await run("docker-compose", ["--env-file", envFile, "--file", "docker-compose.yml", ...overrides.flatMap((file) => ["--file", file]), "config"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: dir },
    });
    return { ok: true, compose: parse(stdout) as Compose };
  } catch (error) {
    const { code, stderr } = error as { code?: string; stderr?: string };
    if (code === "ENOENT") throw new Error("docker-compose is not installed: apt-get install docker-compose (Debian's package; .ci/run installs it)");
    return { ok: false, error: stderr ?? String(error) };
  }
}

function service(name: string): Service {
  const found = compose.services[name];
  if (!found) throw new Error(`no service ${name}`);
  return found;
}

function gpuReservations(s: Service) {
  return s.deploy?.resources?.reservations?.devices ?? [];
}

describe("docker-compose.yml", () => {
  it("is valid Compose, and will not start without a database password", async () => {
    expect(Object.keys(compose.services).sort()).toEqual(["postgres", "server", "trainer", "trainer-cpu"]);
    const missing = await composeConfig({});
    expect(missing.ok).toBe(false);
    expect(missing.ok ? "" : missing.error).toContain("set POSTGRES_PASSWORD in .env");
  });

  it("keeps PostgreSQL's data in a named volume and says when it is ready", async () => {
    const postgres = service("postgres");
    expect(postgres.image).toMatch(/^postgres:\d+$/);
    const [volume, mountPoint] = (postgres.volumes?.[0] ?? "").split(":");
    expect(Object.keys(compose.volumes)).toContain(volume);
    expect(mountPoint).toMatch(/^\/var\/lib\/postgresql/);
    expect(postgres.healthcheck?.test).toContain("pg_isready");
  });

  it("runs the server API-only once PostgreSQL is healthy, with a readiness healthcheck", async () => {
    const server = service("server");
    expect(server.build?.dockerfile).toBe("docker/Dockerfile.server");
    expect(server.depends_on).toEqual({ postgres: { condition: "service_healthy" } });
    expect(server.healthcheck?.test.join(" ")).toContain("/api/v1/ready");
    // Dedicated trainers do the training; the server's in-process worker stays off.
    expect(loadConfig(server.environment).workerConcurrency).toBe(0);
    expect(server.init).toBe(true);
  });

  it("reserves a GPU for each trainer, can scale them, and has a CPU variant under the cpu profile", async () => {
    const gpu = service("trainer");
    const cpu = service("trainer-cpu");
    expect(gpu.build?.dockerfile).toBe("docker/Dockerfile.trainer");
    expect(gpuReservations(gpu)).toEqual([{ driver: "nvidia", count: 1, capabilities: ["gpu"] }]);
    expect(gpu.profiles).toBeUndefined();
    expect(cpu.profiles).toEqual(["cpu"]);
    expect(gpuReservations(cpu)).toEqual([]);
    expect(cpu.build?.args?.BASE_IMAGE).not.toMatch(/cuda/);
    expect(loadConfig(cpu.environment).backend).toBe("tensorflow");
    for (const trainer of [gpu, cpu]) {
      // `--scale trainer=N` needs replicas without a fixed name or host port.
      expect(trainer.container_name).toBeUndefined();
      expect(trainer.ports).toBeUndefined();
      expect(trainer.depends_on).toEqual({ postgres: { condition: "service_healthy" } });
      expect(trainer.init).toBe(true);
      expect(loadConfig(trainer.environment).workerConcurrency).toBeGreaterThan(0);
    }
  });

  it("passes only variables of the configuration schema, valid ones, with one lease for every worker", async () => {
    const known = Object.keys(EnvSchema.properties);
    for (const name of GRADGUARD_SERVICES) {
      const environment = service(name).environment ?? {};
      for (const variable of Object.keys(environment)) expect(known, `${name}: ${variable}`).toContain(variable);
      const config = loadConfig(environment);
      expect(config.databaseUrl).toBe(`postgresql://gradguard:${PASSWORD}@postgres:5432/gradguard`);
    }
    const leases = ["trainer", "trainer-cpu"].map((name) => loadConfig(service(name).environment).leaseMs);
    expect(new Set(leases).size).toBe(1);
  });

  it("holds no secret itself: they come from .env, which .env.example documents and .dockerignore keeps out of images", async () => {
    expect(service("server").environment?.GRADGUARD_ADMIN_TOKEN).toBe(ADMIN_TOKEN);
    expect(service("postgres").environment?.POSTGRES_PASSWORD).toBe(PASSWORD);
    const text = await readFile(path.join(ROOT, "docker-compose.yml"), "utf8");
    // Every secret-looking setting is an interpolation, never a value.
    for (const match of text.matchAll(/^\s*([A-Z_]*(PASSWORD|TOKEN|SECRET)[A-Z_]*):\s*(.*)$/gm)) {
      expect(match[3], match[1]).toMatch(/^\$\{[A-Z_]+(:?[-?][^}]*)?\}$/);
    }
    expect(text).not.toMatch(/postgres(ql)?:\/\/[^:]+:(?!\$\{)[^@]+@/);
    // Every variable the file reads is listed in .env.example, with no secret filled in.
    const example = await readFile(path.join(ROOT, ".env.example"), "utf8");
    const listed = new Set([...example.matchAll(/^#?([A-Z_]+)=/gm)].map((m) => m[1]));
    for (const [, variable] of text.matchAll(/\$\{([A-Z_]+)/g)) expect(listed, `.env.example lists ${variable}`).toContain(variable);
    for (const [, key, value] of example.matchAll(/^([A-Z_]*(?:PASSWORD|TOKEN|SECRET)[A-Z_]*)=(.*)$/gm)) expect(value, key).toBe("");
    const dockerignore = (await readFile(path.join(ROOT, ".dockerignore"), "utf8")).split("\n");
    expect(dockerignore).toContain(".env");
  });

  it("takes the second-GPU override that docs/deploy.md shows", async () => {
    const docs = await readFile(path.join(ROOT, "docs/deploy.md"), "utf8");
    const example = docs.match(/```yaml\n(# docker-compose\.override\.yml[\s\S]*?)```/)?.[1];
    expect(example).toBeDefined();
    const override = path.join(dir, "docker-compose.override.yml");
    await writeFile(override, example as string);
    const result = await composeConfig({ POSTGRES_PASSWORD: PASSWORD }, [override]);
    if (!result.ok) throw new Error(result.error);
    const second = result.compose.services["trainer-gpu1"] as Service;
    expect(gpuReservations(second)).toEqual([{ driver: "nvidia", device_ids: ["1"], capabilities: ["gpu"] }]);
    expect(gpuReservations(result.compose.services.trainer as Service)).toEqual(gpuReservations(service("trainer")));
    expect(loadConfig(second.environment)).toMatchObject({ databaseUrl: service("trainer").environment?.DATABASE_URL, leaseMs: loadConfig(service("trainer").environment).leaseMs });
  });
});
