// Postgres NOTIFY channels: part of the database contract between server and trainers, which
// meet only in Postgres.

/** Payload: a job id whose row changed in a way its running trainer must act on (cancel). */
export const JOB_CONTROL_CHANNEL = "job_control";

// Live path (issue 6): sent by triggers on the tables themselves (see their migration), in the
// transaction that writes the rows, so no writer can forget one and none fires for a rollback.

/** Payload `<jobId>:<lastStep>`: steps up to lastStep of that job were committed. */
export const STEPS_CHANNEL = "job_steps";

/**
 * Payload `<jobId>:<firstStep>`: steps from firstStep on of that job were deleted. A job resumed
 * from a checkpoint (or retried from scratch) writes them again; the live channel must send the
 * new rows to those who lack them, and not again to those who had the old ones.
 */
export const STEPS_DELETED_CHANNEL = "job_steps_deleted";

/** Payload `<jobId>:<eventId>`: an Event row was committed. */
export const EVENTS_CHANNEL = "job_events";

/** Payload: a job id whose status, pause flag or attempt count changed (or that was created). */
export const JOB_STATUS_CHANNEL = "job_status";

/** Payload: the id of a new Alert row. */
export const ALERTS_CHANNEL = "alerts";
