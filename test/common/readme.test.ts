// The README's configuration table is documentation users rely on: it must list exactly the
// variables the config schema reads.
import { readFile } from "node:fs/promises";
import { expect, it } from "vitest";
import { EnvSchema } from "../../common/config.ts";

it("documents every configuration variable, and only those", async () => {
  const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");
  const section = readme.slice(readme.indexOf("## Configuration"), readme.indexOf("## ", readme.indexOf("## Configuration") + 3));
  const documented = [...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
  expect(documented.sort()).toEqual(Object.keys(EnvSchema.properties).sort());
});
