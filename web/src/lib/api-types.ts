// The REST shapes the dashboard reads, as the API documents them (/docs/json). The live shapes
// come from the shared contract (common/live-contract.ts); REST events and alerts have the same
// shape as the live ones, so they are re-exported from there.
export type { LiveAlert as Alert, LiveEvent as JobEvent, LiveJobStatus, LiveRole as Role, LiveSteps } from "../../../common/live-contract.ts";

export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled" | "diverged";

export interface Job {
  id: string;
  name: string;
  /** external: trained elsewhere, watched through POST /runs/:id/steps; it takes no commands. */
  kind: "training" | "external";
  status: JobStatus;
  attempts: number;
  error: string | null;
  backend: string | null;
  layerNames: string[];
  lastStep: number | null;
  paused: boolean;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  spec: Record<string, unknown>;
}

type Column = (number | null)[];

/** GET /api/v1/jobs/:id/steps: columnar; with `downsampled`, one entry per bucket and min/max columns. */
export interface StepsResponse {
  jobId: string;
  layerNames: string[];
  downsampled?: { bucketSize: number };
  step: number[];
  stepMin?: number[];
  loss?: Column;
  lossMin?: Column;
  lossMax?: Column;
  gradNorm?: Column;
  gradNormMin?: Column;
  gradNormMax?: Column;
  gradNormAfter?: Column;
  lr?: Column;
  valLoss?: Column;
  clipCoef?: Column;
  /** One entry per point, each with one norm per layer (in the order of layerNames). */
  layerNorms?: Column[];
  action?: string[];
  nonFinite: boolean[];
  nextFrom: number | null;
}

export interface Command {
  id: string;
  jobId: string;
  command: Record<string, unknown> & { type: string };
  status: "pending" | "applied" | "rejected";
  createdAt: string;
  appliedAt: string | null;
  appliedStep: number | null;
  error: string | null;
}

export interface Preset {
  id: string;
  title: string;
  description: string;
  spec: Record<string, unknown>;
}

/** An application/problem+json body; `errors` name the fields of a 400 (JSON pointers). */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  errors?: { in: string; field: string; message: string }[];
}
