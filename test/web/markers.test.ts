import { describe, expect, it } from "vitest";
import type { JobEvent } from "../../web/src/lib/api-types.ts";
import { eventEvidence, eventMarkers, nearestMarker, visibleMarkers } from "../../web/src/lib/markers.ts";

let nextId = 1;
function event(step: number, kind: string, severity: JobEvent["severity"] = "info", detail: Record<string, unknown> = {}): JobEvent {
  return { id: String(nextId++), jobId: "j", step, kind, severity, message: `${kind} at ${step}`, detail, createdAt: "2026-01-01T00:00:00Z" };
}

describe("intervention markers", () => {
  const events = [event(0, "clip"), event(2, "clip"), event(2, "lrLowered", "warning"), event(40, "rollback", "critical"), event(41, "somethingNew", "warning")];
  const markers = eventMarkers(events);

  it("makes one marker per step, styled by its most important event", () => {
    expect(markers.map((m) => [m.step, m.style.label, m.events.length])).toEqual([
      [0, "clipped", 1],
      [2, "LR lowered", 2],
      [40, "rolled back", 1],
      [41, "warning", 1],
    ]);
    expect(markers[0]?.style.major).toBe(false);
    expect(markers[1]?.style.major).toBe(true);
  });

  it("finds the marker under the cursor within the hover radius only", () => {
    expect(nearestMarker(markers, 2.4, 1)?.step).toBe(2);
    expect(nearestMarker(markers, 20, 3)).toBeUndefined();
    expect(nearestMarker(markers, 40.5, 1)?.step).toBe(40);
    expect(nearestMarker([], 1, 10)).toBeUndefined();
    expect(visibleMarkers(markers, 1, 40, true).map((m) => m.step)).toEqual([2, 40]);
  });

  it("shows the evidence the watchdog decided on: its numbers and each detector's finding", () => {
    const clip = event(0, "clip", "info", {
      gradNorm: 92196.06,
      clipTo: 3.8527,
      findings: [{ detector: "trustRegion", updateRatio: 2393.04, maxUpdateRatio: 0.1, clipTo: 3.85 }],
    });
    expect(eventEvidence(clip)).toEqual([
      { label: "gradient norm", value: "9.22e+4" },
      { label: "clipped to", value: "3.853" },
      { label: "detector trustRegion", value: "update ratio 2393, update ratio ceiling 0.1, clipped to 3.85" },
    ]);
    const command = event(51, "commandApplied", "info", { command: { type: "scaleLearningRate", factor: 0.5 }, lrBefore: 0.0625, lrAfter: 0.03125 });
    expect(eventEvidence(command)).toEqual([
      { label: "LR before", value: "0.0625" },
      { label: "LR after", value: "0.03125" },
      { label: "command", value: '{"type":"scaleLearningRate","factor":0.5}' },
    ]);
  });
});
