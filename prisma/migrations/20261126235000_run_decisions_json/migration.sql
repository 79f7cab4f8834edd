-- An external run's decisions are written once per request and read back whole (by a retry):
-- json keeps the text as sent, where jsonb parsed and rebuilt 100 objects on every request. And
-- where the server has lz4 (PostgreSQL 14+ built with it, as Debian's is; the embedded
-- PostgreSQL is not), the decisions and the watchdog state (about 6 kB, rewritten on every
-- request) are compressed with it rather than pglz. PostgreSQL CPU for a request's decisions
-- and state, measured on PostgreSQL 15 (3 alternating runs of 500 requests): jsonb and pglz
-- 1.40-1.66 ms; json and pglz 1.00-1.14 ms; json and lz4 0.82-0.90 ms.
ALTER TABLE "RunDecisionBatch" ALTER COLUMN "decisions" TYPE JSON;

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
    ALTER TABLE "RunDecisionBatch" ALTER COLUMN "decisions" SET COMPRESSION lz4;
    ALTER TABLE "ExternalRun" ALTER COLUMN "state" SET COMPRESSION lz4;
  END IF;
END $$;
