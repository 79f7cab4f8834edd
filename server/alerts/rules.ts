// The alert rules: pure functions from job events (and the running jobs' progress) to alerts.
// They hold no connections and read no clock; the evaluator feeds them rows and persists their
// state, so they are tested on plain numbers like the watchdog.
import type { AlertRule, AlertsConfig } from "../../common/config.ts";

export type Severity = "info" | "warning" | "critical";

export type RuleSettings = Pick<AlertsConfig, "severities" | "cooldownMs" | "silentMs" | "spikeCount" | "spikeWindowMs">;

/** A stored Event, as the rules see it. */
export interface JobEvent {
  /** Bigint as text. */
  id: string;
  jobId: string;
  jobName: string;
  step: number;
  kind: string;
  message: string;
  /** When it was written, in ms since the epoch. */
  at: number;
}

/** A running job, as the silence rule sees it. */
export interface RunningJob {
  jobId: string;
  jobName: string;
  lastStep: number | null;
  paused: boolean;
}

/** What the rules remember between evaluations (stored as JSON in AlertEvaluator.state). */
export interface RulesState {
  /**
   * Per `jobId/rule`, the alert that repeats fold into until `until` (ms): its id once stored,
   * null while it is being raised in this same evaluation.
   */
  open: Record<string, { alertId: string | null; until: number }>;
  /** Per job, when its recent interventions happened (ms), within the spike window. */
  spikes: Record<string, number[]>;
  /** Per running job, its last step and since when (ms) it has not moved; `alerted` once silent fired. */
  progress: Record<string, { lastStep: number | null; since: number; alerted: boolean }>;
  /** Interventions seen since the alerts migration, by event kind (GET /metrics). */
  interventions: Record<string, number>;
}

export function emptyState(): RulesState {
  return { open: {}, spikes: {}, progress: {}, interventions: {} };
}

/** An alert to store. `key` is `jobId/rule`; `count` counts the occurrences folded in already. */
export interface NewAlert {
  key: string;
  jobId: string;
  jobName: string;
  rule: AlertRule;
  severity: Severity;
  title: string;
  message: string;
  step: number | null;
  eventId: string | null;
  count: number;
}

export interface Evaluation {
  raised: NewAlert[];
  /** Stored alerts that repeats folded into: alert id → occurrences to add to its count. */
  repeats: Map<string, number>;
  state: RulesState;
}

/** The watchdog's actions (trainer/watchdog/README.md, "Events"): counted on /metrics. */
export const INTERVENTION_KINDS = new Set(["clip", "skip", "nonFinite", "lrLowered", "rollback", "rolledBack", "diverged"]);

/** Events that count towards repeatedSpikes: interventions on a step, and spike warnings. */
const SPIKE_KINDS = new Set(["clip", "skip", "normSpike", "lossSpike", "updateSpike", "layerSpike"]);

/** Event kinds that raise an alert of their own, and how it reads. */
const EVENT_RULES: Record<string, { rule: AlertRule; title: (job: string) => string }> = {
  diverged: { rule: "diverged", title: (job) => `${job} diverged and was stopped` },
  nonFinite: { rule: "nonFinite", title: (job) => `Non-finite gradients or loss in ${job}` },
  rollback: { rule: "rollback", title: (job) => `${job} rolled back to a checkpoint` },
  lrLowered: { rule: "lrLowered", title: (job) => `Learning rate lowered in ${job}` },
  trainerCrashed: { rule: "trainerCrashed", title: (job) => `The trainer of ${job} crashed` },
};

/** A copy of `state` that evaluations can change without touching the caller's. */
function cloneState(state: RulesState): RulesState {
  return structuredClone({ ...emptyState(), ...state });
}

/** Raises an alert, or folds the occurrence into the job's open one for this rule. */
function fire(out: Evaluation, settings: RuleSettings, at: number, alert: Omit<NewAlert, "key" | "severity" | "count">): void {
  const severity = settings.severities[alert.rule];
  if (severity === "off") return;
  const key = `${alert.jobId}/${alert.rule}`;
  const open = out.state.open[key];
  if (open && at < open.until) {
    if (open.alertId === null) {
      const pending = out.raised.findLast((raised) => raised.key === key);
      if (pending) pending.count++;
    } else {
      out.repeats.set(open.alertId, (out.repeats.get(open.alertId) ?? 0) + 1);
    }
    return;
  }
  out.state.open[key] = { alertId: null, until: at + settings.cooldownMs };
  out.raised.push({ ...alert, key, severity, count: 1 });
}

/** Events (in id order) → alerts. */
export function evaluateEvents(events: JobEvent[], state: RulesState, settings: RuleSettings): Evaluation {
  const out: Evaluation = { raised: [], repeats: new Map(), state: cloneState(state) };
  for (const event of events) {
    if (INTERVENTION_KINDS.has(event.kind)) out.state.interventions[event.kind] = (out.state.interventions[event.kind] ?? 0) + 1;
    const base = { jobId: event.jobId, jobName: event.jobName, step: event.step, eventId: event.id };
    const own = EVENT_RULES[event.kind];
    if (own) fire(out, settings, event.at, { ...base, rule: own.rule, title: own.title(event.jobName), message: event.message });
    if (SPIKE_KINDS.has(event.kind)) {
      const recent = (out.state.spikes[event.jobId] ?? []).filter((at) => at > event.at - settings.spikeWindowMs);
      recent.push(event.at);
      if (recent.length >= settings.spikeCount) {
        fire(out, settings, event.at, {
          ...base,
          rule: "repeatedSpikes",
          title: `Repeated gradient spikes in ${event.jobName}`,
          message: `${recent.length} interventions or spikes within ${settings.spikeWindowMs / 1000} s, the last at step ${event.step}: ${event.message}`,
        });
        // A new burst must reach the threshold again before it counts again.
        recent.length = 0;
      }
      out.state.spikes[event.jobId] = recent;
    }
  }
  return out;
}

/**
 * Running jobs at time `now` (ms) → silent alerts for those whose last step has not moved for
 * `silentMs`. A paused job is not silent; a job that moves again may alert again later.
 */
export function checkSilence(jobs: RunningJob[], state: RulesState, now: number, settings: RuleSettings): Evaluation {
  const out: Evaluation = { raised: [], repeats: new Map(), state: cloneState(state) };
  const progress: RulesState["progress"] = {};
  for (const job of jobs) {
    const seen = out.state.progress[job.jobId];
    if (!seen || seen.lastStep !== job.lastStep || job.paused) {
      progress[job.jobId] = { lastStep: job.lastStep, since: now, alerted: false };
      continue;
    }
    progress[job.jobId] = seen;
    if (!seen.alerted && now - seen.since >= settings.silentMs) {
      seen.alerted = true;
      const last = job.lastStep === null ? "before its first step" : `after step ${job.lastStep}`;
      fire(out, settings, now, {
        jobId: job.jobId,
        jobName: job.jobName,
        rule: "silent",
        step: job.lastStep,
        eventId: null,
        title: `${job.jobName} stopped reporting`,
        message: `${job.jobName} is running but has written no step for ${Math.round((now - seen.since) / 1000)} s (${last})`,
      });
    }
  }
  // Only running jobs are tracked: a finished job's entry would never be needed again.
  out.state.progress = progress;
  return out;
}

/** Drops what can no longer matter at `now`: closed cool-downs and spikes older than the window. */
export function pruneState(state: RulesState, now: number, settings: RuleSettings): RulesState {
  const open = Object.fromEntries(Object.entries(state.open).filter(([, entry]) => entry.until > now));
  const spikes = Object.fromEntries(
    Object.entries(state.spikes)
      .map(([jobId, times]) => [jobId, times.filter((at) => at > now - settings.spikeWindowMs)] as const)
      .filter(([, times]) => times.length > 0),
  );
  return { ...state, open, spikes };
}
