// The dashboard in a real browser (Debian chromium driven by playwright-core) against a real
// server process serving the built web/dist: sign in, submit the explosion demo from its preset,
// watch the norm chart grow live with intervention markers, lower the LR and see it applied, get
// the alert toast, compare two jobs, acknowledge an alert, and a read-only token without controls.
// Screenshots of every page go to artifacts/dashboard/ (git-ignored).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_ADMIN_TOKEN } from "../helpers/app.ts";
import { createTestDatabase } from "../helpers/database.ts";
import { api, type ServerProcess, startServer } from "../helpers/server-process.ts";
import { waitFor } from "../helpers/wait.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const SHOTS = `${ROOT}artifacts/dashboard`;

let server: ServerProcess;
let browser: Browser;
beforeAll(async () => {
  // `npm test` builds the dashboard first; a lone run of this file builds it when missing.
  if (!existsSync(`${ROOT}web/dist/index.html`)) execFileSync("npm", ["run", "--silent", "build:web"], { cwd: ROOT, stdio: "ignore" });
  mkdirSync(SHOTS, { recursive: true });
  const db = await createTestDatabase();
  [server, browser] = await Promise.all([
    startServer({ DATABASE_URL: db.url }),
    chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"] }),
  ]);
}, 90_000);
afterAll(async () => {
  await browser?.close();
});

/** A page that fails the test on any console error (CSP violations included) or page crash. */
async function openPage(width = 1366, height = 900): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width, height } });
  const problems: string[] = [];
  page.on("console", (message) => {
    // Chromium logs every 4xx response; the app handles the ones the scenario provokes (a refused
    // spec, a refused token). Anything else logged as an error is a bug.
    if (message.type() === "error" && !/status of 40[01] /.test(message.text())) problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(error.message));
  return { page, problems };
}

async function signIn(page: Page, token: string) {
  await page.goto(server.url);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Jobs" }).waitFor();
}

describe("the dashboard, served by the API server", () => {
  it("serves index.html for page paths with a CSP that allows only this origin, and keeps API 404s", async () => {
    const home = await fetch(`${server.url}/jobs/00000000-0000-4000-8000-000000000000`);
    expect(home.status).toBe(200);
    expect(home.headers.get("content-type")).toContain("text/html");
    expect(home.headers.get("cache-control")).toBe("no-cache");
    const csp = home.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toContain("upgrade-insecure-requests");
    const html = await home.text();
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(asset).toBeDefined();
    const script = await fetch(`${server.url}${asset}`);
    expect(script.headers.get("cache-control")).toContain("immutable");
    const missing = await api(server.url, "/no-such-resource");
    expect(missing.status).toBe(404);
    expect((await fetch(`${server.url}/assets/no-such-file.js`)).status).toBe(404);
    expect((await fetch(`${server.url}/assets/..%2f..%2fpackage.json`)).status).toBe(403);
    const docs = await fetch(`${server.url}/docs/no-such-page`);
    expect(docs.headers.get("content-type")).toContain("problem+json");
  });
});

describe("watching and steering a run in the browser", () => {
  it("submits the explosion demo from its preset, shows it live with interventions, and takes a command", async () => {
    const { page, problems } = await openPage();
    await signIn(page, TEST_ADMIN_TOKEN);
    await page.getByText("No jobs yet.").waitFor();
    await page.screenshot({ path: `${SHOTS}/01-jobs-empty.png` });

    // New job: the preset is the guarded explosion demo; a bad learning rate is shown at its field.
    await page.getByRole("link", { name: "New job" }).first().click();
    await page.getByLabel("Preset").waitFor();
    await expect.poll(() => page.locator("#spec-json").inputValue()).toContain("explosion demo (gradguard)");
    await page.getByLabel("Learning rate").fill("-1");
    await page.getByLabel("Learning rate").blur();
    await page.getByRole("button", { name: "Submit job" }).click();
    const fieldError = page.locator("#field-optimizer-learningRate-error");
    await fieldError.waitFor();
    expect(await fieldError.textContent()).toMatch(/>|greater|minimum|positive/i);
    await page.screenshot({ path: `${SHOTS}/02-new-job-field-error.png`, fullPage: true });
    await page.getByLabel("Learning rate").fill("0.5");
    await page.getByLabel("Learning rate").blur();
    // Long enough to still be running when the command is sent.
    await page.getByLabel("Steps").fill("50000");
    await page.getByLabel("Steps").blur();
    await page.getByRole("button", { name: "Submit job" }).click();

    // The job page: the norm chart grows as steps arrive, with intervention markers (the demo is
    // clipped from step 0 and its LR lowered at step 2).
    await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
    const jobId = page.url().split("/").at(-1) as string;
    const chart = page.getByTestId("norm-chart");
    const points = async () => Number(await chart.getAttribute("data-points"));
    await expect.poll(points, { timeout: 30_000 }).toBeGreaterThan(20);
    const before = await points();
    await expect.poll(points, { timeout: 20_000 }).toBeGreaterThan(before + 10);
    expect(Number(await chart.getAttribute("data-markers"))).toBeGreaterThan(0);
    // Hovering the first marker (step 0, at the plot's left edge) shows its evidence.
    const plot = chart.locator(".u-over");
    const box = await plot.boundingBox();
    if (!box) throw new Error("the norm chart has no plot area");
    await page.mouse.move(box.x + 1, box.y + box.height / 2);
    await page.getByTestId("marker-card").waitFor();
    expect(await page.getByTestId("marker-card").textContent()).toContain("gradient norm");
    await page.screenshot({ path: `${SHOTS}/03-job-live.png`, fullPage: true });

    // Lower the LR from the controls: confirmed, sent, and acknowledged once the trainer applies it.
    await page.getByRole("button", { name: "Lower LR" }).click();
    await page.getByRole("button", { name: "Confirm: Lower LR" }).click();
    const applied = page.locator("li.command[data-status=applied]");
    await applied.waitFor({ timeout: 20_000 });
    expect(await applied.textContent()).toMatch(/scaleLearningRate.*applied before step \d/);

    // The watchdog's LR reduction raised an alert: it appears as a toast.
    await page.locator(".toast").first().waitFor({ timeout: 20_000 });
    await page.screenshot({ path: `${SHOTS}/04-job-command-applied.png`, fullPage: true });

    // Compare with the unguarded run (submitted over REST once the guarded one is stopped, so the
    // one worker takes it: its norm grows by orders of magnitude within a few steps).
    await api(server.url, `/jobs/${jobId}/cancel`, { method: "POST", body: "{}" });
    const presets = await api<{ items: { id: string; spec: Record<string, unknown> }[] }>(server.url, "/presets");
    const unguarded = presets.body.items.find((p) => p.id === "explosion-unguarded")?.spec;
    const other = await api<{ id: string }>(server.url, "/jobs", { method: "POST", body: JSON.stringify(unguarded) });
    await waitFor("the unguarded run's first steps", async () => {
      const { body } = await api<{ lastStep: number | null }>(server.url, `/jobs/${other.body.id}`);
      return (body.lastStep ?? 0) >= 20 ? true : undefined;
    });
    await page.goto(`${server.url}/compare?jobs=${jobId},${other.body.id}`);
    await page.locator(".compare-chart .uplot").waitFor({ timeout: 20_000 });
    expect(await page.locator(".compare-summary tbody tr").count()).toBe(2);
    await page.screenshot({ path: `${SHOTS}/05-compare.png`, fullPage: true });

    // Jobs table: both jobs, with sparklines and badges.
    await page.getByRole("link", { name: "Jobs" }).click();
    await page.locator(`tr[data-job-id="${jobId}"] .sparkline canvas`).waitFor({ timeout: 20_000 });
    expect(await page.locator("table.jobs tbody tr").count()).toBe(2);
    await page.screenshot({ path: `${SHOTS}/06-jobs.png`, fullPage: true });

    // Alerts: listed, acknowledged, linked to their step.
    await page.getByRole("link", { name: "Alerts", exact: true }).click();
    const firstAlert = page.locator("ul.alerts li").first();
    await firstAlert.waitFor();
    const alertId = await firstAlert.getAttribute("data-alert-id");
    await page.screenshot({ path: `${SHOTS}/07-alerts.png`, fullPage: true });
    await firstAlert.getByRole("button", { name: "Acknowledge" }).click();
    await page.locator(`[data-alert-id="${alertId}"]`).waitFor({ state: "detached" });

    // A narrow window still shows the job page in one column.
    await page.setViewportSize({ width: 420, height: 900 });
    await page.goto(`${server.url}/jobs/${jobId}`);
    await chart.waitFor();
    await page.screenshot({ path: `${SHOTS}/08-job-narrow.png`, fullPage: true });
    await api(server.url, `/jobs/${other.body.id}/cancel`, { method: "POST", body: "{}" });

    expect(problems).toEqual([]);
    await page.close();
  });

  it("shows an external run's norms and decisions without the controls it cannot take", async () => {
    const { body: run } = await api<{ id: string }>(server.url, "/runs", { method: "POST", body: JSON.stringify({ name: "torch-run", layerNames: ["fc1", "fc2"] }) });
    const steps = Array.from({ length: 60 }, (_, step) => {
      const gradNorm = step === 40 ? 80 : 1 + 0.05 * Math.sin(step);
      return { step, loss: 2 - step / 100, gradNorm, layerNorms: [gradNorm * 0.6, gradNorm * 0.8], lr: 0.01, weightNorm: 20 };
    });
    await api(server.url, `/runs/${run.id}/steps`, { method: "POST", body: JSON.stringify({ steps }) });
    const { page, problems } = await openPage();
    await signIn(page, TEST_ADMIN_TOKEN);
    await page.goto(`${server.url}/jobs/${run.id}`);
    await page.getByTestId("norm-chart").waitFor();
    await page.getByText("external", { exact: true }).waitFor();
    expect(await page.getByRole("button", { name: "Lower LR" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: "Stop" }).count()).toBe(0);
    await page.screenshot({ path: `${SHOTS}/10-external-run.png`, fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  });

  it("hides the controls from a read-only token and asks for a token again when it is refused", async () => {
    const created = await api<{ token: string }>(server.url, "/tokens", { method: "POST", body: JSON.stringify({ name: "viewer", role: "read" }) });
    const { page, problems } = await openPage();
    await page.goto(server.url);
    await page.getByLabel("API token").fill("not-a-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").waitFor();
    await page.screenshot({ path: `${SHOTS}/09-login-refused.png` });
    await signIn(page, created.body.token);
    expect(await page.getByText("viewer · read").count()).toBe(1);
    const { body: jobs } = await api<{ items: { id: string }[] }>(server.url, "/jobs");
    await page.goto(`${server.url}/jobs/${jobs.items[0]?.id}`);
    await page.getByTestId("norm-chart").waitFor();
    expect(await page.getByRole("button", { name: "Lower LR" }).count()).toBe(0);
    expect(await page.getByRole("link", { name: "New job" }).count()).toBe(0);
    expect(problems).toEqual([]);
    await page.close();
  });
});
