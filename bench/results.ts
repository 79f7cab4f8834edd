// Benchmarks write what they measured to bench/results/<date>-<name>.{json,md}, with the
// machine, Node version and tfjs backend, so a figure always says where it came from.
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";

export async function writeResults(name: string, results: { backend: string; rows: Record<string, unknown>[]; [key: string]: unknown }): Promise<void> {
  const date = new Date().toISOString().slice(0, 10);
  const machine = { cpu: os.cpus()[0]?.model ?? "unknown", cores: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.arch()}` };
  const dir = new URL("./results/", import.meta.url);
  await mkdir(dir, { recursive: true });
  await writeFile(new URL(`${date}-${name}.json`, dir), `${JSON.stringify({ name, date, machine, ...results }, null, 2)}\n`);
  const columns = Object.keys(results.rows[0] ?? {});
  const table = [
    `| ${columns.join(" | ")} |`,
    `| ${columns.map(() => "---").join(" | ")} |`,
    ...results.rows.map((row) => `| ${columns.map((c) => format(row[c])).join(" | ")} |`),
  ].join("\n");
  const md = `# ${name} benchmark, ${date}\n\n${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}, tfjs backend ${results.backend}\n\n${table}\n`;
  await writeFile(new URL(`${date}-${name}.md`, dir), md);
  console.log(`\n${md}`);
}

function format(value: unknown): string {
  return typeof value === "number" ? (Number.isInteger(value) ? String(value) : value.toFixed(3)) : String(value);
}
