// The dashboard's build (web/dist, served by server/plugins/web.ts) and its dev server, which
// proxies the API, the live channel and the metrics to a gradguard server (GRADGUARD_URL).
import preact from "@preact/preset-vite";
import { defineConfig } from "vite";

const api = process.env.GRADGUARD_URL ?? "http://127.0.0.1:3000";

export default defineConfig({
  root: import.meta.dirname,
  plugins: [preact()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true },
  server: {
    proxy: {
      "/api": api,
      "/metrics": api,
      "/socket.io": { target: api, ws: true },
    },
  },
});
