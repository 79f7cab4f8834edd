// How a running job hears from the API: the API changes the job's row or adds a Command row and
// sends NOTIFY job_control '<jobId>' in the same transaction; the job process LISTENs, then
// checks its row (cancelled?) and fetches new commands. No polling of the database per step.
import pg from "pg";
import type { Logger } from "../common/logger.ts";
import { JOB_CONTROL_CHANNEL } from "../prisma/channels.ts";
import { PgListener } from "../prisma/listener.ts";
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
  // The reads go through a pool, which opens a fresh connection after a database restart.
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1, application_name: "gradguard-job-control-reads" });
  pool.on("error", (error) => log.warn({ err: error }, "job control connection lost"));
  let lastCommandId = "0";
  let checking = Promise.resolve();
  const check = async () => {
    const { rows } = await pool.query<{ status: string; attempts: number }>(`SELECT status, attempts FROM "Job" WHERE id = $1`, [fence.jobId]);
    const row = rows[0];
    if (row?.status !== "running" || row.attempts !== fence.attempt) handlers.onCancelled(row?.status ?? "deleted");
    const commands = await pool.query<{ id: string; command: Omit<PendingCommand, "id"> }>(
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
  // Losing the connection must not crash training; once it is back, what was sent meanwhile
  // is read again (a cancel or a command whose NOTIFY was lost).
  const listener = new PgListener({
    name: "job-control",
    databaseUrl,
    channels: [JOB_CONTROL_CHANNEL],
    log,
    onNotification: (_channel, payload) => {
      if (payload === fence.jobId) void queueCheck();
    },
    onConnected: () => void queueCheck(),
  });
  await listener.start();
  await queueCheck();
  return {
    close: async () => {
      await listener.close();
      await checking;
      await pool.end().catch(() => {});
    },
  };
}
