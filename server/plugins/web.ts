// Serves the built dashboard (web/dist) at `/`: hashed assets cached for good, index.html never
// cached, and index.html for every other page path so a reload or a shared link opens the page.
// API, docs, metrics and socket.io paths keep their own 404 (problem+json).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance, FastifyReply } from "fastify";

export const DASHBOARD_DIST = fileURLToPath(new URL("../../web/dist", import.meta.url));

/** Paths that never fall back to the dashboard: unknown ones there are real 404s. */
const NOT_DASHBOARD = /^\/(api|docs|metrics|socket\.io)(\/|$)/;

/**
 * The Content-Security-Policy (helmet's defaults, tightened for the dashboard): scripts, styles,
 * fonts and connections from this origin only (the live channel's websocket is same-origin),
 * images from here or data: URLs, and no upgrade-insecure-requests, which would break a server
 * reached over plain http on a LAN address.
 */
export const CONTENT_SECURITY_POLICY = {
  useDefaults: false,
  directives: {
    "default-src": ["'self'"],
    "base-uri": ["'self'"],
    "connect-src": ["'self'"],
    "font-src": ["'self'", "data:"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'self'"],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "script-src": ["'self'"],
    "script-src-attr": ["'none'"],
    // uPlot and Preact set element styles from script, which CSP counts as inline styles.
    "style-src": ["'self'", "'unsafe-inline'"],
  },
};

export default async function webPlugin(app: FastifyInstance, { root = DASHBOARD_DIST }: { root?: string } = {}): Promise<void> {
  if (!existsSync(`${root}/index.html`)) {
    app.log.warn({ root }, "the dashboard is not built (npm run build:web); / serves a note instead");
    app.get("/", { schema: { hide: true } }, async (_request, reply) =>
      reply.type("text/plain").send("The gradguard dashboard is not built: run `npm run build:web` (npm start does it when web/dist is missing). The API is at /api/v1, its docs at /docs.\n"),
    );
    return;
  }
  await app.register(fastifyStatic, {
    root,
    // No routes of its own: the two below decide, so a rebuilt dist is served without a restart.
    serve: false,
    cacheControl: false,
    setHeaders: (reply, path) => {
      reply.header("cache-control", path.includes("/assets/") ? "public, max-age=31536000, immutable" : "no-cache");
    },
  });
  const sendIndex = (reply: FastifyReply) => reply.header("cache-control", "no-cache").sendFile("index.html");
  app.get("/", { schema: { hide: true } }, (_request, reply) => sendIndex(reply));
  app.get("/*", { schema: { hide: true } }, (request, reply) => {
    const path = request.url.split("?")[0] as string;
    if (NOT_DASHBOARD.test(path)) return reply.callNotFound();
    // A file name (assets, favicon) is served or is a 404; anything else is a page path.
    if (/\.[A-Za-z0-9]+$/.test(path)) return reply.sendFile(decodeURIComponent(path.slice(1)));
    return sendIndex(reply);
  });
}
