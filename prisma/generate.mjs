// Generates the Prisma client into prisma/generated (git-ignored); run by `npm install`.
// The Prisma CLI wants a native schema engine, which it downloads and which cannot be
// downloaded offline; `generate` does not use it, so point the CLI at a stand-in.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
let cli;
try {
  cli = require.resolve("prisma/build/index.js");
} catch {
  // Production installs (npm ci --omit=dev) have no CLI; they use a client generated at build time.
  if (existsSync(new URL("./generated/client.ts", import.meta.url))) process.exit(0);
  console.error("prisma/generate: the prisma CLI is not installed and no generated client exists");
  process.exit(1);
}
const result = spawnSync(process.execPath, [cli, "generate"], {
  stdio: "inherit",
  env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? "/bin/true", PRISMA_HIDE_UPDATE_MESSAGE: "1" },
});
process.exit(result.status ?? 1);
