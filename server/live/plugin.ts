// socket.io on the Fastify server: the live channel of common/live-contract.ts. Decorates the app
// with `app.live`. See README.md for how rows get from a trainer's flush to the clients.
import { createAdapter } from "@socket.io/postgres-adapter";
import fp from "fastify-plugin";
import pg from "pg";
import { Server } from "socket.io";
import type { LiveAlert } from "../../common/live-contract.ts";
import type { Logger } from "../../common/logger.ts";
import type { PrismaClient } from "../../prisma/client.ts";
import { findCaller, roleAllows } from "../tokens.ts";
import { LIVE_CHANNELS, LiveHub } from "./hub.ts";
import type { LiveServer } from "./job-feed.ts";
import { PgListener } from "../../prisma/listener.ts";

export interface LiveChannel {
  /**
   * Sends `alert` to every connected client, of this server and (through the Postgres adapter)
   * of every other instance. Call it once per alert, on one instance: each call is delivered.
   */
  broadcastAlert(alert: LiveAlert): void;
  /** Server instances sharing broadcasts, this one included, as far as this one has heard. */
  serverCount(): Promise<number>;
  /** Figures about the live channel on this server, for metrics and tests. */
  stats(): LiveChannelStats;
}

export interface LiveChannelStats {
  /** Connected clients. */
  clients: number;
  /** Jobs with at least one subscriber here. */
  feeds: number;
  /** Whether the LISTEN connection is up. */
  listening: boolean;
  /** Rows sent to clients, counted once per client. */
  rowsSent: number;
  /** Times a slow client was taken out of a room to catch up from the database. */
  lagEvictions: number;
}

declare module "fastify" {
  interface FastifyInstance {
    live: LiveChannel;
  }
}

export interface LivePluginOptions {
  prisma: PrismaClient;
  log: Logger;
  adminToken: string | undefined;
  /**
   * The database to LISTEN to and to share broadcasts between instances through. Without it
   * (tests that only use app.inject) clients still connect and catch up, but hear nothing new.
   */
  databaseUrl: string | undefined;
  corsOrigins: string[] | "*" | undefined;
  /** Packets a client may have waiting to be written before it is served from the database instead; default 100. */
  maxQueuedPackets?: number;
}

export default fp<LivePluginOptions>(
  async (app, options) => {
    const log = options.log.child({ component: "live" });
    // The adapter holds one connection for its own LISTEN and publishes through the others.
    const pool = options.databaseUrl ? new pg.Pool({ connectionString: options.databaseUrl, max: 3, application_name: "gradguard-live-adapter" }) : undefined;
    pool?.on("error", (error) => log.warn({ err: error }, "an idle live adapter connection failed"));
    // The adapter keeps a client checked out for its LISTEN, with no error listener (a lost
    // connection would be an uncaught error), and never releases it when it is lost (pool.end()
    // would wait for it forever). It reconnects on "end" by itself, with another client.
    pool?.on("connect", (client) => {
      client.on("error", (error) => log.warn({ err: error }, "the live adapter's connection failed"));
      client.on("end", () => {
        try {
          (client as pg.PoolClient).release(new Error("connection lost"));
        } catch {
          // It was idle in the pool, which has dropped it already.
        }
      });
    });

    const io: LiveServer = new Server(app.server, {
      serveClient: false,
      ...(options.corsOrigins ? { cors: { origin: options.corsOrigins } } : {}),
      ...(pool
        ? { adapter: createAdapter(pool, { tableName: `"LiveAttachment"`, errorHandler: (error) => log.warn({ err: error }, "live adapter error") }) }
        : {}),
    });
    const hub = new LiveHub({ io, prisma: options.prisma, log, maxQueuedPackets: options.maxQueuedPackets ?? 100 });
    const listener = options.databaseUrl
      ? new PgListener({
          name: "live",
          databaseUrl: options.databaseUrl,
          channels: LIVE_CHANNELS,
          log,
          onNotification: (channel, payload) => hub.onNotification(channel, payload),
          onConnected: (lostAt) => hub.onListening(lostAt),
        })
      : undefined;

    // The token check of the REST API (read suffices), once per connection.
    io.use((socket, next) => {
      const token: unknown = socket.handshake.auth?.token;
      if (typeof token !== "string" || token === "") {
        next(new Error("send an API token: io(url, { auth: { token } })"));
        return;
      }
      findCaller(options.prisma, options.adminToken, token).then(
        (caller) => next(caller && roleAllows(caller.role, "read") ? undefined : new Error("the API token is unknown or revoked")),
        (error: unknown) => {
          log.error({ err: error }, "checking a live client's token failed");
          next(new Error("the token could not be checked; try again"));
        },
      );
    });
    io.on("connection", (socket) => hub.attach(socket));

    app.decorate("live", {
      broadcastAlert: (alert: LiveAlert) => hub.broadcastAlert(alert),
      serverCount: () => io.of("/").adapter.serverCount(),
      stats: () => ({ clients: hub.clientCount, feeds: hub.feedCount, listening: listener?.connected ?? false, ...hub.stats }),
    });
    app.addHook("onReady", async () => {
      await listener?.start();
    });
    // Open websockets would keep the HTTP server from closing.
    app.addHook("preClose", async () => {
      io.local.disconnectSockets(true);
      io.engine.close();
    });
    app.addHook("onClose", async () => {
      hub.close();
      await listener?.close();
      await io.of("/").adapter.close();
      await pool?.end();
    });
  },
  { name: "live" },
);
