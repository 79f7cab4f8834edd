// What crosses the socket: client payloads checked against TypeBox schemas (they are `unknown`
// until then), and database rows turned into the contract's shapes (common/live-contract.ts).
import Type, { type Static, type TSchema } from "typebox";
import Value from "typebox/value";
import type { LiveEvent, LiveJobStatus, LiveSteps } from "../../common/live-contract.ts";
import type { StepsResponse } from "../schemas/jobs.ts";

/** Steps are int4 in the database. */
const LAST_POSSIBLE_STEP = 2_147_483_647;

export const SubscribeRequestSchema = Type.Object(
  {
    jobId: Type.String({ format: "uuid" }),
    fromStep: Type.Integer({ minimum: 0, maximum: LAST_POSSIBLE_STEP }),
  },
  { additionalProperties: false },
);

export const UnsubscribeRequestSchema = Type.Object({ jobId: Type.String({ format: "uuid" }) }, { additionalProperties: false });

export type Checked<T> = { value: T } | { error: string };

/**
 * The payload as the schema's type, or an error that names each wrong field as a JSON pointer,
 * the way the REST API's problems do: "/fromStep: must be >= 0".
 */
export function check<S extends TSchema>(schema: S, payload: unknown): Checked<Static<S>> {
  if (Value.Check(schema, payload)) return { value: payload as Static<S> };
  const problems = new Set<string>();
  for (const error of Value.Errors(schema, payload)) {
    const params = error.params as { requiredProperties?: string[]; additionalProperties?: string[] };
    if (params.requiredProperties) {
      for (const name of params.requiredProperties) if (!hasKey(payload, name)) problems.add(`${error.instancePath}/${name}: is required`);
    } else if (params.additionalProperties) {
      for (const name of params.additionalProperties) problems.add(`${error.instancePath}/${name}: is not a known field`);
    } else if (error.keyword !== "boolean") {
      // (A "boolean" error repeats an unknown field as "/x: schema is false".)
      problems.add(`${error.instancePath || "/"}: ${error.message}`);
    }
  }
  return { error: [...problems].join("; ") };
}

function hasKey(payload: unknown, name: string): boolean {
  return typeof payload === "object" && payload !== null && name in payload;
}

/**
 * A page of readSteps (server/steps-query.ts) with every field: exactly the columns of LiveSteps,
 * plus the page's `nextFrom`, which the live channel pages by itself.
 */
export function toLiveSteps(page: StepsResponse): LiveSteps {
  const { nextFrom: _nextFrom, ...columns } = page;
  return columns as LiveSteps;
}

export interface EventRow {
  id: bigint;
  jobId: string;
  step: number;
  kind: string;
  severity: LiveEvent["severity"];
  message: string;
  detail: unknown;
  createdAt: Date;
}

/** As GET /api/v1/jobs/:id/events returns it. */
export function toLiveEvent(row: EventRow): LiveEvent {
  return {
    id: row.id.toString(),
    jobId: row.jobId,
    step: row.step,
    kind: row.kind,
    severity: row.severity,
    message: row.message,
    detail: row.detail as Record<string, unknown>,
    createdAt: row.createdAt.toISOString(),
  };
}

/** The columns of Job that LiveJobStatus needs (a Prisma `select`). */
export const JOB_STATUS_COLUMNS = { id: true, name: true, status: true, paused: true, attempts: true, lastStep: true, error: true } as const;

export function toLiveJobStatus(job: { id: string } & Omit<LiveJobStatus, "jobId">): LiveJobStatus {
  return { jobId: job.id, name: job.name, status: job.status, paused: job.paused, attempts: job.attempts, lastStep: job.lastStep, error: job.error };
}
