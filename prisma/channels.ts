// Postgres NOTIFY channels: part of the database contract between server and trainers, which
// meet only in Postgres.

/** Payload: a job id whose row changed in a way its running trainer must act on (cancel). */
export const JOB_CONTROL_CHANNEL = "job_control";
