// `node --import tsx bench/profile-summary.ts <file.cpuprofile> [top] [function…]`: a V8 CPU
// profile (node --cpu-prof) as text: self time by function and by package (node_modules/<pkg>,
// node: internals, or our own folders), and the total time, callees included, of the functions
// named after `top` (for a pure function's share, e.g. `decide`). --skip-ms=N leaves out the
// first N ms (the server's start-up).
import { readFile } from "node:fs/promises";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const skipArg = process.argv.find((a) => a.startsWith("--skip-ms="));
const SKIP_MS = Number(skipArg?.slice("--skip-ms=".length) ?? 0);
const [file, topArg, ...named] = process.argv.slice(2).filter((a) => !a.startsWith("--"));
if (!file) throw new Error("usage: profile-summary.ts <file.cpuprofile> [top] [function…]");
const TOP = Number(topArg ?? 25);
const profile = JSON.parse(await readFile(file, "utf8")) as Profile;

const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parent = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
const selfMs = new Map<number, number>();
let elapsedMs = 0;
let totalMs = 0;
profile.samples.forEach((id, i) => {
  const ms = (profile.timeDeltas[i] ?? 0) / 1000;
  elapsedMs += ms;
  if (elapsedMs < SKIP_MS) return;
  totalMs += ms;
  selfMs.set(id, (selfMs.get(id) ?? 0) + ms);
});

function where(url: string): string {
  if (!url) return "(native/V8)";
  if (url.startsWith("node:")) return "node: internals";
  const pkg = url.match(/node_modules\/((@[^/]+\/)?[^/]+)/);
  if (pkg) return pkg[1] as string;
  const own = url.match(/\/work\/[^/]+\/([^/]+)\//);
  return own ? `${own[1]}/` : url;
}

function add(map: Map<string, number>, key: string, ms: number) {
  map.set(key, (map.get(key) ?? 0) + ms);
}

const byFunction = new Map<string, number>();
const byPackage = new Map<string, number>();
for (const [id, ms] of selfMs) {
  const { functionName, url, lineNumber } = (byId.get(id) as ProfileNode).callFrame;
  add(byFunction, `${functionName || "(anonymous)"} ${url ? `${url.replace(/^.*\/(node_modules\/)?/, "")}:${lineNumber + 1}` : ""}`, ms);
  add(byPackage, where(url), ms);
}

// Total time of a named function: samples with it anywhere on their stack, each counted once.
const inclusive = new Map<string, number>();
for (const [id, ms] of selfMs) {
  const seen = new Set<string>();
  for (let node: number | undefined = id; node !== undefined; node = parent.get(node)) {
    const name = byId.get(node)?.callFrame.functionName ?? "";
    if (named.includes(name) && !seen.has(name)) {
      seen.add(name);
      add(inclusive, name, ms);
    }
  }
}

const print = (title: string, map: Map<string, number>, top: number) => {
  console.log(`\n${title}`);
  for (const [key, ms] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${ms.toFixed(0).padStart(8)} ms ${((100 * ms) / totalMs).toFixed(1).padStart(5)}%  ${key}`);
  }
};
console.log(`${file}: ${totalMs.toFixed(0)} ms profiled${SKIP_MS > 0 ? ` after the first ${SKIP_MS} ms` : ""}`);
print("self time by package", byPackage, TOP);
print("self time by function", byFunction, TOP);
if (named.length > 0) print("total time (callees included)", inclusive, named.length);
