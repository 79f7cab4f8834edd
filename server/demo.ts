// `npm run demo`: submits the explosion demo with and without the watchdog to a running server
// and prints where to watch them side by side.
import { loadConfig } from "../common/config.ts";
import { runMain } from "../common/shutdown.ts";
import { PRESETS } from "./presets.ts";

await runMain("gradguard demo", async () => {
  const config = loadConfig();
  if (!config.clientToken) throw new Error("set GRADGUARD_TOKEN (or GRADGUARD_ADMIN_TOKEN) to an API token with the write role");
  const base = `${config.serverUrl.replace(/\/$/, "")}/api/v1`;
  const submitted: { id: string; name: string }[] = [];
  for (const id of ["explosion-guarded", "explosion-unguarded"]) {
    const preset = PRESETS.find((p) => p.id === id) as (typeof PRESETS)[number];
    const response = await fetch(`${base}/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${config.clientToken}` },
      body: JSON.stringify(preset.spec),
    }).catch((error: unknown) => {
      throw new Error(`cannot reach ${config.serverUrl} (is npm start running? set GRADGUARD_URL otherwise): ${String(error)}`);
    });
    const body = (await response.json()) as { id: string; name: string; detail?: string };
    if (response.status !== 201) throw new Error(`the server refused ${id}: ${response.status} ${body.detail ?? ""}`);
    submitted.push(body);
  }
  const dashboard = config.serverUrl.replace(/\/$/, "");
  process.stdout.write("Submitted the explosion demo, with and without the watchdog:\n");
  for (const job of submitted) process.stdout.write(`  ${job.name.padEnd(28)} ${dashboard}/jobs/${job.id}\n`);
  process.stdout.write(`Side by side in the dashboard: ${dashboard}/compare?jobs=${submitted.map((job) => job.id).join(",")}\n`);
  process.stdout.write(`Their steps and events over the API: ${base}/jobs/<id>/steps?maxPoints=500 and ${base}/jobs/<id>/events\n`);
});
