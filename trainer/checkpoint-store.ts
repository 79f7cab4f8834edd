// Checkpoints live in Postgres, beside the job, so any worker on any machine can resume a job
// another worker lost. Tensors are stored as one float32 buffer per kind (weights, optimizer);
// their names and shapes, the cursors and the watchdog state go in a JSON column.
import type { PrismaClient } from "../prisma/client.ts";
import type { NamedValues, TrainingCheckpoint } from "./train-loop.ts";

interface StoredState {
  weights: { name: string; shape: number[] }[];
  optimizer: { name: string; shape: number[] }[];
  rest: TrainingCheckpoint["state"];
}

/** Stores a checkpoint and deletes all but the newest `keep` of the job. */
export async function saveCheckpoint(prisma: PrismaClient, jobId: string, checkpoint: TrainingCheckpoint, keep: number): Promise<void> {
  const state: StoredState = {
    weights: checkpoint.weights.map(({ name, shape }) => ({ name, shape })),
    optimizer: checkpoint.optimizer.map(({ name, shape }) => ({ name, shape })),
    rest: checkpoint.state,
  };
  const data = {
    weights: pack(checkpoint.weights),
    optimizer: pack(checkpoint.optimizer),
    state: JSON.parse(JSON.stringify(state)),
  };
  await prisma.$transaction([
    prisma.checkpoint.upsert({ where: { jobId_step: { jobId, step: checkpoint.step } }, create: { jobId, step: checkpoint.step, ...data }, update: data }),
    prisma.$executeRaw`
      DELETE FROM "Checkpoint" WHERE "jobId" = ${jobId}::uuid AND "step" NOT IN (
        SELECT "step" FROM "Checkpoint" WHERE "jobId" = ${jobId}::uuid ORDER BY "step" DESC LIMIT ${keep}::int)`,
  ]);
}

/** All stored checkpoints of a job, oldest first (empty when it has none). */
export async function loadCheckpoints(prisma: PrismaClient, jobId: string): Promise<TrainingCheckpoint[]> {
  const rows = await prisma.checkpoint.findMany({ where: { jobId }, orderBy: { step: "asc" } });
  return rows.map((row) => {
    const state = row.state as unknown as StoredState;
    return { step: row.step, weights: unpack(row.weights, state.weights), optimizer: unpack(row.optimizer, state.optimizer), state: state.rest };
  });
}

/** After a rollback to the checkpoint of `step`: the newer ones hold the trouble. */
export async function deleteCheckpointsAfter(prisma: PrismaClient, jobId: string, step: number): Promise<void> {
  await prisma.checkpoint.deleteMany({ where: { jobId, step: { gt: step } } });
}

function pack(tensors: NamedValues[]): Uint8Array<ArrayBuffer> {
  const total = tensors.reduce((sum, t) => sum + t.values.length, 0);
  const all = new Float32Array(total);
  let offset = 0;
  for (const t of tensors) {
    all.set(t.values, offset);
    offset += t.values.length;
  }
  return new Uint8Array(all.buffer);
}

function unpack(bytes: Uint8Array, layout: { name: string; shape: number[] }[]): NamedValues[] {
  // Copy into an aligned buffer: a Buffer from the driver may start at any byte offset.
  const all = new Float32Array(new Uint8Array(bytes).buffer);
  let offset = 0;
  return layout.map(({ name, shape }) => {
    const length = shape.reduce((a, b) => a * b, 1);
    const values = all.slice(offset, offset + length);
    offset += length;
    return { name, shape, values };
  });
}
