// socket.io clients of the live channel (common/live-contract.ts), used the way the dashboard
// uses them: a collector keeps the rows it got and, on every (re)connection, subscribes again
// from the first step it lacks. It records anything that breaks the contract instead of throwing,
// so a test can assert that nothing did.
import { io, type Socket } from "socket.io-client";
import type { ClientToServerEvents, LiveAlert, LiveEvent, LiveJobStatus, LiveSteps, ServerToClientEvents } from "../../common/live-contract.ts";
import { TEST_ADMIN_TOKEN } from "./app.ts";
import { waitFor } from "./wait.ts";

export type LiveClient = Socket<ServerToClientEvents, ClientToServerEvents>;

/** A connected client (websocket only, as browsers end up using). */
export async function connectLive(url: string, token: string = TEST_ADMIN_TOKEN): Promise<LiveClient> {
  const socket: LiveClient = io(url, { auth: { token }, transports: ["websocket"], reconnectionDelay: 100, reconnectionDelayMax: 500 });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  return socket;
}

/** The message of the connect_error a handshake with `auth` fails with. */
export async function handshakeError(url: string, auth: Record<string, unknown>): Promise<string> {
  const socket: LiveClient = io(url, { auth, transports: ["websocket"], reconnection: false });
  try {
    return await new Promise<string>((resolve, reject) => {
      socket.once("connect", () => reject(new Error("the handshake was accepted")));
      socket.once("connect_error", (error) => resolve(error.message));
    });
  } finally {
    socket.close();
  }
}

/** Every job:steps, job:event, job:status and alert one client receives, checked as they come. */
export class LiveCollector {
  readonly steps: number[] = [];
  readonly batches: LiveSteps[] = [];
  readonly events: LiveEvent[] = [];
  readonly statuses: LiveJobStatus[] = [];
  readonly alerts: LiveAlert[] = [];
  /** What broke the contract: a step repeated or out of order, a batch of another job. */
  readonly violations: string[] = [];
  /** Subscriptions made, one per (re)connection. */
  subscriptions = 0;

  constructor(
    readonly socket: LiveClient,
    readonly jobId: string,
  ) {
    socket.on("job:steps", (batch) => {
      if (batch.jobId !== jobId) return;
      this.batches.push(batch);
      for (const step of batch.step) {
        const last = this.steps.at(-1);
        if (last !== undefined && step <= last) this.violations.push(`step ${step} after ${last}`);
        this.steps.push(step);
      }
    });
    socket.on("job:event", (event) => {
      if (event.jobId === jobId) this.events.push(event);
    });
    socket.on("job:status", (status) => this.statuses.push(status));
    socket.on("alert", (alert) => this.alerts.push(alert));
  }

  get lastStep(): number {
    return this.steps.at(-1) ?? -1;
  }

  /** Subscribes now from `fromStep` and again after every reconnection from the last step + 1. */
  async follow(fromStep = 0): Promise<LiveJobStatus> {
    // Called once connected: "connect" fires again for each reconnection only.
    this.socket.on("connect", () => {
      void this.subscribe(this.lastStep + 1).catch((error: unknown) => this.violations.push(`resubscribe failed: ${String(error)}`));
    });
    return this.subscribe(fromStep);
  }

  async subscribe(fromStep: number): Promise<LiveJobStatus> {
    this.subscriptions++;
    const result = await this.socket.timeout(10_000).emitWithAck("job:subscribe", { jobId: this.jobId, fromStep });
    if ("error" in result) throw new Error(result.error);
    // The job as it stands now: a status reached while this client was away arrives only here.
    this.statuses.push(result.data.job);
    return result.data.job;
  }

  async waitForStep(step: number, timeoutMs = 20_000): Promise<void> {
    await waitFor(`step ${step} of job ${this.jobId} (have up to ${this.lastStep})`, async () => (this.lastStep >= step ? true : undefined), timeoutMs);
  }

  /** The received batches as one, column by column, to compare with GET /jobs/:id/steps. */
  merged(): Record<string, unknown[]> {
    const columns: Record<string, unknown[]> = {};
    for (const batch of this.batches) {
      for (const [name, values] of Object.entries(batch)) {
        if (Array.isArray(values) && name !== "layerNames") columns[name] = [...(columns[name] ?? []), ...values];
      }
    }
    return columns;
  }
}
