// How a running job hears that it must stop (cancel): the API updates the job row and sends
// NOTIFY job_control '<jobId>' in the same transaction; the job process LISTENs and checks its
// row, so it stops within one step instead of polling the database every step.
import pg from "pg";
import type { Logger } from "../common/logger.ts";
import { JOB_CONTROL_CHANNEL } from "../prisma/channels.ts";

/** Calls `onCancelled` once the job's row is no longer running under this attempt. */
export async function watchForCancel(
  databaseUrl: string,
  fence: { jobId: string; attempt: number },
  log: Logger,
  onCancelled: (status: string) => void,
): Promise<{ close(): Promise<void> }> {
  const client = new pg.Client({ connectionString: databaseUrl });
  let closed = false;
  const check = async () => {
    const { rows } = await client.query<{ status: string; attempts: number }>(`SELECT status, attempts FROM "Job" WHERE id = $1`, [fence.jobId]);
    const row = rows[0];
    if (row?.status !== "running" || row.attempts !== fence.attempt) onCancelled(row?.status ?? "deleted");
  };
  client.on("notification", (message) => {
    if (message.payload === fence.jobId) check().catch((error: unknown) => log.warn({ err: error }, "could not check the job's status"));
  });
  // Losing this connection must not crash training: the job then just cannot be cancelled early.
  client.on("error", (error) => {
    if (!closed) log.warn({ err: error }, "job control connection lost; cancellation will not be noticed");
  });
  await client.connect();
  await client.query(`LISTEN ${JOB_CONTROL_CHANNEL}`);
  await check();
  return {
    close: async () => {
      closed = true;
      await client.end().catch(() => {});
    },
  };
}
