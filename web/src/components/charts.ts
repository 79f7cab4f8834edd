// uPlot options shared by the job and compare charts: steps on x, human number formats, log
// scales where values span orders of magnitude, and one cursor synchronised across a page.
import type uPlot from "uplot";
import { formatCount, formatValue } from "../lib/format.ts";

export const PALETTE = ["#4c8bf5", "#e5533d", "#3fb68b", "#b36ae2", "#e8a33d", "#2bb0c9", "#d45d9c", "#8a8fa3"];

const AXIS_COLOR = "#8a8fa3";
const GRID = { stroke: "rgba(138,143,163,0.18)", width: 1 };

export function stepAxes(yLabel: string, log: boolean): uPlot.Axis[] {
  return [
    { stroke: AXIS_COLOR, grid: GRID, ticks: GRID, values: (_u, splits) => splits.map((v) => formatCount(v)) },
    {
      stroke: AXIS_COLOR,
      grid: GRID,
      ticks: GRID,
      size: 64,
      label: yLabel,
      labelSize: 18,
      // A log axis splits at 1…9 × 10^k: only the powers of ten keep a label, tick and grid line.
      filter: (_u, splits) => (log ? splits.map((v) => (isPowerOfTen(v) ? v : null)) : splits),
      values: (_u, splits) => splits.map((v) => (v === null ? "" : formatValue(v))),
    },
  ];
}

function isPowerOfTen(value: number): boolean {
  const exponent = Math.log10(value);
  return Math.abs(exponent - Math.round(exponent)) < 1e-9;
}

export function valueSeries(label: string, color: string, extra: Partial<uPlot.Series> = {}): uPlot.Series {
  return { label, stroke: color, width: 1.5, spanGaps: true, points: { show: false }, value: (_u, v) => formatValue(v), ...extra };
}

export function baseOptions(yLabel: string, log: boolean, syncKey?: string): Omit<uPlot.Options, "width" | "height" | "series"> {
  return {
    scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
    axes: stepAxes(yLabel, log),
    cursor: syncKey ? { sync: { key: syncKey } } : {},
    legend: { live: true },
  };
}

export const STEP_SERIES: uPlot.Series = { label: "step", value: (_u, v) => (v === null ? "—" : v.toLocaleString("en-US")) };
