// GET /metrics: Prometheus text format from prom-client, on a Registry of this app's own (tests
// build many apps in one process; the global registry would refuse the second). It needs an
// API token like the API (any role: read is enough), so Prometheus scrapes with
// `authorization: { credentials: <token> }`.
//
// Every figure is read from Postgres at scrape time, so each server instance reports the same
// totals and a restart resets nothing. Per-job series exist only for running jobs: a finished
// job's series disappear at the next scrape, which keeps the number of series bounded.
import type { FastifyPluginAsync } from "fastify";
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { PrismaClient } from "../../prisma/client.ts";
import { INTERVENTION_KINDS, type RulesState } from "../alerts/rules.ts";
import { HttpProblem } from "../errors.ts";
import type { LiveChannelStats } from "../live/plugin.ts";
import { findCaller } from "../tokens.ts";

interface Snapshot {
  running: { jobId: string; name: string; loss: number | null; gradNorm: number | null; lr: number | null }[];
  jobs: { status: string; count: number; steps: number }[];
  interventions: Record<string, number>;
  alerts: { severity: string; count: number; open: number }[];
  deliveries: { status: string; count: number }[];
}

async function readSnapshot(prisma: PrismaClient): Promise<Snapshot> {
  // One snapshot for all of them: the alert counts and the evaluator's state agree.
  const [running, jobs, evaluator, alerts, deliveries] = await prisma.$transaction([
    prisma.$queryRaw<Snapshot["running"]>`
      SELECT j.id::text AS "jobId", j.name, s.loss, s."gradNorm", s.lr
      FROM "Job" j LEFT JOIN "Step" s ON s."jobId" = j.id AND s.step = j."lastStep"
      WHERE j.status = 'running'`,
    prisma.$queryRaw<Snapshot["jobs"]>`
      SELECT status::text, count(*)::int AS count, COALESCE(sum("lastStep" + 1), 0)::float8 AS steps FROM "Job" GROUP BY status`,
    prisma.alertEvaluator.findUnique({ where: { id: 1 }, select: { state: true } }),
    prisma.$queryRaw<Snapshot["alerts"]>`
      SELECT severity::text, count(*)::int AS count, (count(*) FILTER (WHERE "acknowledgedAt" IS NULL))::int AS open FROM "Alert" GROUP BY severity`,
    prisma.$queryRaw<Snapshot["deliveries"]>`SELECT status::text, count(*)::int AS count FROM "AlertDelivery" GROUP BY status`,
  ], { isolationLevel: "RepeatableRead" });
  const interventions = ((evaluator?.state ?? {}) as Partial<RulesState>).interventions ?? {};
  return { running, jobs, interventions, alerts, deliveries };
}

/**
 * The app's metrics. Totals come from the database, so each counter's collect() resets it and
 * adds the total (prom-client counters have no set).
 */
export function createMetrics(prisma: PrismaClient, liveStats: () => LiveChannelStats | undefined): { registry: Registry; scrape(): Promise<string> } {
  const registry = new Registry();
  // Unprefixed (process_cpu_seconds_total, nodejs_heap_size_used_bytes, …): the names Node.js dashboards expect.
  collectDefaultMetrics({ register: registry });
  let snapshot: Snapshot | undefined;
  const perJob = (name: string, help: string, pick: (job: Snapshot["running"][number]) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames: ["job_id", "job_name"],
      registers: [registry],
      collect() {
        this.reset();
        for (const job of snapshot?.running ?? []) {
          const value = pick(job);
          if (value !== null) this.set({ job_id: job.jobId, job_name: job.name }, value);
        }
      },
    });
  perJob("gradguard_job_grad_norm", "Global gradient L2 norm (before mitigation) at the latest stored step of each running job", (j) => j.gradNorm);
  perJob("gradguard_job_loss", "Loss at the latest stored step of each running job", (j) => j.loss);
  perJob("gradguard_job_learning_rate", "Learning rate applied at the latest stored step of each running job", (j) => j.lr);
  new Counter({
    name: "gradguard_steps_total",
    help: "Training steps stored, over all jobs",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(snapshot?.jobs.reduce((sum, j) => sum + j.steps, 0) ?? 0);
    },
  });
  new Gauge({
    name: "gradguard_jobs",
    help: "Jobs by status; status=queued is the queue depth",
    labelNames: ["status"],
    registers: [registry],
    collect() {
      this.reset();
      for (const status of ["queued", "running", "succeeded", "failed", "cancelled", "diverged"]) {
        this.set({ status }, snapshot?.jobs.find((j) => j.status === status)?.count ?? 0);
      }
    },
  });
  new Gauge({
    name: "gradguard_queue_depth",
    help: "Jobs waiting for a trainer",
    registers: [registry],
    collect() {
      this.set(snapshot?.jobs.find((j) => j.status === "queued")?.count ?? 0);
    },
  });
  new Counter({
    name: "gradguard_interventions_total",
    help: "Watchdog interventions by event kind (clip, skip, nonFinite, lrLowered, rollback, rolledBack, diverged), since alerts were installed",
    labelNames: ["kind"],
    registers: [registry],
    collect() {
      this.reset();
      for (const kind of INTERVENTION_KINDS) this.inc({ kind }, snapshot?.interventions[kind] ?? 0);
    },
  });
  new Counter({
    name: "gradguard_alerts_total",
    help: "Alerts raised, by severity (repeats folded into an alert are not counted again)",
    labelNames: ["severity"],
    registers: [registry],
    collect() {
      this.reset();
      for (const severity of ["info", "warning", "critical"]) this.inc({ severity }, snapshot?.alerts.find((a) => a.severity === severity)?.count ?? 0);
    },
  });
  new Gauge({
    name: "gradguard_alerts_unacknowledged",
    help: "Alerts not acknowledged yet, by severity",
    labelNames: ["severity"],
    registers: [registry],
    collect() {
      this.reset();
      for (const severity of ["info", "warning", "critical"]) this.set({ severity }, snapshot?.alerts.find((a) => a.severity === severity)?.open ?? 0);
    },
  });
  new Gauge({
    name: "gradguard_webhook_deliveries",
    help: "Webhook deliveries by status: pending (not yet received), delivered, failed (given up)",
    labelNames: ["status"],
    registers: [registry],
    collect() {
      this.reset();
      for (const status of ["pending", "delivered", "failed"]) this.set({ status }, snapshot?.deliveries.find((d) => d.status === status)?.count ?? 0);
    },
  });
  // The live channel's figures are this instance's own (its clients, its LISTEN connection).
  const live = (name: string, help: string, pick: (stats: LiveChannelStats) => number, type: typeof Gauge | typeof Counter = Gauge) =>
    new type({
      name,
      help,
      registers: [registry],
      collect() {
        const stats = liveStats();
        if (!stats) return;
        this.reset();
        this.inc(pick(stats));
      },
    });
  live("gradguard_live_clients", "socket.io clients connected to this instance", (s) => s.clients);
  live("gradguard_live_listening", "1 while this instance's LISTEN connection for the live path is up", (s) => (s.listening ? 1 : 0));
  live("gradguard_live_rows_sent_total", "Step rows sent to socket.io clients by this instance, once per client", (s) => s.rowsSent, Counter);
  live("gradguard_live_lag_evictions_total", "Times a slow socket.io client was taken out of a room to catch up from the database (live-path lag)", (s) => s.lagEvictions, Counter);
  return {
    registry,
    // Read once per scrape, before the collect() functions above run.
    scrape: async () => {
      snapshot = await readSnapshot(prisma);
      return registry.metrics();
    },
  };
}

const metricsRoutes: FastifyPluginAsync<{ adminToken: string | undefined }> = async (app, { adminToken }) => {
  const { registry, scrape } = createMetrics(app.prisma, () => (app.hasDecorator("live") ? app.live.stats() : undefined));
  app.get("/metrics", { schema: { hide: true } }, async (request, reply) => {
    const header = request.headers.authorization;
    const token = header?.startsWith("Bearer ") ? header.slice(7).trim() : undefined;
    if (!token || !(await findCaller(app.prisma, adminToken, token))) {
      reply.header("www-authenticate", 'Bearer realm="gradguard"');
      throw new HttpProblem(401, "Unauthorized", "send an API token (any role): Authorization: Bearer <token>", "urn:gradguard:problem:unauthorized");
    }
    reply.type(registry.contentType);
    return scrape();
  });
};

export default metricsRoutes;
