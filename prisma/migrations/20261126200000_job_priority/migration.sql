-- Job priorities for the queue (higher first, then oldest first), and the attempt count at the
-- last manual retry, so a retried job gets a fresh budget of GRADGUARD_MAX_ATTEMPTS while the
-- attempt number itself keeps increasing (it fences every write of a job process).

-- AlterTable
ALTER TABLE "Job" ADD COLUMN "priority" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN "attemptsBeforeRetry" INTEGER NOT NULL DEFAULT 0;

-- The worker's claim: WHERE status = 'queued' ORDER BY priority DESC, "createdAt", id LIMIT 1.
-- CreateIndex
CREATE INDEX "Job_status_priority_createdAt_id_idx" ON "Job"("status", "priority" DESC, "createdAt", "id");

-- GET /jobs pages newest first over (createdAt, id), with or without filters.
-- CreateIndex
CREATE INDEX "Job_createdAt_id_idx" ON "Job"("createdAt", "id");
