// Shared by the alert, webhook and metrics tests (and bench/alerts.ts): running jobs, events
// written the way the trainer writes them, and a real HTTP receiver on 127.0.0.1.
import { once } from "node:events";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { type AlertsConfig, loadConfig } from "../../common/config.ts";
import type { PrismaClient } from "../../prisma/client.ts";
import { insertSteps } from "../../trainer/step-writer.ts";
import type { TrainingEvent } from "../../trainer/train-loop.ts";
import { stepRecord } from "../helpers/steps.ts";

/** Alert settings for tests: private receivers allowed, retries after at most 50 ms. */
export function testAlertSettings(overrides: Partial<AlertsConfig> = {}): AlertsConfig {
  return { ...loadConfig({}).alerts, webhookAllowPrivate: true, webhookRetryMs: 50, webhookTimeoutMs: 2_000, ...overrides };
}

export async function runningJob(prisma: PrismaClient, name = "exploding-rnn", lastStep: number | null = null): Promise<string> {
  const job = await prisma.job.create({ data: { name, spec: {}, status: "running", startedAt: new Date(), lastStep } });
  return job.id;
}

/** One trainer flush of events (no step rows), through the trainer's own writer. */
export async function writeEvents(prisma: PrismaClient, jobId: string, events: Partial<TrainingEvent>[]): Promise<void> {
  await insertSteps(
    prisma,
    jobId,
    [],
    events.map((e, i) => ({ step: i, kind: "nonFinite", severity: "warning", message: `step ${e.step ?? i} skipped: loss is NaN`, detail: {}, ...e })),
  );
}

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

export interface Receiver {
  url: string;
  received: Received[];
  /** Status codes for the next requests, in order; 200 once they run out. */
  answers: number[];
  /** Called on every request (the benchmark times arrivals with it). */
  onRequest?: (request: Received) => void;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const receiver: Receiver = {
    url: "",
    received: [],
    answers: [],
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const entry = { headers: request.headers, body: Buffer.concat(chunks).toString("utf8"), at: performance.now() };
      receiver.received.push(entry);
      receiver.onRequest?.(entry);
      response.statusCode = receiver.answers.shift() ?? 200;
      response.end("ok");
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return receiver;
}

/** Step rows as the trainer writes them (through its writer), numbered from `from`. */
export async function writeSteps(prisma: PrismaClient, jobId: string, from: number, count: number, values: { loss?: number; gradNorm?: number; lr?: number } = {}): Promise<void> {
  const rows = Array.from({ length: count }, (_, i) =>
    stepRecord(from + i, { loss: values.loss ?? 0.5, gradNorm: values.gradNorm ?? 1.5, gradNormAfter: values.gradNorm ?? 1.5, layerNorms: [1, 1], lr: values.lr ?? 0.1 }),
  );
  await insertSteps(prisma, jobId, rows);
}
