// Watchdog events as chart markers: one marker per step that had any, styled by the most
// important thing that happened there, with the evidence (the numbers the watchdog decided on)
// ready for the hover card. Pure: tested in node.
import type { JobEvent } from "./api-types.ts";
import { formatValue } from "./format.ts";

export interface MarkerStyle {
  color: string;
  label: string;
  /** Clips happen every step of an explosion: they are drawn as small ticks, the rest as lines. */
  major: boolean;
  /** Higher wins when several events share a step. */
  rank: number;
}

const STYLES: Record<string, MarkerStyle> = {
  clip: { color: "#e8a33d", label: "clipped", major: false, rank: 1 },
  commandApplied: { color: "#4c8bf5", label: "command applied", major: true, rank: 2 },
  lrRestoreStarted: { color: "#3fb68b", label: "LR restore started", major: false, rank: 2 },
  lrRestored: { color: "#3fb68b", label: "LR restored", major: true, rank: 3 },
  vanishingGradients: { color: "#8a8fa3", label: "vanishing gradients", major: true, rank: 3 },
  lrLowered: { color: "#b36ae2", label: "LR lowered", major: true, rank: 4 },
  skip: { color: "#e5533d", label: "step skipped", major: true, rank: 5 },
  nonFinite: { color: "#e5533d", label: "non-finite step", major: true, rank: 5 },
  rollback: { color: "#d8344a", label: "rolled back", major: true, rank: 6 },
  diverged: { color: "#a1122b", label: "diverged", major: true, rank: 7 },
};

const SEVERITY_STYLE: Record<JobEvent["severity"], MarkerStyle> = {
  info: { color: "#8a8fa3", label: "event", major: false, rank: 0 },
  warning: { color: "#e8a33d", label: "warning", major: true, rank: 3 },
  critical: { color: "#d8344a", label: "critical", major: true, rank: 6 },
};

export function markerStyle(event: Pick<JobEvent, "kind" | "severity">): MarkerStyle {
  return STYLES[event.kind] ?? SEVERITY_STYLE[event.severity];
}

export interface Marker {
  step: number;
  style: MarkerStyle;
  events: JobEvent[];
}

/** One marker per step, sorted by step, styled by its highest-ranked event. */
export function eventMarkers(events: readonly JobEvent[]): Marker[] {
  const byStep = new Map<number, JobEvent[]>();
  for (const event of events) {
    const list = byStep.get(event.step);
    if (list) list.push(event);
    else byStep.set(event.step, [event]);
  }
  return [...byStep.entries()]
    .sort(([a], [b]) => a - b)
    .map(([step, list]) => ({
      step,
      events: list,
      style: list.map(markerStyle).reduce((best, style) => (style.rank > best.rank ? style : best)),
    }));
}

/**
 * The marker nearest to `step` within `tolerance` steps (the hover radius in steps at the
 * current zoom), preferring major markers at equal distance; undefined when none is that close.
 */
export function nearestMarker(markers: readonly Marker[], step: number, tolerance: number): Marker | undefined {
  let low = 0;
  let high = markers.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if ((markers[mid] as Marker).step < step) low = mid + 1;
    else high = mid;
  }
  let best: Marker | undefined;
  for (let i = Math.max(0, low - 2); i < Math.min(markers.length, low + 2); i++) {
    const marker = markers[i] as Marker;
    const distance = Math.abs(marker.step - step);
    if (distance > tolerance) continue;
    const bestDistance = best ? Math.abs(best.step - step) : Number.POSITIVE_INFINITY;
    if (distance < bestDistance || (distance === bestDistance && best && marker.style.rank > best.style.rank)) best = marker;
  }
  return best;
}

/** Markers a chart should draw within [from, to], major ones only when `majorOnly`. */
export function visibleMarkers(markers: readonly Marker[], from: number, to: number, majorOnly = false): Marker[] {
  return markers.filter((m) => m.step >= from && m.step <= to && (!majorOnly || m.style.major));
}

const EVIDENCE_NAMES: Record<string, string> = {
  gradNorm: "gradient norm",
  clipTo: "clipped to",
  loss: "loss",
  lrBefore: "LR before",
  lrAfter: "LR after",
  zScore: "z-score",
  threshold: "threshold",
  updateRatio: "update ratio",
  maxUpdateRatio: "update ratio ceiling",
  restoredStep: "restored step",
  checkpointStep: "checkpoint step",
  spikesInWindow: "spikes in window",
  windowSteps: "window (steps)",
  cooldownUntil: "cool-down until step",
};

/**
 * The evidence of an event as label/value pairs: its numbers first in a known order, then
 * whichever detector findings it carries (detector name and observed value).
 */
export function eventEvidence(event: JobEvent): { label: string; value: string }[] {
  const rows: { label: string; value: string }[] = [];
  const detail = event.detail ?? {};
  for (const [key, label] of Object.entries(EVIDENCE_NAMES)) {
    const value = detail[key];
    if (typeof value === "number") rows.push({ label, value: formatValue(value) });
  }
  const findings = Array.isArray(detail.findings) ? (detail.findings as Record<string, unknown>[]) : [];
  for (const finding of findings) {
    if (typeof finding?.detector !== "string") continue;
    const numbers = Object.entries(finding)
      .filter(([key, value]) => key !== "detector" && typeof value === "number")
      .slice(0, 3)
      .map(([key, value]) => `${EVIDENCE_NAMES[key] ?? key} ${formatValue(value as number)}`);
    rows.push({ label: `detector ${finding.detector}`, value: numbers.join(", ") });
  }
  const command = detail.command;
  if (command && typeof command === "object") rows.push({ label: "command", value: JSON.stringify(command) });
  return rows;
}
