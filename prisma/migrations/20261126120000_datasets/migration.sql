-- CreateTable
CREATE TABLE "Dataset" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "featureColumns" TEXT[],
    "targetColumn" TEXT NOT NULL,
    "labels" TEXT[],
    "rows" INTEGER NOT NULL,
    "x" BYTEA NOT NULL,
    "y" BYTEA NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Dataset_pkey" PRIMARY KEY ("id")
);
