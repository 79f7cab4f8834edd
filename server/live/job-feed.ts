// One job's live feed on this server: it reads the job's new rows once, whoever watches, and
// emits them to the job's room; and it brings each new subscriber from its fromStep up to the
// room before letting it in. See README.md for why this gives no gap and no duplicate.
import { once } from "node:events";
import type { Server, Socket } from "socket.io";
import type { ClientToServerEvents, ServerToClientEvents } from "../../common/live-contract.ts";
import type { Logger } from "../../common/logger.ts";
import type { PrismaClient } from "../../prisma/client.ts";
import { readSteps } from "../steps-query.ts";
import { CoalescedTask } from "./coalesced-task.ts";
import { toLiveEvent, toLiveSteps } from "./messages.ts";

export type LiveServer = Server<ClientToServerEvents, ServerToClientEvents>;
export type LiveSocket = Socket<ClientToServerEvents, ServerToClientEvents>;

/** Rows per job:steps message: a catch-up of a long job comes in pages of this many steps. */
export const PAGE_ROWS = 500;
/** Events per read. */
const EVENT_PAGE = 500;
/** Pause before retrying a failed read, in ms. */
const RETRY_MS = 1_000;

export interface LiveStats {
  /** Rows sent, counted once per client that received them. */
  rowsSent: number;
  /** Times a client was too far behind and was taken out of a room to catch up from the database. */
  lagEvictions: number;
}

export interface FeedContext {
  io: LiveServer;
  prisma: PrismaClient;
  log: Logger;
  /** Packets a client may have waiting to be written before it is served from the database instead. */
  maxQueuedPackets: number;
  stats: LiveStats;
}

/**
 * Packets waiting in a client's engine.io buffer. They pile up while its transport cannot write
 * (a client that does not read, or a slow network); "flush" hands them all to the transport.
 */
export class Backlog {
  queued = 0;

  constructor(private readonly socket: LiveSocket) {
    socket.conn.on("packetCreate", () => this.queued++);
    socket.conn.on("flush", () => {
      this.queued = 0;
    });
  }

  /** Resolves once at most `limit` packets wait, or the client is gone. */
  async atMost(limit: number): Promise<void> {
    while (this.queued > limit && this.socket.connected) {
      const abort = new AbortController();
      const options = { signal: abort.signal };
      await Promise.race([once(this.socket.conn, "drain", options).catch(() => {}), once(this.socket, "disconnect", options).catch(() => {})]);
      abort.abort();
    }
  }
}

/** One client's subscription to one job. */
export class Subscription {
  /** The last step this client has: sent to it, or held already (fromStep − 1). */
  lastSent: number;
  /** Where its next catch-up read starts (past lastSent when steps are missing in between). */
  nextStep: number;
  /** The last event id considered for it. */
  eventsThrough = 0n;
  /** Catch-up events before this step are not sent: the client asked from here. */
  eventsFromStep: number;
  /** In the job's room: it gets what the feed emits. */
  live = false;
  closed = false;

  constructor(
    readonly socket: LiveSocket,
    readonly backlog: Backlog,
    fromStep: number,
  ) {
    this.lastSent = fromStep - 1;
    this.nextStep = fromStep;
    this.eventsFromStep = fromStep;
  }
}

export class JobFeed {
  readonly room: string;
  readonly subscriptions = new Map<string, Subscription>();
  /** The last step emitted to the room. */
  private stepsThrough = -1;
  /** The last event id emitted to the room. */
  private eventsThrough = 0n;
  /** Bumped when stored steps were deleted: a read begun before it is stale. */
  private generation = 0;
  private readonly ready: Promise<void>;
  private readonly reads: CoalescedTask;
  private stepsAdded = false;
  private eventsAdded = false;
  private deletedFrom: number | undefined;
  private waiters: (() => void)[] = [];
  private closed = false;

  constructor(
    readonly jobId: string,
    private layerNames: string[],
    private readonly context: FeedContext,
  ) {
    this.room = `job:${jobId}`;
    this.ready = this.readBaseline();
    this.reads = new CoalescedTask(
      () => this.readNew(),
      (error) => context.log.warn({ err: error, jobId }, "reading a job's new rows failed; will retry"),
      RETRY_MS,
    );
  }

  /** A NOTIFY said steps were added. */
  onStepsAdded(): void {
    this.stepsAdded = true;
    this.reads.request();
  }

  /** A NOTIFY said steps from `firstStep` on were deleted: they will be written again. */
  onStepsDeleted(firstStep: number): void {
    this.deletedFrom = Math.min(this.deletedFrom ?? firstStep, firstStep);
    this.reads.request();
  }

  onEventsAdded(): void {
    this.eventsAdded = true;
    this.reads.request();
  }

  /** After the LISTEN connection was lost: anything may have been missed. */
  onReconnected(): void {
    this.stepsAdded = true;
    this.eventsAdded = true;
    this.reads.request();
  }

  /** Adds a subscriber and starts its catch-up; a subscribe's ack must already be out. */
  subscribe(socket: LiveSocket, backlog: Backlog, fromStep: number): Subscription {
    const subscription = new Subscription(socket, backlog, fromStep);
    this.subscriptions.set(socket.id, subscription);
    void this.catchUp(subscription);
    return subscription;
  }

  unsubscribe(subscription: Subscription): void {
    subscription.closed = true;
    if (subscription.live) void subscription.socket.leave(this.room);
    if (this.subscriptions.get(subscription.socket.id) === subscription) this.subscriptions.delete(subscription.socket.id);
    this.wake();
  }

  close(): void {
    this.closed = true;
    this.reads.stop();
    for (const subscription of this.subscriptions.values()) this.unsubscribe(subscription);
  }

  /** Where the room stands when the feed starts: later rows come with NOTIFYs, which are already heard. */
  private async readBaseline(): Promise<void> {
    for (;;) {
      try {
        const [row] = await this.context.prisma.$queryRaw<{ lastStep: number | null; lastEvent: bigint | null }[]>`
          SELECT (SELECT max(step) FROM "Step" WHERE "jobId" = ${this.jobId}::uuid) AS "lastStep",
                 (SELECT max(id) FROM "Event" WHERE "jobId" = ${this.jobId}::uuid) AS "lastEvent"`;
        this.stepsThrough = row?.lastStep ?? -1;
        this.eventsThrough = row?.lastEvent ?? 0n;
        return;
      } catch (error) {
        if (this.closed) return;
        this.context.log.warn({ err: error, jobId: this.jobId }, "reading where a job's feed starts failed; will retry");
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  }

  private async readNew(): Promise<void> {
    await this.ready;
    if (this.deletedFrom !== undefined) this.rewind();
    // Cleared before the read, so that a NOTIFY during it asks for one more; set again if it
    // fails, so that the retry reads.
    if (this.stepsAdded) {
      this.stepsAdded = false;
      await this.emitNewSteps().catch((error: unknown) => {
        this.stepsAdded = true;
        throw error;
      });
    }
    if (this.eventsAdded) {
      this.eventsAdded = false;
      await this.emitNewEvents().catch((error: unknown) => {
        this.eventsAdded = true;
        throw error;
      });
    }
  }

  /**
   * Stored steps were deleted to be written again. The room's position moves back, so that a
   * new subscriber is sent the rewritten rows; those who had the old ones wait, out of the
   * room, until the new rows pass what they have.
   */
  private rewind(): void {
    const lastKept = (this.deletedFrom ?? 0) - 1;
    this.deletedFrom = undefined;
    if (lastKept >= this.stepsThrough) return;
    this.generation++;
    const left: Subscription[] = [];
    for (const subscription of this.subscriptions.values()) {
      if (subscription.live) {
        this.leaveRoom(subscription);
        left.push(subscription);
      }
      subscription.nextStep = subscription.lastSent + 1;
    }
    this.stepsThrough = lastKept;
    // The others are in a catch-up already, which starts its read again (see `generation`).
    for (const subscription of left) void this.catchUp(subscription);
  }

  private async emitNewSteps(): Promise<void> {
    const { io, prisma } = this.context;
    for (;;) {
      if (this.layerNames.length === 0) {
        // A job gets its layer names when a trainer starts it.
        this.layerNames = (await prisma.job.findUnique({ where: { id: this.jobId }, select: { layerNames: true } }))?.layerNames ?? [];
      }
      const page = await readSteps(prisma, { id: this.jobId, layerNames: this.layerNames }, { from: this.stepsThrough + 1, limit: PAGE_ROWS });
      if (this.closed || page.step.length === 0) return;
      this.evictLaggards();
      io.local.to(this.room).emit("job:steps", toLiveSteps(page));
      this.context.stats.rowsSent += page.step.length * this.liveCount();
      this.stepsThrough = page.step.at(-1) as number;
      this.wake();
      if (page.nextFrom === null) return;
    }
  }

  private async emitNewEvents(): Promise<void> {
    const { io, prisma } = this.context;
    for (;;) {
      const rows = await prisma.event.findMany({ where: { jobId: this.jobId, id: { gt: this.eventsThrough } }, orderBy: { id: "asc" }, take: EVENT_PAGE });
      if (this.closed || rows.length === 0) return;
      this.evictLaggards();
      for (const row of rows) io.local.to(this.room).emit("job:event", toLiveEvent(row));
      this.eventsThrough = rows.at(-1)?.id as bigint;
      this.wake();
      if (rows.length < EVENT_PAGE) return;
    }
  }

  /**
   * Takes every client whose buffer holds more than maxQueuedPackets out of the room, so its
   * buffer stops growing; it catches up from the database once it has drained, in pages of
   * PAGE_ROWS: one coalesced batch instead of every small one it missed.
   */
  private evictLaggards(): void {
    for (const subscription of this.subscriptions.values()) {
      if (subscription.live && subscription.backlog.queued > this.context.maxQueuedPackets) {
        this.context.stats.lagEvictions++;
        this.leaveRoom(subscription);
        void this.catchUp(subscription);
      }
    }
  }

  /** Out of the room, where it stood when it left (the room's position). */
  private leaveRoom(subscription: Subscription): void {
    subscription.live = false;
    void subscription.socket.leave(this.room);
    subscription.lastSent = this.stepsThrough;
    subscription.nextStep = this.stepsThrough + 1;
    subscription.eventsThrough = this.eventsThrough;
    subscription.eventsFromStep = 0;
  }

  private async catchUp(subscription: Subscription): Promise<void> {
    try {
      await this.catchUpOnce(subscription);
    } catch (error) {
      if (subscription.closed) return;
      this.context.log.warn({ err: error, jobId: this.jobId }, "a subscriber's catch-up failed; will retry");
      setTimeout(() => void this.catchUp(subscription), RETRY_MS);
    }
  }

  /**
   * Sends the subscriber what the room has had and it has not, then puts it in the room. Every
   * check of the room's position and the join happen in one synchronous run after the last
   * read, so nothing the feed emits can fall between the catch-up and the room.
   */
  private async catchUpOnce(subscription: Subscription): Promise<void> {
    const { prisma, maxQueuedPackets } = this.context;
    await this.ready;
    for (;;) {
      if (subscription.closed || this.closed) return;
      if (subscription.backlog.queued > maxQueuedPackets) {
        await subscription.backlog.atMost(maxQueuedPackets);
        continue;
      }
      // Read together with the join below, in one synchronous run after the last await.
      const stepsTarget = this.stepsThrough;
      const eventsTarget = this.eventsThrough;
      const generation = this.generation;
      if (subscription.nextStep <= stepsTarget) {
        const page = await readSteps(prisma, { id: this.jobId, layerNames: this.layerNames }, { from: subscription.nextStep, to: stepsTarget, limit: PAGE_ROWS });
        // Steps deleted meanwhile: the page may hold rows that are no longer there; start again.
        if (subscription.closed || generation !== this.generation) continue;
        if (page.step.length > 0) {
          subscription.socket.emit("job:steps", toLiveSteps(page));
          this.context.stats.rowsSent += page.step.length;
          subscription.lastSent = page.step.at(-1) as number;
        }
        subscription.nextStep = page.nextFrom ?? stepsTarget + 1;
      } else if (subscription.eventsThrough < eventsTarget) {
        const rows = await prisma.event.findMany({
          where: { jobId: this.jobId, id: { gt: subscription.eventsThrough, lte: eventsTarget }, step: { gte: subscription.eventsFromStep } },
          orderBy: { id: "asc" },
          take: EVENT_PAGE,
        });
        if (subscription.closed) return;
        for (const row of rows) subscription.socket.emit("job:event", toLiveEvent(row));
        subscription.eventsThrough = rows.length === EVENT_PAGE ? (rows.at(-1)?.id as bigint) : eventsTarget;
      } else if (subscription.lastSent > this.stepsThrough) {
        // It has steps the room has not reached (rows deleted to be written again, or a client
        // of a server that had read further): joining now would send them twice.
        await this.advanced();
      } else {
        subscription.live = true;
        void subscription.socket.join(this.room);
        return;
      }
    }
  }

  /** Resolves after the feed's next emit (or when a subscriber leaves). */
  private advanced(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  private liveCount(): number {
    let count = 0;
    for (const subscription of this.subscriptions.values()) if (subscription.live) count++;
    return count;
  }
}
