// The alert rules as pure functions: event series in, alerts out, no database, no clock.
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../common/config.ts";
import { checkSilence, emptyState, evaluateEvents, type JobEvent, pruneState, type RuleSettings, type RulesState } from "../../server/alerts/rules.ts";

const settings: RuleSettings = loadConfig({}).alerts;
const JOB = "00000000-0000-4000-8000-000000000001";
const OTHER = "00000000-0000-4000-8000-000000000002";

let nextId = 1;
function event(kind: string, at: number, extra: Partial<JobEvent> = {}): JobEvent {
  return { id: String(nextId++), jobId: JOB, jobName: "rnn", step: at / 10, kind, message: `${kind} happened`, at, ...extra };
}

/** Evaluates batch after batch as the evaluator does, giving each raised alert an id. */
function run(batches: JobEvent[][], options: Partial<RuleSettings> = {}) {
  let state: RulesState = emptyState();
  const alerts: { id: string; rule: string; count: number; severity: string }[] = [];
  for (const batch of batches) {
    const out = evaluateEvents(batch, state, { ...settings, ...options });
    for (const raised of out.raised) {
      const id = String(alerts.length + 1);
      alerts.push({ id, rule: raised.rule, count: raised.count, severity: raised.severity });
      const open = out.state.open[raised.key];
      if (open) open.alertId = id;
    }
    for (const [id, n] of out.repeats) {
      const alert = alerts.find((a) => a.id === id);
      if (alert) alert.count += n;
    }
    state = out.state;
  }
  return { alerts, state };
}

describe("event rules", () => {
  it("raises one alert per alerting kind, with the default severities", () => {
    const { alerts } = run([[event("diverged", 0), event("nonFinite", 1), event("rollback", 2), event("lrLowered", 3), event("trainerCrashed", 4)]]);
    expect(alerts.map((a) => [a.rule, a.severity])).toEqual([
      ["diverged", "critical"],
      ["nonFinite", "warning"],
      ["rollback", "warning"],
      ["lrLowered", "info"],
      ["trainerCrashed", "critical"],
    ]);
  });

  it("ignores events that are not trouble (faults injected, commands, restored rates)", () => {
    expect(run([[event("faultInjected", 0), event("commandApplied", 1), event("lrRestored", 2), event("clip", 3)]]).alerts).toEqual([]);
  });

  it("folds a burst into one alert whose count grows, within one batch and across batches", () => {
    const burst = Array.from({ length: 500 }, (_, i) => event("nonFinite", i * 100));
    const { alerts } = run([burst.slice(0, 120), burst.slice(120, 121), burst.slice(121)]);
    expect(alerts).toEqual([{ id: "1", rule: "nonFinite", severity: "warning", count: 500 }]);
  });

  it("raises again once the cool-down has passed, and keeps jobs and rules apart", () => {
    const cooldownMs = 60_000;
    const { alerts } = run(
      [[event("nonFinite", 0), event("nonFinite", 59_999), event("nonFinite", 0, { jobId: OTHER }), event("rollback", 1)], [event("nonFinite", 60_000)]],
      { cooldownMs },
    );
    expect(alerts.map((a) => [a.rule, a.count])).toEqual([
      ["nonFinite", 2],
      ["nonFinite", 1],
      ["rollback", 1],
      ["nonFinite", 1],
    ]);
  });

  it("raises repeatedSpikes when N interventions fall within the window, and not for N spread wider", () => {
    const spread = Array.from({ length: 10 }, (_, i) => event("clip", i * 7_000));
    expect(run([spread], { spikeCount: 10, spikeWindowMs: 60_000 }).alerts).toEqual([]);
    const dense = Array.from({ length: 30 }, (_, i) => event(i % 2 ? "clip" : "normSpike", 100_000 + i * 1_000));
    const { alerts } = run([dense.slice(0, 5), dense.slice(5)], { spikeCount: 10, spikeWindowMs: 60_000 });
    // 30 spikes = three bursts of ten, folded into one alert by the cool-down.
    expect(alerts).toEqual([{ id: "1", rule: "repeatedSpikes", severity: "warning", count: 3 }]);
  });

  it("applies per-rule severities, and off silences a rule", () => {
    const severities = { ...settings.severities, lrLowered: "critical" as const, diverged: "off" as const };
    const { alerts } = run([[event("lrLowered", 0), event("diverged", 1)]], { severities });
    expect(alerts.map((a) => [a.rule, a.severity])).toEqual([["lrLowered", "critical"]]);
  });

  it("counts interventions by kind for /metrics", () => {
    const { state } = run([[event("clip", 0), event("clip", 1)], [event("rollback", 2), event("faultInjected", 3)]]);
    expect(state.interventions).toEqual({ clip: 2, rollback: 1 });
  });

  it("does not change the state it is given", () => {
    const state = emptyState();
    evaluateEvents([event("diverged", 0)], state, settings);
    expect(state).toEqual(emptyState());
  });
});

describe("the silence rule", () => {
  const job = (lastStep: number | null, paused = false) => ({ jobId: JOB, jobName: "rnn", lastStep, paused });
  const silentMs = 120_000;

  it("fires once for a running job whose last step has not moved for silentMs, and again after it moved and stalled", () => {
    let state = emptyState();
    const fired: number[] = [];
    const at = (now: number, lastStep: number | null) => {
      const out = checkSilence([job(lastStep)], state, now, { ...settings, silentMs, cooldownMs: 0 });
      fired.push(...out.raised.map(() => now));
      state = out.state;
    };
    at(0, 5);
    at(119_999, 5);
    at(120_000, 5);
    at(300_000, 5);
    at(301_000, 6);
    at(421_000, 6);
    expect(fired).toEqual([120_000, 421_000]);
  });

  it("never fires for a paused job, and forgets jobs that stopped running", () => {
    let state = emptyState();
    for (const now of [0, 200_000, 400_000]) {
      const out = checkSilence([job(null, true)], state, now, { ...settings, silentMs });
      expect(out.raised).toEqual([]);
      state = out.state;
    }
    expect(checkSilence([], state, 500_000, settings).state.progress).toEqual({});
  });

  it("says how long the job has been silent and after which step", () => {
    let state = checkSilence([job(41)], emptyState(), 0, { ...settings, silentMs }).state;
    const out = checkSilence([job(41)], state, 130_000, { ...settings, silentMs });
    state = out.state;
    expect(out.raised).toMatchObject([{ rule: "silent", severity: "critical", step: 41, eventId: null, message: expect.stringContaining("no step for 130 s (after step 41)") }]);
  });
});

it("pruning keeps only open cool-downs and spikes inside the window", () => {
  const state: RulesState = {
    ...emptyState(),
    open: { a: { alertId: "1", until: 100 }, b: { alertId: "2", until: 1_000 } },
    spikes: { [JOB]: [10, 900], [OTHER]: [10] },
  };
  expect(pruneState(state, 500, { ...settings, spikeWindowMs: 450 })).toMatchObject({ open: { b: { alertId: "2", until: 1_000 } }, spikes: { [JOB]: [900] } });
});

describe("alert configuration (GRADGUARD_ALERT_* and GRADGUARD_WEBHOOK_*)", () => {
  it("reads severities per rule over the defaults, and the timings in ms", () => {
    const alerts = loadConfig({
      GRADGUARD_ALERT_RULES: "silent=warning,lrLowered=off",
      GRADGUARD_ALERT_COOLDOWN_S: "30",
      GRADGUARD_ALERT_SILENT_S: "45",
      GRADGUARD_WEBHOOK_ALLOW_PRIVATE: "true",
      GRADGUARD_WEBHOOK_MAX_AGE_S: "60",
    }).alerts;
    expect(alerts).toMatchObject({ cooldownMs: 30_000, silentMs: 45_000, webhookAllowPrivate: true, webhookMaxAgeMs: 60_000 });
    expect(alerts.severities).toEqual({ ...settings.severities, silent: "warning", lrLowered: "off" });
    expect(loadConfig({}).alerts.webhookAllowPrivate).toBe(false);
  });

  it.each([
    ["GRADGUARD_ALERT_RULES", "silent=loud"],
    ["GRADGUARD_ALERT_RULES", "boom=info"],
    ["GRADGUARD_ALERT_RULES", "silent=info,"],
    ["GRADGUARD_WEBHOOK_ALLOW_PRIVATE", "yes"],
    ["GRADGUARD_ALERT_SILENT_S", "1"],
    ["GRADGUARD_WEBHOOK_RETRY_MS", "0.5"],
  ])("refuses %s=%s, naming it", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`${name}: `));
  });
});
