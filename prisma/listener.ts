// A LISTEN connection: a plain pg Client of its own (a pooled Prisma connection cannot hold a
// LISTEN), reconnecting with back-off when it is lost. A lost connection means lost
// notifications, so every (re)connection is reported and its user re-reads what it watches.
// Used by the server (live channel, alert evaluator) and by each job process (job control).
import pg from "pg";
import type { Logger } from "../common/logger.ts";

export interface ListenerOptions {
  /** What listens, for the connection's application_name and the logs, e.g. "live". */
  name: string;
  databaseUrl: string;
  channels: readonly string[];
  log: Logger;
  onNotification(channel: string, payload: string): void;
  /** After every connection, the first included; `lostAt` is when the previous one was lost. */
  onConnected(lostAt: Date | undefined): void;
  /** First delay before reconnecting, in ms, doubling (with jitter) up to maxDelayMs; default 100. */
  minDelayMs?: number;
  /** Longest delay between reconnection attempts, in ms; default 5,000. */
  maxDelayMs?: number;
  /** How often an idle connection is checked with a query, in ms; default 10,000. */
  pingMs?: number;
}

export class PgListener {
  /** The connection being opened or in use; a loss of any other is stale news. */
  private client: pg.Client | undefined;
  private failures = 0;
  private lostAt: Date | undefined;
  private retry: NodeJS.Timeout | undefined;
  private ping: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: ListenerOptions) {}

  /** Resolves after the first attempt; if it failed, attempts go on in the background. */
  async start(): Promise<void> {
    await this.connect();
  }

  get connected(): boolean {
    return this.client !== undefined && this.ping !== undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    clearInterval(this.ping);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }

  private async connect(): Promise<void> {
    const { databaseUrl, channels, log } = this.options;
    // A silently dead connection (a network cut) fails the ping within query_timeout.
    const client = new pg.Client({ connectionString: databaseUrl, application_name: `gradguard-${this.options.name}`, keepAlive: true, query_timeout: 5_000 });
    this.client = client;
    client.on("notification", (message) => this.options.onNotification(message.channel, message.payload ?? ""));
    client.on("error", (error) => this.lost(client, error));
    client.on("end", () => this.lost(client));
    try {
      await client.connect();
      await client.query(channels.map((channel) => `LISTEN "${channel}"`).join("; "));
    } catch (error) {
      this.lost(client, error);
      return;
    }
    if (client !== this.client) return;
    if (this.failures > 0) log.info({ afterFailures: this.failures }, `${this.options.name} LISTEN connection back`);
    this.failures = 0;
    this.ping = setInterval(() => void client.query("SELECT 1").catch((error: unknown) => this.lost(client, error)), this.options.pingMs ?? 10_000);
    this.ping.unref();
    const lostAt = this.lostAt;
    this.lostAt = undefined;
    this.options.onConnected(lostAt);
  }

  private lost(client: pg.Client, error?: unknown): void {
    if (client !== this.client || this.closed) return;
    this.client = undefined;
    clearInterval(this.ping);
    this.ping = undefined;
    this.lostAt ??= new Date();
    client.removeAllListeners("notification");
    client.removeAllListeners("end");
    // Keep one error listener: a late error on a dropped client must not crash the process.
    client.removeAllListeners("error");
    client.on("error", () => {});
    void client.end().catch(() => {});
    const base = Math.min(this.options.maxDelayMs ?? 5_000, (this.options.minDelayMs ?? 100) * 2 ** this.failures);
    const delay = Math.round(base * (0.5 + Math.random() / 2));
    this.failures++;
    this.options.log.warn({ err: error, retryInMs: delay, failures: this.failures }, `${this.options.name} LISTEN connection lost; reconnecting`);
    this.retry = setTimeout(() => void this.connect(), delay);
  }
}
