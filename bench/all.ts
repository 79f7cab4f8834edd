// `npm run bench [--full] [--watchdog] [--only=name,name]`: every benchmark, one after the
// other (each in its own process, so none warms or pollutes another), then one summary of their
// targets: bench/results/<date>.{md,json} with the machine, Node, the tfjs backend, and for each
// target the figure, the ratio measured in the same run, the target and whether it was met.
// Quick settings by default (fewer repeats and seconds; still the 1,000,000-step job where the
// target is about one): about 5 minutes on 2 cores. --full runs each with its own defaults.
// bench:watchdog (a study of the watchdog's decisions, 25+ minutes, no ratio target) runs only
// with --watchdog.
import { spawn } from "node:child_process";
import { readFile, stat, writeFile } from "node:fs/promises";
import os from "node:os";

const FULL = process.argv.includes("--full");
const WITH_WATCHDOG = process.argv.includes("--watchdog");
const ONLY = process.argv.find((a) => a.startsWith("--only="))?.slice("--only=".length).split(",");

type Results = { backend?: string; rows: Record<string, unknown>[]; [key: string]: unknown };

interface Figure {
  what: string;
  figure: string;
  /** The measured ratio the target is set on (or the figure ÷ an absolute target). */
  ratio: number;
  target: string;
  met: boolean;
}

interface Bench {
  /** Its results name (bench/results/<date>-<name>.json) and npm script suffix. */
  name: string;
  script: string;
  quick: string[];
  /** What the summary shows; throws when a row it needs is missing. */
  figures(results: Results): Figure[];
}

const row = (results: Results, key: string, prefix: string) => {
  const found = results.rows.find((r) => String(r[key]).startsWith(prefix));
  if (!found) throw new Error(`no row whose ${key} starts with "${prefix}"`);
  return found as Record<string, number | string | boolean>;
};
const n = (value: unknown, digits = 1) => Number(value).toLocaleString("en", { maximumFractionDigits: digits });

const BENCHES: Bench[] = [
  {
    name: "trainer",
    script: "trainer.ts",
    quick: ["33", "33"],
    figures: (r) =>
      r.rows.map((w) => ({
        what: `monitoring overhead (norms, watchdog, writer), ${w.workload}`,
        figure: `norms ${n(w.measuredMs, 2)} ÷ ${n(w.bareMs, 2)} ms bare = ${n(w.normsRatio, 3)}; watchdog + writer: loop ${n(w.monitoredStepMs, 2)} ÷ ${n(w.plainStepMs, 2)} ms = ${n(w.watchdogWriterRatio, 3)}`,
        ratio: Number(w.ratio),
        target: "≤ 1.03",
        met: Number(w.ratio) <= 1.03,
      })),
  },
  {
    name: "ingest",
    script: "ingest.ts",
    quick: ["5", "5120"],
    figures: (r) => {
      const writer = row(r, "way", "StepWriter");
      const raw = row(r, "way", "raw pg");
      const prisma = row(r, "way", "Prisma createMany");
      return [
        {
          what: "ingest: StepWriter rows/s ÷ raw pg unnest rows/s",
          figure: `${n(writer.rowsPerSecond, 0)} rows/s vs ${n(raw.rowsPerSecond, 0)} (Prisma createMany ${n(prisma.rowsPerSecond, 0)})`,
          ratio: Number(writer.ratioToRawPg),
          target: "≥ 0.8",
          met: Number(writer.ratioToRawPg) >= 0.8,
        },
      ];
    },
  },
  {
    name: "ingest-http",
    script: "external-ingest.ts",
    quick: ["10", "10"],
    figures: (r) => {
      const w = r.rows[0] as Record<string, number>;
      return [
        {
          what: "external ingest over HTTP, 10 connections, 100 steps a request",
          figure: `${n(w.stepsPerSecond, 0)} steps/s, p99 ${n(w.p99Ms, 0)} ms; CPU ceiling ${n(w.cpuCeilingStepsPerSecond, 0)} steps/s`,
          ratio: Number(w.stepsPerSecond) / 20_000,
          target: "≥ 20,000 steps/s",
          met: Number(w.stepsPerSecond) >= 20_000 && w.non2xx === 0 && w.errors === 0,
        },
      ];
    },
  },
  {
    name: "history",
    script: "history.ts",
    quick: ["7"],
    figures: (r) => {
      const whole = row(r, "case", "HTTP whole job");
      return [{ what: "history query, 1,000,000 steps, maxPoints=2000", figure: `${n(whole.medianMs)} ms median`, ratio: Number(whole.medianMs) / 200, target: "≤ 200 ms", met: Number(whole.medianMs) <= 200 }];
    },
  },
  {
    name: "live",
    script: "live.ts",
    quick: ["15"],
    figures: (r) => {
      const client = row(r, "path", "flush start → socket.io client");
      return [{ what: "live latency, 10 jobs × 50 steps/s, 50 clients", figure: `p99 ${n(client.p99Ms)} ms (p50 ${n(client.p50Ms)} ms)`, ratio: Number(client.p99Ms) / 100, target: "p99 ≤ 100 ms", met: Number(client.p99Ms) <= 100 }];
    },
  },
  {
    name: "alerts",
    script: "alerts.ts",
    quick: ["100"],
    figures: (r) => {
      const alert = row(r, "path", "flush commit → webhook received (NOTIFY");
      return [{ what: "alert latency, triggering step → webhook", figure: `p99 ${n(alert.p99Ms)} ms (p50 ${n(alert.p50Ms)} ms)`, ratio: Number(alert.p99Ms) / 500, target: "p99 ≤ 500 ms", met: Number(alert.p99Ms) <= 500 }];
    },
  },
  {
    name: "dashboard",
    script: "dashboard.ts",
    quick: ["5"],
    figures: (r) => {
      const paint = row(r, "what", "navigation → first chart");
      return [{ what: "dashboard, 1,000,000-step job, first chart paint", figure: `${n(paint.medianMs, 0)} ms median`, ratio: Number(paint.medianMs) / 1500, target: "≤ 1,500 ms", met: Number(paint.medianMs) <= 1500 }];
    },
  },
  {
    name: "throughput",
    script: "throughput.ts",
    quick: ["5", "20"],
    figures: (r) => {
      const ours = row(r, "step", "gradguard");
      const torch = row(r, "step", "PyTorch");
      return [
        {
          what: "training throughput, MLP step ÷ PyTorch CPU step",
          figure: `${n(ours.msPerStep, 1)} ms vs ${n(torch.msPerStep, 1)} ms (${torch.step})`,
          ratio: Number(ours.ratioToPyTorch),
          target: "≤ 1.3",
          met: Number(ours.ratioToPyTorch) <= 1.3,
        },
      ];
    },
  },
  {
    name: "watchdog",
    script: "watchdog.ts",
    quick: ["1", "150"],
    figures: () => [],
  },
];

/** Runs one benchmark; resolves with its exit code. Its output goes to ours. */
function run(bench: Bench): Promise<number> {
  const args = FULL ? [] : bench.quick;
  console.log(`\n=== npm run bench:${bench.name} ${args.join(" ")}`);
  const child = spawn(process.execPath, ["--import", "tsx", new URL(bench.script, import.meta.url).pathname, ...args], { stdio: "inherit" });
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1))));
}

const date = new Date().toISOString().slice(0, 10);
const results = new URL("./results/", import.meta.url);
const selected = BENCHES.filter((b) => (ONLY ? ONLY.includes(b.name) : b.name !== "watchdog" || WITH_WATCHDOG));
const summary: { bench: string; exitCode: number; seconds: number; backend?: string; figures: Figure[]; error?: string }[] = [];
for (const bench of selected) {
  const started = Date.now();
  const exitCode = await run(bench);
  const seconds = Math.round((Date.now() - started) / 1000);
  try {
    const file = new URL(`${date}-${bench.name}.json`, results);
    // A results file from an earlier run of the same day must not pass for this one.
    if ((await stat(file)).mtimeMs < started) throw new Error("it wrote no results");
    const written = JSON.parse(await readFile(file, "utf8")) as Results;
    summary.push({ bench: bench.name, exitCode, seconds, backend: written.backend, figures: bench.figures(written) });
  } catch (error) {
    summary.push({ bench: bench.name, exitCode, seconds, figures: [], error: (error as Error).message });
  }
}

const machine = { cpu: os.cpus()[0]?.model ?? "unknown", cores: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.arch()}` };
const tfjsBackend = summary.find((s) => s.bench === "throughput" || s.bench === "trainer")?.backend ?? "n/a";
const loadAverage1m = Number(os.loadavg()[0]?.toFixed(2));
await writeFile(new URL(`${date}.json`, results), `${JSON.stringify({ date, settings: FULL ? "full" : "quick", machine, tfjsBackend, loadAverage1m, benches: summary }, null, 2)}\n`);
const lines = [
  `# Benchmarks, ${date} (${FULL ? "full" : "quick"} settings)`,
  "",
  `${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.platform}, Node ${machine.node}, tfjs backend ${tfjsBackend}; load average ${loadAverage1m} at the end (a shared machine: figures are medians, targets are ratios measured side by side)`,
  "",
  "| target | figure | ratio | target | met |",
  "| --- | --- | --- | --- | --- |",
  ...summary.flatMap((s) => s.figures.map((f) => `| ${f.what} | ${f.figure} | ${f.ratio.toFixed(3)} | ${f.target} | ${f.met ? "yes" : "**no**"} |`)),
  "",
  "| benchmark | exit code | seconds | details |",
  "| --- | --- | --- | --- |",
  ...summary.map((s) => `| bench:${s.bench} | ${s.exitCode} | ${s.seconds} | ${s.error ? `failed: ${s.error}` : `[${date}-${s.bench}.md](${date}-${s.bench}.md)`} |`),
  "",
];
await writeFile(new URL(`${date}.md`, results), lines.join("\n"));
console.log(`\n${lines.join("\n")}\nwritten to bench/results/${date}.md and .json`);
process.exitCode = summary.some((s) => s.exitCode !== 0 || s.error) ? 1 : 0;
