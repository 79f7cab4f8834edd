// Uploaded datasets in Postgres: parsed once at upload (trainer/data/csv.ts), stored as float32
// matrices, and loaded whole by the job process that trains on them.
import type { PrismaClient } from "../../prisma/client.ts";
import type { ParsedCsv } from "./csv.ts";
import type { Dataset } from "./datasets.ts";

export interface DatasetInfo {
  id: string;
  name: string;
  featureColumns: string[];
  targetColumn: string;
  labels: string[];
  rows: number;
  createdAt: Date;
}

export async function saveDataset(prisma: PrismaClient, name: string, parsed: ParsedCsv): Promise<DatasetInfo> {
  return prisma.dataset.create({
    data: {
      name,
      featureColumns: parsed.featureColumns,
      targetColumn: parsed.targetColumn,
      labels: parsed.labels ?? [],
      rows: parsed.rows,
      x: new Uint8Array(parsed.x.buffer as ArrayBuffer),
      y: new Uint8Array(parsed.y.buffer as ArrayBuffer),
    },
    omit: { x: true, y: true },
  });
}

/** Shape facts a job spec records about its dataset, or null when there is no such dataset. */
export async function datasetFacts(prisma: PrismaClient, id: string): Promise<{ size: number; features: number; targets: number } | null> {
  const row = await prisma.dataset.findUnique({ where: { id }, select: { rows: true, featureColumns: true, labels: true } });
  return row && { size: row.rows, features: row.featureColumns.length, targets: Math.max(1, row.labels.length) };
}

export async function loadDataset(prisma: PrismaClient, id: string): Promise<Dataset> {
  const row = await prisma.dataset.findUnique({ where: { id } });
  if (!row) throw new Error(`dataset ${id} does not exist (was it deleted?)`);
  const targets = Math.max(1, row.labels.length);
  return {
    // Copies into aligned buffers: the driver's Buffer may start at any byte offset.
    x: new Float32Array(new Uint8Array(row.x).buffer),
    y: new Float32Array(new Uint8Array(row.y).buffer),
    examples: row.rows,
    featureShape: [row.featureColumns.length],
    targetShape: [targets],
  };
}
