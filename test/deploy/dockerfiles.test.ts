// The Dockerfiles cannot be built here (no Docker engine): these checks hold them to what the
// repository provides. Their commands are the README's (npm ci, npm run …), which CI runs.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import path from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { DASHBOARD_DIST } from "../../server/plugins/web.ts";
import { command, instructions, npmScriptsRun, ROOT, readDockerfile, type Stage } from "./dockerfile.ts";

const packageJson = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  optionalDependencies: Record<string, string>;
};
const server = readDockerfile("docker/Dockerfile.server");
const trainer = readDockerfile("docker/Dockerfile.trainer");

function finalStage(stages: Stage[]): Stage {
  const stage = stages.at(-1);
  if (!stage) throw new Error("no stages");
  return stage;
}

/** `node --import tsx x.ts` from package.json's script, as an exec-form argument list. */
function scriptCommand(name: string): string[] {
  return (packageJson.scripts[name] ?? "").split(" ");
}

function expectNonRoot(stage: Stage) {
  const user = instructions(stage, "USER").at(-1);
  expect(user).toBeDefined();
  expect(user).not.toMatch(/^(root|0)(:|$)/);
  // Nothing after USER may switch back or run as root.
  const last = stage.instructions.map((i) => i.keyword).lastIndexOf("USER");
  expect(stage.instructions.slice(last + 1).map((i) => i.keyword)).not.toContain("RUN");
}

describe("Dockerfiles", () => {
  it("run only npm scripts that package.json has, and copy only files that exist", () => {
    const scripts = npmScriptsRun([...server, ...trainer]);
    expect(scripts).toEqual(expect.arrayContaining(["generate", "build:web"]));
    for (const script of scripts) expect(packageJson.scripts, `npm run ${script}`).toHaveProperty([script]);
    for (const stage of [...server, ...trainer]) {
      for (const copy of instructions(stage, "COPY").filter((args) => !args.startsWith("--from"))) {
        const sources = copy.split(/\s+/).slice(0, -1);
        for (const source of sources) expect(statSync(path.join(ROOT, source), { throwIfNoEntry: false }), `COPY ${source}`).toBeDefined();
      }
    }
  });

  it("build the server in stages: production dependencies only, the dashboard inside, a non-root user, npm start's command", () => {
    const [build, runtime] = [server[0] as Stage, finalStage(server)];
    expect(server.map((s) => s.name)).toEqual(["build", "runtime"]);
    expect(build.from).toMatch(/^node:22-/);
    expect(runtime.from).toBe(build.from);
    expect(instructions(build, "RUN")).toEqual(expect.arrayContaining(["npm run generate", "npm run build:web"]));
    const installs = instructions(runtime, "RUN").filter((run) => run.startsWith("npm ci"));
    expect(installs).toHaveLength(1);
    expect(installs[0]).toContain("--omit=dev");
    // The Prisma client comes generated from the build stage (the prisma CLI is a dev dependency)…
    expect(instructions(runtime, "COPY")).toContain("--from=build /app/prisma/generated ./prisma/generated");
    // …and so does the dashboard, where the server serves it from.
    expect(instructions(runtime, "WORKDIR")).toEqual(["/app"]);
    expect(instructions(runtime, "COPY")).toContain(`--from=build /app/web/dist ./${path.relative(ROOT, DASHBOARD_DIST)}`);
    expectNonRoot(runtime);
    expect(command(runtime)).toEqual(scriptCommand("start"));
  });

  it("build the trainer on CUDA 11 and cuDNN 8 (tfjs-node-gpu's libtensorflow 2.9), with its install scripts, as a non-root user", () => {
    const runtime = finalStage(trainer);
    expect(runtime.from).toMatch(/^nvidia\/cuda:11\.\d+\.\d+-cudnn8-runtime-ubuntu/);
    const install = instructions(runtime, "RUN").find((run) => run.startsWith("npm ci"));
    expect(install).toContain("--omit=dev");
    // The scripts download libtensorflow; the build checks both native bindings are there.
    expect(install).not.toContain("--ignore-scripts");
    expect(install).toContain("tfjs-node-gpu/lib/napi-v*/tfjs_binding.node");
    expect(instructions(runtime, "COPY")).toContain("--from=client /app/prisma/generated ./prisma/generated");
    expectNonRoot(runtime);
    expect(command(runtime)).toEqual(scriptCommand("worker"));
  });

  it("copy every file the server and trainer import, and need no dev dependency at run time", () => {
    const copied = new Set(
      [...server, ...trainer].flatMap((stage) =>
        instructions(stage, "COPY")
          .filter((args) => !args.startsWith("--from"))
          .flatMap((args) => args.split(/\s+/).slice(0, -1)),
      ),
    );
    const runtimeFolders = ["common", "prisma", "server", "trainer"];
    for (const folder of runtimeFolders) expect(copied).toContain(folder);
    const production = new Set([...Object.keys(packageJson.dependencies), ...Object.keys(packageJson.optionalDependencies)]);
    const builtins = new Set(builtinModules);
    for (const file of runtimeFolders.flatMap((folder) => sourceFiles(path.join(ROOT, folder)))) {
      for (const specifier of valueImports(file)) {
        if (specifier.startsWith(".")) {
          const target = path.relative(ROOT, path.resolve(path.dirname(file), specifier));
          expect(runtimeFolders, `${path.relative(ROOT, file)} imports ${specifier}`).toContain(target.split(path.sep)[0]);
        } else if (!specifier.startsWith("node:") && !builtins.has(specifier)) {
          const name = specifier.startsWith("@") ? specifier.split("/").slice(0, 2).join("/") : (specifier.split("/")[0] as string);
          expect(production, `${path.relative(ROOT, file)} imports ${specifier}`).toContain(name);
        }
      }
    }
  });
});

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && /\.(ts|mjs|js)$/.test(entry.name))
    .map((entry) => path.join(entry.parentPath, entry.name));
}

/** Module specifiers a file loads at run time: `import type` and `export type` are erased. */
function valueImports(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest);
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && !node.importClause?.isTypeOnly && ts.isStringLiteral(node.moduleSpecifier)) found.push(node.moduleSpecifier.text);
    else if (ts.isExportDeclaration(node) && !node.isTypeOnly && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) found.push(node.moduleSpecifier.text);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) found.push(node.arguments[0].text);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}
