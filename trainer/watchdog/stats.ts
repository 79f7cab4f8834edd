// Small numeric building blocks for the detectors. Every function returns new arrays and never
// modifies its inputs, so the watchdog state stays immutable; everything stored is a finite
// number, so the state survives JSON.

/** A fixed-capacity window as a ring: `values` fills up to the capacity, then `next` is overwritten. */
export interface Ring {
  values: number[];
  next: number;
}

export const emptyRing = (): Ring => ({ values: [], next: 0 });

export function pushRing(ring: Ring, value: number, capacity: number): Ring {
  if (ring.values.length < capacity) return { values: [...ring.values, value], next: 0 };
  const values = ring.values.slice(0, capacity);
  const at = ring.next % capacity;
  values[at] = value;
  return { values, next: (at + 1) % capacity };
}

/** Mean and population standard deviation, O(n). */
export function meanStd(values: readonly number[]): { mean: number; std: number } {
  const n = values.length;
  if (n === 0) return { mean: 0, std: 0 };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i] as number;
  const mean = sum / n;
  let squares = 0;
  for (let i = 0; i < n; i++) {
    const d = (values[i] as number) - mean;
    squares += d * d;
  }
  return { mean, std: Math.sqrt(squares / n) };
}

/**
 * A standard deviation never below a millionth of the mean's size: a window of identical values
 * would otherwise make any later difference an infinite z-score.
 */
export function stdFloor(std: number, mean: number): number {
  return Math.max(std, 1e-6 * Math.abs(mean), 1e-12);
}

/** p-th percentile (0–100) of a sorted array, interpolating linearly like numpy.percentile. */
export function percentileOfSorted(sorted: readonly number[], p: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const rank = (p / 100) * (n - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, n - 1);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (rank - lo);
}

/** Index at which `value` keeps `sorted` ascending (after equal values). */
function insertionIndex(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as number) <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A copy of `sorted` with `value` inserted and, if `removeAt` is given, that index removed first. */
export function replaceSorted(sorted: readonly number[], value: number, removeAt?: number): number[] {
  const out = sorted.slice();
  if (removeAt !== undefined) out.splice(removeAt, 1);
  out.splice(insertionIndex(out, value), 0, value);
  return out;
}

/** One step of mulberry32: the next uint32 seed and a uniform number in [0, 1). */
export function nextRandom(seed: number): { seed: number; value: number } {
  const next = (seed + 0x6d2b79f5) >>> 0;
  let t = next;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return { seed: next, value: ((t ^ (t >>> 14)) >>> 0) / 4294967296 };
}

/** Clamps to a finite number (NaN → 0), so an overflow can never reach the JSON state as null. */
export function finiteOr0(x: number): number {
  if (Number.isNaN(x)) return 0;
  if (x === Number.POSITIVE_INFINITY) return Number.MAX_VALUE;
  if (x === Number.NEGATIVE_INFINITY) return -Number.MAX_VALUE;
  return x;
}

/** A number for an event's detail: JSON has no NaN or Infinity, so those become strings. */
export function jsonNumber(x: number): number | string {
  return Number.isFinite(x) ? x : String(x);
}

/** A number for a message: four significant digits. */
export function fmt(x: number): string {
  return Number.isFinite(x) ? String(Number(x.toPrecision(4))) : String(x);
}
