// A job's steps as the charts hold them, and the transforms to uPlot's columnar data. The
// table starts from GET /steps (possibly downsampled: each point a bucket with min and max) and
// grows with live rows, which are always step by step. Pure functions: they run in node tests.
import type { LiveSteps, StepsResponse } from "./api-types.ts";

type Column = (number | null)[];

/** uPlot's AlignedData: x values first, then one column per series, all the same length. */
export type AlignedData = [number[], ...Column[]];

export interface StepTable {
  layerNames: string[];
  /** Steps in each point (1 when step by step); live rows append points of 1. */
  bucketSize: number;
  step: number[];
  loss: Column;
  lossMax: Column;
  gradNorm: Column;
  gradNormMin: Column;
  gradNormMax: Column;
  gradNormAfter: Column;
  lr: Column;
  valLoss: Column;
  clipCoef: Column;
  /** Per point, one norm per layer. */
  layerNorms: Column[];
  action: string[];
  nonFinite: boolean[];
}

export const STEP_FIELDS = "loss,gradNorm,gradNormAfter,lr,valLoss,clipCoef,layerNorms,action";

export function emptyTable(layerNames: string[] = []): StepTable {
  return {
    layerNames,
    bucketSize: 1,
    step: [],
    loss: [],
    lossMax: [],
    gradNorm: [],
    gradNormMin: [],
    gradNormMax: [],
    gradNormAfter: [],
    lr: [],
    valLoss: [],
    clipCoef: [],
    layerNorms: [],
    action: [],
    nonFinite: [],
  };
}

/** A GET /steps answer as a table; a step-by-step answer has no min/max, so each is the value itself. */
export function tableFromResponse(body: StepsResponse): StepTable {
  const n = body.step.length;
  const column = (values: Column | undefined): Column => values ?? new Array<number | null>(n).fill(null);
  const gradNorm = column(body.gradNorm);
  const loss = column(body.loss);
  return {
    layerNames: body.layerNames,
    bucketSize: body.downsampled?.bucketSize ?? 1,
    step: body.step,
    loss,
    lossMax: body.lossMax ?? loss,
    gradNorm,
    gradNormMin: body.gradNormMin ?? gradNorm,
    gradNormMax: body.gradNormMax ?? gradNorm,
    gradNormAfter: column(body.gradNormAfter),
    lr: column(body.lr),
    valLoss: column(body.valLoss),
    clipCoef: column(body.clipCoef),
    layerNorms: body.layerNorms ?? [],
    action: body.action ?? new Array<string>(n).fill("none"),
    nonFinite: body.nonFinite,
  };
}

/**
 * The table with live rows appended. Rows at or before the last step held are dropped, so a
 * batch that overlaps what a REST poll already brought is never counted twice.
 */
export function appendSteps(table: StepTable, rows: LiveSteps | StepsResponse): StepTable {
  const last = table.step.at(-1) ?? -1;
  let first = 0;
  while (first < rows.step.length && (rows.step[first] as number) <= last) first++;
  if (first === rows.step.length) return table;
  const added = tableFromResponse(sliceRows(rows, first));
  return {
    layerNames: rows.layerNames.length > 0 ? rows.layerNames : table.layerNames,
    bucketSize: table.step.length === 0 ? 1 : table.bucketSize,
    step: table.step.concat(added.step),
    loss: table.loss.concat(added.loss),
    lossMax: table.lossMax.concat(added.lossMax),
    gradNorm: table.gradNorm.concat(added.gradNorm),
    gradNormMin: table.gradNormMin.concat(added.gradNormMin),
    gradNormMax: table.gradNormMax.concat(added.gradNormMax),
    gradNormAfter: table.gradNormAfter.concat(added.gradNormAfter),
    lr: table.lr.concat(added.lr),
    valLoss: table.valLoss.concat(added.valLoss),
    clipCoef: table.clipCoef.concat(added.clipCoef),
    layerNorms: table.layerNorms.concat(added.layerNorms),
    action: table.action.concat(added.action),
    nonFinite: table.nonFinite.concat(added.nonFinite),
  };
}

/** Rows from index `first` on, with live layer norms turned point-major like the REST ones. */
function sliceRows(rows: LiveSteps | StepsResponse, first: number): StepsResponse {
  const cut = <T>(values: T[] | undefined) => values?.slice(first);
  return {
    jobId: rows.jobId,
    layerNames: rows.layerNames,
    step: rows.step.slice(first),
    loss: cut(rows.loss),
    gradNorm: cut(rows.gradNorm),
    gradNormAfter: cut(rows.gradNormAfter),
    lr: cut(rows.lr),
    valLoss: cut(rows.valLoss),
    clipCoef: cut(rows.clipCoef),
    layerNorms: cut(pointMajorLayerNorms(rows)),
    action: cut(rows.action),
    nonFinite: rows.nonFinite.slice(first),
    nextFrom: null,
  };
}

/**
 * Layer norms point by point. REST sends one array per point; the live contract documents one
 * array per layer. Both are accepted: a layer-major block has one array per layer name, each as
 * long as the steps (when both counts agree the shapes coincide only if square; REST's wins).
 */
export function pointMajorLayerNorms(rows: { step: number[]; layerNames: string[]; layerNorms?: Column[] }): Column[] | undefined {
  const norms = rows.layerNorms;
  if (!norms) return undefined;
  const layerMajor = norms.length === rows.layerNames.length && norms.length !== rows.step.length && norms.every((layer) => layer.length === rows.step.length);
  if (!layerMajor) return norms;
  return rows.step.map((_, point) => norms.map((layer) => layer[point] ?? null));
}

/** Log scales cannot show 0 or negatives: those become gaps rather than −∞. */
function positive(values: Column): Column {
  return values.map((v) => (v !== null && v > 0 && Number.isFinite(v) ? v : null));
}

/**
 * The global gradient norm chart: step, norm (last per bucket), bucket max and min (the band that
 * keeps one-step spikes visible), norm after mitigation, and the clip threshold — the norm a step
 * was clipped to, where it was clipped.
 */
export function gradNormData(table: StepTable): AlignedData {
  const threshold = table.gradNormAfter.map((after, i) => {
    const coef = table.clipCoef[i];
    return coef !== null && coef !== undefined && coef < 1 ? after : null;
  });
  return [table.step, positive(table.gradNorm), positive(table.gradNormMax), positive(table.gradNormMin), positive(table.gradNormAfter), positive(threshold)];
}

/** Loss: train (last per bucket), its bucket max, and validation where it was measured. */
export function lossData(table: StepTable): AlignedData {
  return [table.step, table.loss, table.lossMax, table.valLoss];
}

export function lrData(table: StepTable): AlignedData {
  return [table.step, table.lr];
}

/** The last finite value of a column, for "current" read-outs. */
export function lastValue(values: Column): number | null {
  for (let i = values.length - 1; i >= 0; i--) {
    const v = values[i];
    if (v !== null && v !== undefined && Number.isFinite(v)) return v;
  }
  return null;
}

/** The widest step range a table covers: [first step, last step], or null when empty. */
export function stepRange(table: StepTable): [number, number] | null {
  const first = table.step[0];
  const last = table.step.at(-1);
  return first === undefined || last === undefined ? null : [first, last];
}

export interface ComparedSeries {
  label: string;
  step: number[];
  values: Column;
}

/**
 * Several jobs on one x axis: the union of their steps, each job's values at its own steps and
 * null elsewhere (uPlot joins across the gaps with spanGaps).
 */
export function alignSeries(series: ComparedSeries[]): AlignedData {
  const steps = [...new Set(series.flatMap((s) => s.step))].sort((a, b) => a - b);
  const index = new Map(steps.map((step, i) => [step, i]));
  const columns = series.map((s) => {
    const column: Column = new Array<number | null>(steps.length).fill(null);
    s.step.forEach((step, i) => {
      column[index.get(step) as number] = s.values[i] ?? null;
    });
    return column;
  });
  return [steps, ...columns];
}

export interface HeatmapGrid {
  layers: string[];
  columns: number;
  /** log10 of each layer's norm, row-major (layer × point); NaN where missing. */
  cells: Float64Array;
  min: number;
  max: number;
}

/** Per-layer norms as a layers × points grid of log10 values, with the range for the color scale. */
export function heatmapGrid(table: StepTable): HeatmapGrid {
  const layers = table.layerNames;
  const columns = table.layerNorms.length;
  const cells = new Float64Array(layers.length * columns).fill(Number.NaN);
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  table.layerNorms.forEach((point, col) => {
    for (let layer = 0; layer < layers.length; layer++) {
      const norm = point[layer];
      if (norm === null || norm === undefined || !(norm > 0) || !Number.isFinite(norm)) continue;
      const value = Math.log10(norm);
      cells[layer * columns + col] = value;
      if (value < min) min = value;
      if (value > max) max = value;
    }
  });
  if (min > max) [min, max] = [0, 0];
  return { layers, columns, cells, min, max };
}

/** A color for t in [0, 1] from dark blue (quiet) through yellow to red (exploding). */
export function heatColor(t: number): [number, number, number] {
  const stops: [number, number, number][] = [
    [24, 30, 70],
    [40, 110, 160],
    [90, 180, 120],
    [240, 210, 60],
    [220, 50, 40],
  ];
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const a = stops[i] as [number, number, number];
  const b = stops[i + 1] as [number, number, number];
  return [Math.round(a[0] + (b[0] - a[0]) * f), Math.round(a[1] + (b[1] - a[1]) * f), Math.round(a[2] + (b[2] - a[2]) * f)];
}

/** A sparkline of the gradient norm: each bucket's max (so spikes show), gaps where not positive. */
export function sparklineData(body: StepsResponse): AlignedData {
  return [body.step, positive(body.gradNormMax ?? body.gradNorm ?? [])];
}

const ACTION_ORDER = ["none", "clip", "lowerLr", "skip", "rollback", "stop"];

/** How the jobs table names a watchdog action. */
export const ACTION_LABELS: Record<string, string> = { clip: "clipped", lowerLr: "LR lowered", skip: "skipped", rollback: "rolled back", stop: "stopped" };

/** The most severe watchdog action in a list (the jobs table's intervention badge), or null for none. */
export function worstAction(actions: readonly string[] | undefined): string | null {
  let worst = 0;
  for (const action of actions ?? []) worst = Math.max(worst, ACTION_ORDER.indexOf(action));
  return worst > 0 ? (ACTION_ORDER[worst] as string) : null;
}
