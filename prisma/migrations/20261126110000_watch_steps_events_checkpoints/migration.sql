-- CreateEnum
CREATE TYPE "EventSeverity" AS ENUM ('info', 'warning', 'critical');

-- AlterTable
ALTER TABLE "Step" ADD COLUMN     "action" TEXT NOT NULL DEFAULT 'none',
ADD COLUMN     "clipCoef" DOUBLE PRECISION NOT NULL DEFAULT 1,
ADD COLUMN     "gradNormAfter" DOUBLE PRECISION,
ADD COLUMN     "updateRatio" DOUBLE PRECISION,
ADD COLUMN     "valLoss" DOUBLE PRECISION,
ADD COLUMN     "weightNorm" DOUBLE PRECISION;

-- CreateTable
CREATE TABLE "Event" (
    "id" BIGSERIAL NOT NULL,
    "jobId" UUID NOT NULL,
    "step" INTEGER NOT NULL,
    "kind" TEXT NOT NULL,
    "severity" "EventSeverity" NOT NULL,
    "message" TEXT NOT NULL,
    "detail" JSONB NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Event_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Checkpoint" (
    "jobId" UUID NOT NULL,
    "step" INTEGER NOT NULL,
    "weights" BYTEA NOT NULL,
    "optimizer" BYTEA NOT NULL,
    "state" JSONB NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Checkpoint_pkey" PRIMARY KEY ("jobId","step")
);

-- CreateIndex
CREATE INDEX "Event_jobId_step_idx" ON "Event"("jobId", "step");

-- CreateIndex
CREATE INDEX "Event_createdAt_idx" ON "Event"("createdAt");

-- AddForeignKey
ALTER TABLE "Event" ADD CONSTRAINT "Event_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "Job"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Checkpoint" ADD CONSTRAINT "Checkpoint_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "Job"("id") ON DELETE CASCADE ON UPDATE CASCADE;
