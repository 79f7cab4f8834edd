// Configuration for the Prisma CLI (generate). The application itself never reads this file:
// it builds its client in prisma/client.ts from the parsed config.
import { defineConfig } from "prisma/config";

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
});
