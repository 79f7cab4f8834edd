// Numbers and times for humans: norms span twenty orders of magnitude in an explosion, so they
// switch to scientific notation outside a readable range; counts get SI prefixes; times are
// relative ("3 min ago") because "when did this blow up" is what people ask.

const EMPTY = "—";

/** A norm, loss or learning rate: 4 significant digits in [0.001, 10 000), else scientific (9.22e+4). */
export function formatValue(value: number | null | undefined): string {
  if (value === null || value === undefined) return EMPTY;
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : "−∞";
  if (value === 0) return "0";
  const magnitude = Math.abs(value);
  if (magnitude >= 1e-3 && magnitude < 1e4) return stripZeros(value.toPrecision(4));
  const [mantissa, exponent] = value.toExponential(2).split("e");
  return `${stripZeros(mantissa ?? "")}e${exponent}`;
}

const SI = ["", "k", "M", "G", "T", "P", "E"];

/** A count (steps, rows) with an SI prefix: 950, 12.3k, 1M. */
export function formatCount(value: number | null | undefined): string {
  if (value === null || value === undefined) return EMPTY;
  if (!Number.isFinite(value)) return formatValue(value);
  let scaled = Math.abs(value);
  let prefix = 0;
  while (scaled >= 999.5 && prefix < SI.length - 1) {
    scaled /= 1000;
    prefix++;
  }
  const digits = prefix === 0 ? String(Math.round(scaled)) : stripZeros(scaled.toPrecision(3));
  return `${value < 0 ? "−" : ""}${digits}${SI[prefix]}`;
}

/** A step number in full, grouped by thousands (steps are looked up, not estimated). */
export function formatStep(step: number | null | undefined): string {
  if (step === null || step === undefined) return EMPTY;
  return step.toLocaleString("en-US");
}

/** How long ago (or how soon) `at` is, seen from `now`: "just now", "12 s ago", "3 h ago", "in 5 min". */
export function formatRelative(at: string | number | Date | null | undefined, now: number = Date.now()): string {
  if (at === null || at === undefined) return EMPTY;
  const time = at instanceof Date ? at.getTime() : typeof at === "number" ? at : Date.parse(at);
  if (Number.isNaN(time)) return EMPTY;
  const seconds = Math.round((now - time) / 1000);
  if (Math.abs(seconds) < 5) return "just now";
  const span = formatSpan(Math.abs(seconds));
  return seconds > 0 ? `${span} ago` : `in ${span}`;
}

/** A duration in milliseconds, to the precision that matters: "850 ms", "1.2 s", "3 min 4 s", "2 h 5 min". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return EMPTY;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${stripZeros((ms / 1000).toPrecision(ms < 10_000 ? 2 : 3))} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 24 * 60) return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  return `${Math.floor(minutes / 1440)} d ${Math.floor((minutes % 1440) / 60)} h`;
}

function formatSpan(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86_400) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} d`;
}

/** "1.500" → "1.5", "2.00" → "2", leaving integers and exponents alone. */
function stripZeros(text: string): string {
  return text.includes(".") ? text.replace(/\.?0+$/, "") : text;
}
