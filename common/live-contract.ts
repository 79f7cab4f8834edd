// The socket.io contract between server/ and web/: the one place both import. Payloads a
// server receives are `unknown` until checked (server/live validates them); acks are
// `{ data } | { error }`.
//
// Connect with `io(url, { auth: { token } })`; a missing or bad token fails the handshake with
// a connect_error whose message says why.

/** The roles an API token can have; read is enough to watch. */
export type LiveRole = "read" | "write" | "admin";

/** An ack: the data asked for, or why not. */
export type Ack<T> = { data: T } | { error: string };

/**
 * New steps of one job, in the columnar shape of GET /api/v1/jobs/:id/steps (step by step, no
 * `downsampled`): entry i of every array belongs to the same step. Steps are increasing and,
 * per subscription, never repeated and never skipped.
 */
export interface LiveSteps {
  jobId: string;
  layerNames: string[];
  step: number[];
  loss: (number | null)[];
  gradNorm: (number | null)[];
  /** Per step, like every column: entry i holds step i's norm of each layer, in the order of layerNames. */
  layerNorms: (number | null)[][];
  lr: (number | null)[];
  nonFinite: boolean[];
  stepMs: (number | null)[];
  weightNorm: (number | null)[];
  updateRatio: (number | null)[];
  gradNormAfter: (number | null)[];
  clipCoef: (number | null)[];
  action: string[];
  valLoss: (number | null)[];
}

/** A job event, as GET /api/v1/jobs/:id/events returns it. */
export interface LiveEvent {
  /** Increasing; a bigint as a string. */
  id: string;
  jobId: string;
  step: number;
  kind: string;
  severity: "info" | "warning" | "critical";
  message: string;
  detail: Record<string, unknown>;
  createdAt: string;
}

/** Where a job stands, sent when its status, pause flag or attempt changes. */
export interface LiveJobStatus {
  jobId: string;
  name: string;
  status: "queued" | "running" | "succeeded" | "failed" | "cancelled" | "diverged";
  paused: boolean;
  attempts: number;
  lastStep: number | null;
  error: string | null;
}

/** An alert, as GET /api/v1/alerts returns it. */
export interface LiveAlert {
  id: string;
  jobId: string;
  jobName: string;
  /** The rule that raised it: diverged, nonFinite, rollback, repeatedSpikes, lrLowered, silent, … */
  rule: string;
  severity: "info" | "warning" | "critical";
  title: string;
  message: string;
  /** The step it is about, when it is about one. */
  step: number | null;
  /** The event that triggered it, when one did. */
  eventId: string | null;
  /** How many times the rule fired for this job within its cool-down (one alert per burst). */
  count: number;
  createdAt: string;
  acknowledgedAt: string | null;
  /** Name of the token that acknowledged it. */
  acknowledgedBy: string | null;
}

export interface SubscribeRequest {
  jobId: string;
  /**
   * The first step the client does not have yet: the last step it holds + 1, or 0 for all.
   * The server sends every stored step from here first (in batches), then live steps, with no
   * gap and no duplicate. Events are sent the same way: those at or after this step.
   */
  fromStep: number;
}

export interface SubscribeResult {
  /** The job as it stands now. */
  job: LiveJobStatus;
}

export interface ServerToClientEvents {
  "job:steps": (steps: LiveSteps) => void;
  "job:event": (event: LiveEvent) => void;
  "job:status": (status: LiveJobStatus) => void;
  /** Every new alert, to every connected client. */
  alert: (alert: LiveAlert) => void;
}

export interface ClientToServerEvents {
  "job:subscribe": (request: SubscribeRequest, ack: (result: Ack<SubscribeResult>) => void) => void;
  "job:unsubscribe": (request: { jobId: string }, ack: (result: Ack<true>) => void) => void;
  /** Status changes of every job (the jobs table), until `jobs:unwatch`. */
  "jobs:watch": (ack: (result: Ack<true>) => void) => void;
  "jobs:unwatch": (ack: (result: Ack<true>) => void) => void;
}
