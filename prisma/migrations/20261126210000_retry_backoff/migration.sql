-- A job re-queued after a crash or an expired lease waits for its back-off before a worker may
-- claim it again (GRADGUARD_RETRY_BACKOFF_MS, doubled per attempt); null: claimable now.

-- AlterTable
ALTER TABLE "Job" ADD COLUMN "runAfter" TIMESTAMPTZ(3);
