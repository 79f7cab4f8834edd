import { describe, expect, it } from "vitest";
import { formatCount, formatDuration, formatRelative, formatStep, formatValue } from "../../web/src/lib/format.ts";

describe("number formatting for humans", () => {
  it("shows norms with 4 significant digits in a readable range and in scientific notation outside it", () => {
    expect(formatValue(3.852668927)).toBe("3.853");
    expect(formatValue(0.5)).toBe("0.5");
    expect(formatValue(92196.0597)).toBe("9.22e+4");
    expect(formatValue(0.0000417)).toBe("4.17e-5");
    expect(formatValue(1e6)).toBe("1e+6");
    expect(formatValue(-1234.5)).toBe("-1235");
    expect(formatValue(0)).toBe("0");
    expect([formatValue(null), formatValue(Number.NaN), formatValue(Number.POSITIVE_INFINITY), formatValue(Number.NEGATIVE_INFINITY)]).toEqual(["—", "NaN", "∞", "−∞"]);
  });

  it("gives counts SI prefixes and steps in full", () => {
    expect([formatCount(950), formatCount(12_345), formatCount(1_000_000), formatCount(999_999), formatCount(2.5e9)]).toEqual(["950", "12.3k", "1M", "1M", "2.5G"]);
    expect(formatStep(1_000_000)).toBe("1,000,000");
    expect(formatStep(null)).toBe("—");
  });

  it("says times relative to now and durations at the precision that matters", () => {
    const now = Date.parse("2026-01-01T12:00:00Z");
    expect(formatRelative("2026-01-01T11:59:58Z", now)).toBe("just now");
    expect(formatRelative("2026-01-01T11:59:48Z", now)).toBe("12 s ago");
    expect(formatRelative("2026-01-01T11:57:00Z", now)).toBe("3 min ago");
    expect(formatRelative("2026-01-01T09:00:00Z", now)).toBe("3 h ago");
    expect(formatRelative("2025-12-30T12:00:00Z", now)).toBe("2 d ago");
    expect(formatRelative("2026-01-01T12:05:00Z", now)).toBe("in 5 min");
    expect(formatRelative("not a date", now)).toBe("—");
    expect([formatDuration(850), formatDuration(1234), formatDuration(184_000), formatDuration(7_500_000)]).toEqual(["850 ms", "1.2 s", "3 min 4 s", "2 h 5 min"]);
  });
});
