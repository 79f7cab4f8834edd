// Reads a Dockerfile into its stages and instructions, enough for the checks in this folder
// (there is no Docker engine on these machines to build one).
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface Instruction {
  keyword: string;
  args: string;
}

export interface Stage {
  name: string | undefined;
  /** The base image, with ARG defaults substituted. */
  from: string;
  instructions: Instruction[];
}

export function readDockerfile(relativePath: string): Stage[] {
  return parseDockerfile(readFileSync(path.join(ROOT, relativePath), "utf8"));
}

export function parseDockerfile(text: string): Stage[] {
  const argDefaults = new Map<string, string>();
  const stages: Stage[] = [];
  for (const { keyword, args } of logicalLines(text)) {
    const current = stages.at(-1);
    if (keyword === "FROM") {
      const [image = "", as, name] = args.split(/\s+/);
      const from = image.replace(/\$\{(\w+)\}/g, (_, arg: string) => argDefaults.get(arg) ?? "");
      stages.push({ name: as?.toUpperCase() === "AS" ? name : undefined, from, instructions: [] });
    } else if (current) {
      current.instructions.push({ keyword, args });
    } else if (keyword === "ARG") {
      const [name = "", value = ""] = args.split("=", 2);
      argDefaults.set(name, value);
    }
  }
  return stages;
}

/** Instructions with their continuation lines joined; comments (also inside a continuation) dropped. */
function logicalLines(text: string): Instruction[] {
  const lines: Instruction[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("#") || (line === "" && pending === "")) continue;
    pending += `${line.replace(/\\$/, "").trim()} `;
    if (line.endsWith("\\")) continue;
    const [keyword = "", ...rest] = pending.trim().split(/\s+/);
    lines.push({ keyword: keyword.toUpperCase(), args: rest.join(" ") });
    pending = "";
  }
  return lines;
}

export function instructions(stage: Stage, keyword: string): string[] {
  return stage.instructions.filter((i) => i.keyword === keyword).map((i) => i.args);
}

/** The exec-form CMD of a stage, as its argument list. */
export function command(stage: Stage): string[] {
  const cmd = instructions(stage, "CMD").at(-1);
  if (!cmd) throw new Error(`stage ${stage.name ?? stage.from} has no CMD`);
  return JSON.parse(cmd) as string[];
}

/** `npm run <script>` names used by RUN instructions, across all stages. */
export function npmScriptsRun(stages: Stage[]): string[] {
  return stages.flatMap((stage) => instructions(stage, "RUN").flatMap((run) => [...run.matchAll(/\bnpm run ([\w:-]+)/g)].map((m) => m[1] as string)));
}
