// `npm run bench:dashboard [loads] [steps]`: how soon the dashboard's job page shows a chart for
// a long job. It stores a job of 1,000,000 steps with 20 layer norms (bench/database.ts, as
// bench:history does), starts the real server (server/main.ts) serving the built dashboard
// (npm run build:web, run first when web/src is newer than web/dist), and opens /jobs/:id in
// headless chromium (playwright-core), signed in, `loads` times, each in a fresh browser
// context (no cache). It reads the time from navigation start to the chart wrapper's
// `gradguard:first-chart` mark (web/src/components/UPlotChart.tsx: its first draw with data).
// Beside it: the page's own steps request (resource timing), and the same request from Node,
// which is the server's part. Target: median first chart ≤ 1.5 s.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { loadavg } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { pino } from "pino";
import { createPrismaClient } from "../prisma/client.ts";
import { migrate } from "../prisma/migrate.ts";
import { benchDatabase, storeSyntheticJob } from "./database.ts";
import { writeResults } from "./results.ts";
import { startBenchServer } from "./server.ts";
import { median } from "./workloads.ts";

const LOADS = Number(process.argv[2] ?? 7);
const STEPS = Number(process.argv[3] ?? 1_000_000);
const LAYERS = 20;
const TARGET_MS = 1500;
const TOKEN = "bench-dashboard-admin-token-0123456789";
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MARK = "gradguard:first-chart";

/** The newest modification time under `dir`, in ms. */
function newest(dir: string): number {
  return Math.max(
    ...readdirSync(dir, { withFileTypes: true }).map((entry) => {
      const full = path.join(dir, entry.name);
      return entry.isDirectory() ? newest(full) : statSync(full).mtimeMs;
    }),
  );
}

const built = `${ROOT}web/dist/index.html`;
if (!existsSync(built) || newest(`${ROOT}web/src`) > statSync(built).mtimeMs) {
  console.log("building the dashboard (npm run build:web)…");
  execFileSync("npm", ["run", "--silent", "build:web"], { cwd: ROOT, stdio: "ignore" });
}

const database = await benchDatabase("dashboard");
const prisma = createPrismaClient(database.url, { maxConnections: 2 });
try {
  await migrate(database.url, { log: pino({ level: "warn" }) });
  const layerNames = Array.from({ length: LAYERS }, (_, i) => `dense_${i}`);
  const job = await prisma.job.create({ data: { name: "bench-dashboard", spec: {}, status: "succeeded", layerNames, lastStep: STEPS - 1, finishedAt: new Date() } });
  await storeSyntheticJob(prisma, job.id, STEPS, LAYERS, (stored) => process.stdout.write(`\r  ${stored.toLocaleString("en")} steps stored`));
  await prisma.$executeRawUnsafe(`VACUUM ANALYZE "Step"`);
  await prisma.$executeRawUnsafe(`VACUUM ANALYZE "StepRollup"`);
  console.log();

  const server = await startBenchServer({ DATABASE_URL: database.url, GRADGUARD_ADMIN_TOKEN: TOKEN, GRADGUARD_RATE_LIMIT: "1000000" });
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
  try {
    const times = { firstChart: [] as number[], domContentLoaded: [] as number[], stepsRequest: [] as number[], stepsFromNode: [] as number[] };
    let stepsUrl = "";
    for (let load = -1; load < LOADS; load++) {
      const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
      // Signed in as the dashboard keeps it (web/src/api.ts). Page scripts are strings: this
      // package's TypeScript has no DOM types.
      await context.addInitScript(`localStorage.setItem("gradguard.token", ${JSON.stringify(TOKEN)})`);
      const page = await context.newPage();
      const problems: string[] = [];
      page.on("pageerror", (error) => problems.push(error.message));
      await page.goto(`${server.url}/jobs/${job.id}`);
      await page.waitForFunction((mark) => performance.getEntriesByName(mark).length > 0, MARK, { timeout: 60_000 }).catch(() => {
        throw new Error(`no ${MARK} mark within 60 s (is web/dist built from this web/src?) ${problems.join("; ")}`);
      });
      const timing = (await page.evaluate(`(() => {
        const navigation = performance.getEntriesByType("navigation")[0];
        const steps = performance.getEntriesByType("resource").find((entry) => entry.name.includes("/steps?maxPoints="));
        return { firstChart: performance.getEntriesByName(${JSON.stringify(MARK)})[0].startTime, domContentLoaded: navigation.domContentLoadedEventEnd,
                 stepsRequest: steps ? steps.responseEnd - steps.startTime : NaN, stepsUrl: steps ? steps.name : "" };
      })()`)) as { firstChart: number; domContentLoaded: number; stepsRequest: number; stepsUrl: string };
      await context.close();
      if (problems.length > 0) throw new Error(`the page failed: ${problems.join("; ")}`);
      stepsUrl = timing.stepsUrl;
      // The same request from Node, right after: what the server takes, without the browser.
      const started = performance.now();
      const response = await fetch(stepsUrl, { headers: { authorization: `Bearer ${TOKEN}` } });
      await response.arrayBuffer();
      const fromNode = performance.now() - started;
      if (load < 0) continue; // warm-up: the server's first query plans, chromium's first start
      times.firstChart.push(timing.firstChart);
      times.domContentLoaded.push(timing.domContentLoaded);
      times.stepsRequest.push(timing.stepsRequest);
      times.stepsFromNode.push(fromNode);
      console.log(`  load ${load + 1}: first chart at ${timing.firstChart.toFixed(0)} ms`);
    }
    const row = (what: string, values: number[], target: boolean) => ({
      what,
      medianMs: median(values),
      minMs: Math.min(...values),
      maxMs: Math.max(...values),
      ratioToTarget: target ? median(values) / TARGET_MS : "-",
      target: target ? `≤ ${TARGET_MS} ms` : "-",
      met: target ? median(values) <= TARGET_MS : "-",
    });
    const rows = [
      row("navigation → first chart drawn with data", times.firstChart, true),
      row("navigation → DOMContentLoaded", times.domContentLoaded, false),
      row("the page's steps request (resource timing)", times.stepsRequest, false),
      row("the same steps request from Node (server's part)", times.stepsFromNode, false),
    ];
    const loadAverage1m = Number(loadavg()[0]?.toFixed(2));
    await writeResults("dashboard", { backend: "none", browser: `chromium ${browser.version()}`, database: database.kind, steps: STEPS, layers: LAYERS, loads: LOADS, stepsRequest: stepsUrl.replace(server.url, ""), loadAverage1m, rows });
  } finally {
    await browser.close();
    await server.stop();
  }
} finally {
  await prisma.$disconnect();
  await database.close();
}
