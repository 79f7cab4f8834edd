-- Two costs of every INSERT into "Step", cut. A profile of
-- PostgreSQL under the HTTP ingest benchmark (perf, PostgreSQL 15) put 40% of its CPU in the
-- triggers that run after an INSERT into "Step": the foreign key's check, run once per row,
-- took 12%; the rollup trigger 27%, a tenth of it planning step_array_greatest's body again
-- at every call (a SQL function with a sub-SELECT is never inlined). Per batch of 100 rows
-- with 8 layer norms (PostgreSQL 15, 300 batches, 3 alternating runs), an insert took
-- 1.60-1.71 ms before, 1.20-1.34 ms after: 0.10-0.14 ms of it from the plpgsql function (its
-- plan is kept for the session), 0.20-0.29 ms from checking the key once per statement.

CREATE OR REPLACE FUNCTION step_array_greatest(a DOUBLE PRECISION[], b DOUBLE PRECISION[]) RETURNS DOUBLE PRECISION[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
  RETURN CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a
    ELSE ARRAY(SELECT greatest(u.x, u.y) FROM unnest(a, b) WITH ORDINALITY AS u(x, y, i) ORDER BY u.i) END;
END $$;

-- "Step"."jobId" still references "Job"."id" exactly as the foreign key did: a statement that
-- stores a step of a job that does not exist fails with foreign_key_violation and stores
-- nothing, and the job's rows are locked FOR KEY SHARE, as the key's own check does, so a
-- concurrent delete of the job waits for the steps' transaction and then deletes them too.
-- Deleting a job deletes its steps (ON DELETE CASCADE before). Job ids never change (the key's
-- ON UPDATE CASCADE never fired); changing one is refused rather than leaving steps behind.
ALTER TABLE "Step" DROP CONSTRAINT "Step_jobId_fkey";

CREATE FUNCTION step_job_exists() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  job_id UUID;
BEGIN
  FOR job_id IN SELECT DISTINCT "jobId" FROM changed LOOP
    PERFORM 1 FROM "Job" WHERE id = job_id FOR KEY SHARE;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'insert or update on table "Step" violates foreign key constraint "Step_jobId_fkey"'
        USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'Step_jobId_fkey', TABLE = 'Step',
              DETAIL = format('Key ("jobId")=(%s) is not present in table "Job".', job_id);
    END IF;
  END LOOP;
  RETURN NULL;
END $$;

CREATE TRIGGER "Step_job_exists_insert" AFTER INSERT ON "Step"
REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION step_job_exists();

CREATE TRIGGER "Step_job_exists_update" AFTER UPDATE ON "Step"
REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION step_job_exists();

CREATE FUNCTION job_delete_steps() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM "Step" WHERE "jobId" IN (SELECT id FROM removed);
  RETURN NULL;
END $$;

CREATE TRIGGER "Job_delete_steps" AFTER DELETE ON "Job"
REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION job_delete_steps();

CREATE FUNCTION job_id_unchanged() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'a job''s id never changes (job %)', OLD.id USING ERRCODE = 'foreign_key_violation', TABLE = 'Job';
END $$;

CREATE TRIGGER "Job_id_unchanged" BEFORE UPDATE OF id ON "Job"
FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION job_id_unchanged();
