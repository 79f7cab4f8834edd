// How a running job hears from the API: the API changes the job's row or adds a Command row and
// sends NOTIFY job_control '<jobId>' in the same transaction; the job process LISTENs, then
// checks its row (cancelled?) and fetches new commands. No polling of the database per step.
import pg from "pg";
import type { Logger } from "../common/logger.ts";
import { JOB_CONTROL_CHANNEL } from "../prisma/channels.ts";
import type { PendingCommand } from "./commands.ts";

export interface JobControlHandlers {
  /** The job's row is no longer running under this attempt (cancelled, deleted, taken over). */
  onCancelled(status: string): void;
  /** Commands not seen before, oldest first. */
  onCommands(commands: PendingCommand[]): void;
}

export async function watchJob(
  databaseUrl: string,
  fence: { jobId: string; attempt: number },
  log: Logger,
  handlers: JobControlHandlers,
): Promise<{ close(): Promise<void> }> {
  const client = new pg.Client({ connectionString: databaseUrl });
  let closed = false;
  let lastCommandId = "0";
  let checking = Promise.resolve();
  const check = async () => {
    const { rows } = await client.query<{ status: string; attempts: number }>(`SELECT status, attempts FROM "Job" WHERE id = $1`, [fence.jobId]);
    const row = rows[0];
    if (row?.status !== "running" || row.attempts !== fence.attempt) handlers.onCancelled(row?.status ?? "deleted");
    const commands = await client.query<{ id: string; command: Omit<PendingCommand, "id"> }>(
      `SELECT id::text AS id, command FROM "Command" WHERE "jobId" = $1 AND status = 'pending' AND id > $2::bigint ORDER BY id`,
      [fence.jobId, lastCommandId],
    );
    const fresh = commands.rows.map((r) => ({ ...r.command, id: r.id }) as PendingCommand);
    if (fresh.length > 0) {
      lastCommandId = fresh.at(-1)?.id ?? lastCommandId;
      handlers.onCommands(fresh);
    }
  };
  // One check at a time, in order: two quick NOTIFYs must not deliver a command twice.
  const queueCheck = () => {
    checking = checking.then(check).catch((error: unknown) => log.warn({ err: error }, "could not read the job's row or commands"));
    return checking;
  };
  client.on("notification", (message) => {
    if (message.payload === fence.jobId) void queueCheck();
  });
  // Losing this connection must not crash training: the job then just cannot be controlled.
  client.on("error", (error) => {
    if (!closed) log.warn({ err: error }, "job control connection lost; cancel and commands will not be noticed");
  });
  await client.connect();
  await client.query(`LISTEN ${JOB_CONTROL_CHANNEL}`);
  await queueCheck();
  return {
    close: async () => {
      closed = true;
      await checking;
      await client.end().catch(() => {});
    },
  };
}
