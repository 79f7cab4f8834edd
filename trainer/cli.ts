// `npm run train -- <spec.json> [--json]`: trains a job spec right here, without the server
// or a database. A progress line on stderr, a summary at the end; with --json the last line of
// stdout is a JSON summary for scripts. Exit code 0: trained; 1: diverged or failed; 2: usage.
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../common/config.ts";
import { createLogger } from "../common/logger.ts";
import { readEveryFor, resolveBackend } from "./backend.ts";
import { InvalidSpecError, parseJobSpec } from "./spec.ts";
import { prepareTraining, type StepRecord, type TrainingEvent } from "./train-loop.ts";

const USAGE = "usage: npm run train -- <spec.json> [--json]";

async function main(): Promise<number> {
  let args: ReturnType<typeof parseCommandLine>;
  try {
    args = parseCommandLine();
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  const config = loadConfig();
  // Logs go to stderr, and at the default level only warnings: the progress line says the rest.
  const log = createLogger({ ...config, logLevel: config.logLevel === "info" ? "warn" : config.logLevel }, "train", 2);

  let input: unknown;
  try {
    input = JSON.parse(await readFile(args.specPath, "utf8"));
  } catch (error) {
    console.error(`cannot read a job spec from ${args.specPath}: ${(error as Error).message}`);
    return 2;
  }
  let spec: ReturnType<typeof parseJobSpec>;
  try {
    spec = parseJobSpec(input, config);
  } catch (error) {
    if (!(error instanceof InvalidSpecError)) throw error;
    console.error(`${args.specPath} is not a valid job spec:`);
    for (const problem of error.problems) console.error(`  ${problem.field || "/"}: ${problem.message}`);
    return 2;
  }

  const backend = await resolveBackend(config.backend, log);
  const training = prepareTraining(spec, { readEvery: readEveryFor(backend, config.readEvery) });
  const progress = new Progress(spec.steps);
  const layerNorms: number[][] = training.layerNames.map(() => []);
  const events: TrainingEvent[] = [];
  let last: StepRecord | undefined;
  const started = performance.now();
  const summary = await training.run({
    onStep: (record) => {
      last = record;
      for (const [i, norm] of record.layerNorms.entries()) layerNorms[i]?.push(norm);
      progress.update(record);
    },
    onEvent: (event) => events.push(event),
  });
  training.dispose();
  progress.finish();

  const seconds = (performance.now() - started) / 1000;
  const interventions: Record<string, number> = {};
  for (const event of events) if (event.kind !== "faultInjected") interventions[event.kind] = (interventions[event.kind] ?? 0) + 1;
  const result = {
    name: spec.name,
    backend,
    status: summary.diverged ? "diverged" : "succeeded",
    reason: summary.diverged,
    steps: summary.stepsRun,
    seconds: round(seconds),
    finalLoss: finiteOrNull(summary.finalLoss),
    finalValLoss: finiteOrNull(summary.finalValLoss),
    finalGradNorm: finiteOrNull(last?.gradNorm ?? null),
    layers: training.layerNames.map((name, i) => ({ name, ...describe(layerNorms[i] ?? []) })),
    interventions,
    faultsInjected: events.filter((event) => event.kind === "faultInjected").length,
  };

  const out = process.stdout;
  out.write(`${result.name}: ${result.status} after ${result.steps} steps in ${result.seconds} s on ${backend}\n`);
  out.write(`  final loss ${format(result.finalLoss)}, validation loss ${format(result.finalValLoss)}, gradient norm ${format(result.finalGradNorm)}\n`);
  out.write("  gradient norm per layer (median, max):\n");
  for (const layer of result.layers) out.write(`    ${layer.name.padEnd(24)} ${format(layer.median).padStart(10)} ${format(layer.max).padStart(10)}\n`);
  const kinds = Object.entries(interventions);
  out.write(`  watchdog: ${kinds.length === 0 ? "no intervention" : kinds.map(([k, n]) => `${k} ×${n}`).join(", ")}; faults injected: ${result.faultsInjected}\n`);
  if (args.json) out.write(`${JSON.stringify(result)}\n`);
  return summary.diverged ? 1 : 0;
}

function parseCommandLine(): { specPath: string; json: boolean } {
  const { values, positionals } = parseArgs({ options: { json: { type: "boolean", default: false } }, allowPositionals: true });
  if (positionals.length !== 1) throw new Error(positionals.length === 0 ? "missing the spec file" : "give exactly one spec file");
  return { specPath: positionals[0] as string, json: values.json === true };
}

/** One line on stderr, redrawn in a terminal; a line every 10% otherwise. */
class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private lastDraw = 0;
  private lastDecile = -1;

  constructor(private readonly total: number) {}

  update(record: StepRecord): void {
    const done = record.step + 1;
    const line = `step ${done}/${this.total} ${bar(done / this.total)} loss ${format(record.loss)}  ‖g‖ ${format(record.gradNorm)}  ${record.stepMs.toFixed(1)} ms/step${record.action !== "none" ? `  [${record.action}]` : ""}`;
    if (this.tty) {
      const now = performance.now();
      if (now - this.lastDraw < 50 && done !== this.total) return;
      this.lastDraw = now;
      process.stderr.write(`\r\x1b[2K${line}`);
    } else {
      const decile = Math.floor((done / this.total) * 10);
      if (decile === this.lastDecile) return;
      this.lastDecile = decile;
      process.stderr.write(`${line}\n`);
    }
  }

  finish(): void {
    if (this.tty) process.stderr.write("\n");
  }
}

function bar(fraction: number): string {
  const width = 24;
  const filled = Math.round(fraction * width);
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
}

function describe(values: number[]): { median: number | null; max: number | null } {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return { median: null, max: null };
  return { median: round(finite[Math.floor(finite.length / 2)] as number), max: round(finite.at(-1) as number) };
}

function finiteOrNull(value: number | null): number | null {
  return value !== null && Number.isFinite(value) ? round(value) : null;
}

function round(value: number): number {
  return Number(value.toPrecision(6));
}

function format(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return String(value);
  return Math.abs(value) >= 1e4 || (Math.abs(value) < 1e-3 && value !== 0) ? value.toExponential(2) : value.toPrecision(4);
}

try {
  process.exitCode = await main();
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : `train: ${(error as Error).stack ?? error}`);
  process.exitCode = 1;
}
