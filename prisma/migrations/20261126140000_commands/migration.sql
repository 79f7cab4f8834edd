-- CreateEnum
CREATE TYPE "CommandStatus" AS ENUM ('pending', 'applied', 'rejected');

-- AlterTable
ALTER TABLE "Job" ADD COLUMN     "paused" BOOLEAN NOT NULL DEFAULT false;

-- CreateTable
CREATE TABLE "Command" (
    "id" BIGSERIAL NOT NULL,
    "jobId" UUID NOT NULL,
    "command" JSONB NOT NULL,
    "status" "CommandStatus" NOT NULL DEFAULT 'pending',
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "appliedAt" TIMESTAMPTZ(3),
    "appliedStep" INTEGER,
    "error" TEXT,

    CONSTRAINT "Command_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Command_jobId_status_idx" ON "Command"("jobId", "status");

-- AddForeignKey
ALTER TABLE "Command" ADD CONSTRAINT "Command_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "Job"("id") ON DELETE CASCADE ON UPDATE CASCADE;
