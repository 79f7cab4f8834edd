// The live channel's state on one server: the clients' requests, a feed per job that has
// subscribers here, and what the LISTEN connection hears, routed to them.
import type { Ack, LiveAlert, LiveJobStatus, SubscribeResult } from "../../common/live-contract.ts";
import type { Logger } from "../../common/logger.ts";
import { EVENTS_CHANNEL, JOB_STATUS_CHANNEL, STEPS_CHANNEL, STEPS_DELETED_CHANNEL } from "../../prisma/channels.ts";
import type { PrismaClient } from "../../prisma/client.ts";
import { CoalescedTask } from "./coalesced-task.ts";
import { Backlog, JobFeed, type LiveServer, type LiveSocket, type LiveStats, type Subscription } from "./job-feed.ts";
import { check, JOB_STATUS_COLUMNS, SubscribeRequestSchema, toLiveJobStatus, UnsubscribeRequestSchema } from "./messages.ts";

/** The channels the hub LISTENs to (alerts come through broadcastAlert instead). */
export const LIVE_CHANNELS = [STEPS_CHANNEL, STEPS_DELETED_CHANNEL, EVENTS_CHANNEL, JOB_STATUS_CHANNEL] as const;

/** The room of clients that sent jobs:watch. */
const WATCHERS_ROOM = "jobs";

/** Jobs one connection may follow at once: each costs the server a feed. */
export const MAX_SUBSCRIPTIONS_PER_CLIENT = 50;

export interface HubOptions {
  io: LiveServer;
  prisma: PrismaClient;
  log: Logger;
  /** Packets a client may have waiting before it is served from the database instead (README). */
  maxQueuedPackets: number;
}

export class LiveHub {
  private readonly feeds = new Map<string, JobFeed>();
  private readonly clients = new Map<string, { backlog: Backlog; subscriptions: Map<string, Subscription> }>();
  private readonly statusPending = new Set<string>();
  /** Set after the LISTEN connection was lost: every job that may have changed since is sent to watchers. */
  private statusSince: Date | undefined;
  private readonly statusReads: CoalescedTask;
  readonly stats: LiveStats = { rowsSent: 0, lagEvictions: 0 };

  constructor(private readonly options: HubOptions) {
    this.statusReads = new CoalescedTask(
      () => this.emitStatuses(),
      (error) => options.log.warn({ err: error }, "reading job statuses failed; will retry"),
    );
  }

  get feedCount(): number {
    return this.feeds.size;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Wires a connected, authenticated client. */
  attach(socket: LiveSocket): void {
    const client = { backlog: new Backlog(socket), subscriptions: new Map<string, Subscription>() };
    this.clients.set(socket.id, client);
    // Payloads are unknown until checked, and an ack may be missing or not a function.
    socket.on("job:subscribe", (...args: unknown[]) => this.answer(args, () => this.subscribe(socket, args[0])));
    socket.on("job:unsubscribe", (...args: unknown[]) => this.answer(args, async () => this.unsubscribeRequest(socket, args[0])));
    socket.on("jobs:watch", (...args: unknown[]) =>
      this.answer(args, async () => {
        await socket.join(WATCHERS_ROOM);
        return { data: true as const };
      }),
    );
    socket.on("jobs:unwatch", (...args: unknown[]) =>
      this.answer(args, async () => {
        await socket.leave(WATCHERS_ROOM);
        return { data: true as const };
      }),
    );
    socket.on("disconnect", () => {
      for (const jobId of client.subscriptions.keys()) this.unsubscribe(socket, jobId);
      this.clients.delete(socket.id);
    });
  }

  onNotification(channel: string, payload: string): void {
    // <jobId>:<number> or <jobId>; job ids are uuids, so the last colon separates.
    const colon = payload.lastIndexOf(":");
    const jobId = colon < 0 ? payload : payload.slice(0, colon);
    const feed = this.feeds.get(jobId);
    if (channel === STEPS_CHANNEL) feed?.onStepsAdded();
    else if (channel === STEPS_DELETED_CHANNEL) feed?.onStepsDeleted(Number(payload.slice(colon + 1)));
    else if (channel === EVENTS_CHANNEL) feed?.onEventsAdded();
    else if (channel === JOB_STATUS_CHANNEL && (feed || this.hasWatchers())) {
      this.statusPending.add(jobId);
      this.statusReads.request();
    }
  }

  /** The LISTEN connection is (back) up: re-read whatever may have been missed while it was down. */
  onListening(lostAt: Date | undefined): void {
    if (!lostAt) return;
    for (const feed of this.feeds.values()) {
      feed.onReconnected();
      this.statusPending.add(feed.jobId);
    }
    if (this.hasWatchers()) this.statusSince = this.statusSince && this.statusSince < lostAt ? this.statusSince : lostAt;
    this.statusReads.request();
  }

  /** To every client of every instance: the local ones here, the others' through the adapter. */
  broadcastAlert(alert: LiveAlert): void {
    this.options.io.emit("alert", alert);
  }

  close(): void {
    this.statusReads.stop();
    for (const feed of this.feeds.values()) feed.close();
    this.feeds.clear();
  }

  private async subscribe(socket: LiveSocket, payload: unknown): Promise<Ack<SubscribeResult>> {
    const checked = check(SubscribeRequestSchema, payload);
    if ("error" in checked) return checked;
    const { jobId, fromStep } = checked.value;
    const client = this.clients.get(socket.id);
    if (!client) return { error: "the connection is closed" };
    if (!client.subscriptions.has(jobId) && client.subscriptions.size >= MAX_SUBSCRIPTIONS_PER_CLIENT) {
      return { error: `/jobId: a connection may follow at most ${MAX_SUBSCRIPTIONS_PER_CLIENT} jobs at once; unsubscribe from one first` };
    }
    const job = await this.options.prisma.job.findUnique({ where: { id: jobId }, select: { ...JOB_STATUS_COLUMNS, layerNames: true } });
    if (!job) return { error: `/jobId: job ${jobId} does not exist` };
    if (!socket.connected) return { error: "the connection is closed" };
    // Subscribing again starts over from the new fromStep.
    this.unsubscribe(socket, jobId);
    let feed = this.feeds.get(jobId);
    if (!feed) {
      feed = new JobFeed(jobId, job.layerNames, { ...this.options, stats: this.stats });
      this.feeds.set(jobId, feed);
    }
    // The ack, sent when this returns, still comes first: a catch-up sends only after a read.
    client.subscriptions.set(jobId, feed.subscribe(socket, client.backlog, fromStep));
    return { data: { job: toLiveJobStatus(job) } };
  }

  private unsubscribeRequest(socket: LiveSocket, payload: unknown): Ack<true> {
    const checked = check(UnsubscribeRequestSchema, payload);
    if ("error" in checked) return checked;
    this.unsubscribe(socket, checked.value.jobId);
    return { data: true };
  }

  private unsubscribe(socket: LiveSocket, jobId: string): void {
    const client = this.clients.get(socket.id);
    const subscription = client?.subscriptions.get(jobId);
    const feed = this.feeds.get(jobId);
    if (!subscription || !feed) return;
    client?.subscriptions.delete(jobId);
    feed.unsubscribe(subscription);
    if (feed.subscriptions.size === 0) {
      feed.close();
      this.feeds.delete(jobId);
    }
  }

  private async emitStatuses(): Promise<void> {
    const ids = [...this.statusPending];
    this.statusPending.clear();
    const since = this.statusSince;
    this.statusSince = undefined;
    const jobs = await this.options.prisma.job.findMany({
      where: since ? { OR: [{ id: { in: ids } }, { status: { in: ["queued", "running"] } }, { finishedAt: { gte: since } }] } : { id: { in: ids } },
      select: JOB_STATUS_COLUMNS,
    });
    for (const job of jobs) this.emitStatus(toLiveJobStatus(job));
  }

  /** To the job's subscribers here and the watchers here; other instances hear the NOTIFY themselves. */
  private emitStatus(status: LiveJobStatus): void {
    const subscribers = [...(this.feeds.get(status.jobId)?.subscriptions.keys() ?? [])];
    this.options.io.local.to([...subscribers, WATCHERS_ROOM]).emit("job:status", status);
  }

  private hasWatchers(): boolean {
    return (this.options.io.of("/").adapter.rooms.get(WATCHERS_ROOM)?.size ?? 0) > 0;
  }

  /** Runs a request's handler and acks its result; a failure is logged and acked as an error. */
  private answer<T>(args: unknown[], handle: () => Promise<Ack<T>>): void {
    const ack = args.findLast((arg) => typeof arg === "function") as ((result: Ack<T>) => void) | undefined;
    handle().then(
      (result) => ack?.(result),
      (error: unknown) => {
        this.options.log.error({ err: error }, "a live request failed");
        ack?.({ error: "the server could not do that; try again" });
      },
    );
  }
}
