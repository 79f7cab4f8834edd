-- The live path (issue 6): NOTIFYs sent by the tables themselves, in the transaction that writes
-- the rows, so no writer (trainer, server, a script) can forget one and none fires for a
-- rollback. Channel names and payloads are prisma/channels.ts; server/live LISTENs.
--
-- Step and Event notify once per job per statement, not per row: the trainer inserts a batch at
-- a time, and the server reads everything past what it has already sent anyway.

-- Payload <jobId>:<lastStep>, the largest step the statement inserted for that job.
CREATE FUNCTION live_notify_steps() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('job_steps', "jobId"::text || ':' || max(step)) FROM inserted GROUP BY "jobId";
  RETURN NULL;
END $$;

CREATE TRIGGER "Step_live_notify" AFTER INSERT ON "Step"
REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION live_notify_steps();

-- Payload <jobId>:<firstStep>, the smallest step the statement deleted for that job: a resumed or
-- retried job deletes the rows it will write again.
CREATE FUNCTION live_notify_steps_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('job_steps_deleted', "jobId"::text || ':' || min(step)) FROM deleted GROUP BY "jobId";
  RETURN NULL;
END $$;

CREATE TRIGGER "Step_live_notify_delete" AFTER DELETE ON "Step"
REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION live_notify_steps_deleted();

-- Payload <jobId>:<eventId>, the largest event id the statement inserted for that job.
CREATE FUNCTION live_notify_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('job_events', "jobId"::text || ':' || max(id)) FROM inserted GROUP BY "jobId";
  RETURN NULL;
END $$;

CREATE TRIGGER "Event_live_notify" AFTER INSERT ON "Event"
REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION live_notify_events();

-- Payload <jobId>: a job was created, or its status, pause flag or attempt count changed. The
-- trainer's heartbeats and lastStep updates change none of them and stay silent.
CREATE FUNCTION live_notify_job_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('job_status', NEW.id::text);
  RETURN NULL;
END $$;

CREATE TRIGGER "Job_live_notify_insert" AFTER INSERT ON "Job"
FOR EACH ROW EXECUTE FUNCTION live_notify_job_status();

CREATE TRIGGER "Job_live_notify_update" AFTER UPDATE ON "Job"
FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.paused IS DISTINCT FROM NEW.paused OR OLD.attempts IS DISTINCT FROM NEW.attempts)
EXECUTE FUNCTION live_notify_job_status();

-- Broadcasts between server instances too large for a NOTIFY payload (@socket.io/postgres-adapter).
-- CreateTable
CREATE TABLE "LiveAttachment" (
    "id" BIGSERIAL NOT NULL,
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "payload" BYTEA NOT NULL,

    CONSTRAINT "LiveAttachment_pkey" PRIMARY KEY ("id")
);
