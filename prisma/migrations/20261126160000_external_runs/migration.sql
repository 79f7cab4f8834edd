-- CreateEnum
CREATE TYPE "JobKind" AS ENUM ('training', 'external');

-- AlterTable
ALTER TABLE "Job" ADD COLUMN     "kind" "JobKind" NOT NULL DEFAULT 'training';

-- CreateTable
CREATE TABLE "ExternalRun" (
    "jobId" UUID NOT NULL,
    "config" JSONB NOT NULL,
    "state" JSONB NOT NULL,
    "lastStep" INTEGER NOT NULL DEFAULT -1,

    CONSTRAINT "ExternalRun_pkey" PRIMARY KEY ("jobId")
);

-- CreateTable
CREATE TABLE "RunDecision" (
    "jobId" UUID NOT NULL,
    "step" INTEGER NOT NULL,
    "decision" JSONB NOT NULL,

    CONSTRAINT "RunDecision_pkey" PRIMARY KEY ("jobId","step")
);

-- AddForeignKey
ALTER TABLE "ExternalRun" ADD CONSTRAINT "ExternalRun_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "Job"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "RunDecision" ADD CONSTRAINT "RunDecision_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "ExternalRun"("jobId") ON DELETE CASCADE ON UPDATE CASCADE;
