// Reads a job's steps for GET /jobs/:id/steps: a page of rows as stored, or, when `maxPoints`
// is given and the range holds more rows than that, buckets of consecutive steps summarised in
// SQL with each series' last value, finite min and finite max, so a one-step spike always
// shows (sampling, as TensorBoard's reservoir or MLflow's history do, can drop it).
//
// Long ranges are summarised from StepRollup (blocks of 16, 64 and 256 steps, kept by triggers
// on Step; see its migration) rather than from every row: a million-step job is 3,900 blocks of
// 256. Buckets are aligned to multiples of their size, so whole blocks fall in one bucket and
// only the partial blocks at the two ends of the range are read row by row. Reading a row costs
// a few microseconds (mostly its 20-odd layer norms), so the plan below bounds the rows read:
// about 7 × maxPoints rows or 2 × maxPoints blocks at most, plus two partial blocks.
import type { PrismaClient } from "../prisma/client.ts";
import { InvalidRequestProblem } from "./errors.ts";
import type { StepsResponse } from "./schemas/jobs.ts";

export const STEP_FIELDS = [
  "step",
  "loss",
  "gradNorm",
  "layerNorms",
  "lr",
  "nonFinite",
  "stepMs",
  "weightNorm",
  "updateRatio",
  "gradNormAfter",
  "clipCoef",
  "action",
  "valLoss",
] as const;
export type StepField = (typeof STEP_FIELDS)[number];

/** The numeric series: one value per step, with a min and a max per bucket. */
const SERIES = ["loss", "gradNorm", "lr", "stepMs", "weightNorm", "updateRatio", "gradNormAfter", "clipCoef", "valLoss"] as const;

/** Least to most severe; step_action_severity() in the migration numbers them the same way. */
export const ACTIONS = ["none", "clip", "lowerLr", "skip", "rollback", "stop"] as const;

/** The block sizes StepRollup keeps, smallest first. */
export const ROLLUP_SIZES = [16, 64, 256] as const;

/** Steps are int4. */
const LAST_POSSIBLE_STEP = 2_147_483_647;

export interface StepsQuery {
  from: number;
  to?: number;
  limit: number;
  maxPoints?: number;
  fields?: string;
}

interface JobRef {
  id: string;
  layerNames: string[];
}

type Row = Record<string, unknown>;

export async function readSteps(prisma: PrismaClient, job: JobRef, query: StepsQuery): Promise<StepsResponse> {
  const fields = parseFields(query.fields);
  if (query.to !== undefined && query.to < query.from) {
    throw new InvalidRequestProblem(`querystring/to: must be at least from (${query.from})`, [
      { in: "querystring", field: "/to", message: `must be at least from (${query.from})` },
    ]);
  }
  const to = query.to ?? LAST_POSSIBLE_STEP;
  if (query.maxPoints === undefined) return readPage(prisma, job, fields, { from: query.from, to, limit: query.limit });

  const range = await storedRange(prisma, job.id, query.from, to);
  if (!range || !(await holdsMoreThan(prisma, job.id, range, query.maxPoints))) {
    // Fits: every row of the range, in one answer.
    return readPage(prisma, job, fields, { from: query.from, to, limit: query.maxPoints });
  }
  const plan = planBuckets(range.last - range.first + 1, query.maxPoints);
  const layers = Math.max(job.layerNames.length, range.layers);
  return readBuckets(prisma, job, fields, { ...range, ...plan, layers });
}

/** The columns asked for; `step` and `nonFinite` always, since the others cannot be read without them. */
export function parseFields(text: string | undefined): Set<StepField> {
  if (text === undefined) return new Set(STEP_FIELDS);
  const names = text.split(",").map((name) => name.trim());
  const unknown = names.filter((name) => !(STEP_FIELDS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    const message = `${unknown.map((name) => JSON.stringify(name)).join(", ")} ${unknown.length === 1 ? "is not a field" : "are not fields"}; fields are ${STEP_FIELDS.join(", ")}`;
    throw new InvalidRequestProblem(`querystring/fields: ${message}`, [{ in: "querystring", field: "/fields", message }]);
  }
  return new Set<StepField>(["step", "nonFinite", ...(names as StepField[])]);
}

export interface BucketPlan {
  /** Steps per bucket; bucket k holds steps k·bucketSize … (k+1)·bucketSize − 1. */
  bucketSize: number;
  /** The StepRollup block size read for whole blocks, or 1 to read rows only. */
  blockSize: number;
}

/**
 * The smallest bucket size that gives at most maxPoints buckets over `span` steps (aligned
 * buckets can straddle both ends of the range, hence maxPoints − 1), rounded up to a multiple of
 * the largest block no larger than twice it. The rounding at most doubles the bucket, so there
 * are at least about maxPoints / 2 points, and it reads at most about 7 rows or 2 blocks a point.
 */
export function planBuckets(span: number, maxPoints: number, blockSizes: readonly number[] = ROLLUP_SIZES): BucketPlan {
  const least = Math.ceil(span / (maxPoints - 1));
  const blockSize = Math.max(1, ...blockSizes.filter((size) => size <= 2 * least));
  return { bucketSize: Math.ceil(least / blockSize) * blockSize, blockSize };
}

async function readPage(prisma: PrismaClient, job: JobRef, fields: Set<StepField>, range: { from: number; to: number; limit: number }): Promise<StepsResponse> {
  const columns = STEP_FIELDS.filter((field) => fields.has(field)).map((field) => `"${field}"`);
  const rows = await prisma.$queryRawUnsafe<Row[]>(
    `SELECT ${columns.join(", ")} FROM "Step" WHERE "jobId" = $1::uuid AND step BETWEEN $2::int AND $3::int ORDER BY step LIMIT $4::int`,
    job.id,
    range.from,
    range.to,
    range.limit + 1,
  );
  const page = rows.slice(0, range.limit);
  const body: StepsResponse = {
    jobId: job.id,
    layerNames: job.layerNames,
    step: page.map((row) => row.step as number),
    nonFinite: page.map((row) => row.nonFinite as boolean),
    nextFrom: rows.length > range.limit ? (rows[range.limit]?.step as number) : null,
  };
  for (const series of SERIES) {
    if (fields.has(series)) body[series] = page.map((row) => finiteOrNull(row[series] as number | null));
  }
  if (fields.has("layerNorms")) body.layerNorms = page.map((row) => (row.layerNorms as number[]).map(finiteOrNull));
  if (fields.has("action")) body.action = page.map((row) => row.action as string);
  return body;
}

interface StoredRange {
  first: number;
  last: number;
  /** Layer norms per row, from the last one. */
  layers: number;
}

/** The first and last step stored within from…to; null when there is none. */
async function storedRange(prisma: PrismaClient, jobId: string, from: number, to: number): Promise<StoredRange | null> {
  const [range] = await prisma.$queryRawUnsafe<{ first: number | null; last: number | null; layers: number | null }[]>(
    `SELECT r.first, r.last,
            (SELECT cardinality(s."layerNorms") FROM "Step" s WHERE s."jobId" = $1::uuid AND s.step = r.last) AS layers
     FROM (SELECT min(step) AS first, max(step) AS last FROM "Step" WHERE "jobId" = $1::uuid AND step BETWEEN $2::int AND $3::int) r`,
    jobId,
    from,
    to,
  );
  if (range?.first == null || range.last == null) return null;
  return { first: range.first, last: range.last, layers: range.layers ?? 0 };
}

/** Counts no further than needed: steps are usually consecutive, and then the span says it. */
async function holdsMoreThan(prisma: PrismaClient, jobId: string, range: StoredRange, maxPoints: number): Promise<boolean> {
  if (range.last - range.first + 1 <= maxPoints) return false;
  const [counted] = await prisma.$queryRawUnsafe<{ rows: bigint }[]>(
    `SELECT count(*) AS rows FROM (SELECT 1 FROM "Step" WHERE "jobId" = $1::uuid AND step BETWEEN $2::int AND $3::int LIMIT $4::int) s`,
    jobId,
    range.first,
    range.last,
    maxPoints + 1,
  );
  return Number(counted?.rows ?? 0) > maxPoints;
}

export interface BucketQuery extends BucketPlan {
  first: number;
  last: number;
  /** How many layer norms to summarise per row. */
  layers: number;
}

async function readBuckets(prisma: PrismaClient, job: JobRef, fields: Set<StepField>, query: BucketQuery): Promise<StepsResponse> {
  const { sql, params } = bucketSql(job.id, fields, query);
  const rows = await prisma.$queryRawUnsafe<Row[]>(sql, ...params);
  const body: StepsResponse = {
    jobId: job.id,
    layerNames: job.layerNames,
    downsampled: { bucketSize: query.bucketSize },
    step: rows.map((row) => row.step as number),
    stepMin: rows.map((row) => row.stepMin as number),
    nonFinite: rows.map((row) => row.nonFinite as boolean),
    nextFrom: null,
  };
  for (const series of SERIES) {
    if (!fields.has(series)) continue;
    body[series] = rows.map((row) => row[series] as number | null);
    body[`${series}Min`] = rows.map((row) => row[`${series}Min`] as number | null);
    body[`${series}Max`] = rows.map((row) => row[`${series}Max`] as number | null);
  }
  // Per layer, the bucket's max: a layer's spike is the point of looking at layers.
  if (fields.has("layerNorms")) body.layerNorms = rows.map((row) => (row.layerNorms as (number | null)[] | null) ?? []);
  if (fields.has("action")) body.action = rows.map((row) => ACTIONS[row.severity as number] ?? "none");
  return body;
}

/**
 * One statement: the rows at the two ends of the range that do not fill a whole block, plus the
 * whole blocks between them, grouped into buckets; then each bucket's last row for its last
 * values. Column names come from the fixed lists above, never from the request.
 */
export function bucketSql(jobId: string, fields: Set<StepField>, query: BucketQuery): { sql: string; params: unknown[] } {
  const { first, last, bucketSize, blockSize } = query;
  const series = SERIES.filter((name) => fields.has(name));
  const layers = fields.has("layerNorms") ? Array.from({ length: query.layers }, (_, i) => i + 1) : [];
  const action = fields.has("action");

  // Whole blocks lie within wholeFrom…wholeTo; the rows outside it are read one by one.
  const wholeFrom = Math.ceil(first / blockSize) * blockSize;
  const wholeTo = Math.floor((last + 1) / blockSize) * blockSize - 1;
  const useBlocks = blockSize > 1 && wholeFrom <= wholeTo;
  const rowRanges = useBlocks ? [first, wholeFrom - 1, wholeTo + 1, last] : [first, last, 1, 0];
  const params: unknown[] = [jobId, bucketSize, ...rowRanges];
  if (useBlocks) params.push(blockSize, wholeFrom / blockSize, (wholeTo + 1) / blockSize - 1);

  // The layer norms are unpacked once per row, behind OFFSET 0: step_finite() is inlined as a
  // CASE that names its argument three times, and each "layerNorms"[i] is a subscript.
  const rowColumns = ["step", `"nonFinite"`, "action", ...series.map((name) => `"${name}"`), ...layers.map((i) => `"layerNorms"[${i}] AS layer${i}`)];
  const fromRows = [
    "step / $2::int AS bucket",
    "step AS first_step",
    "step AS last_step",
    `"nonFinite" AS non_finite`,
    ...(action ? ["step_action_severity(action) AS severity"] : []),
    ...series.flatMap((name) => [`step_finite("${name}") AS "${name}Min"`, `step_finite("${name}") AS "${name}Max"`]),
    ...layers.map((i) => `step_finite(layer${i}) AS l${i}`),
  ];
  const fromBlocks = [
    `("block" * $7::int) / $2::int`,
    `"firstStep"`,
    `"lastStep"`,
    `"nonFinite"`,
    ...(action ? ["severity"] : []),
    ...series.flatMap((name) => [`"${name}Min"`, `"${name}Max"`]),
    ...layers.map((i) => `"layerNormsMax"[${i}]`),
  ];
  const perBucket = [
    "bucket",
    `min(first_step) AS "stepMin"`,
    "max(last_step) AS step",
    `bool_or(non_finite) AS "nonFinite"`,
    ...(action ? ["max(severity) AS severity"] : []),
    ...series.flatMap((name) => [`min("${name}Min") AS "${name}Min"`, `max("${name}Max") AS "${name}Max"`]),
    // As JSON rather than float8[]: node-postgres parses JSON several times faster than arrays.
    ...(layers.length > 0 ? [`json_build_array(${layers.map((i) => `max(l${i})`).join(", ")}) AS "layerNorms"`] : []),
  ];
  const lastValues = series.map((name) => `step_finite(s."${name}") AS "${name}"`);

  const sql = `
    WITH parts AS (
      SELECT ${fromRows.join(", ")}
      FROM (
        SELECT ${rowColumns.join(", ")} FROM "Step"
        WHERE "jobId" = $1::uuid AND (step BETWEEN $3::int AND $4::int OR step BETWEEN $5::int AND $6::int)
        OFFSET 0
      ) r
      ${useBlocks ? `UNION ALL SELECT ${fromBlocks.join(", ")} FROM "StepRollup" WHERE "jobId" = $1::uuid AND "size" = $7::int AND "block" BETWEEN $8::int AND $9::int` : ""}
    ), buckets AS (
      SELECT ${perBucket.join(", ")} FROM parts GROUP BY bucket
    )
    SELECT b.*${lastValues.map((column) => `, ${column}`).join("")}
    FROM buckets b
    -- LIMIT 1 keeps this a lookup by primary key per bucket: joined plainly, the planner, which
    -- cannot tell how many buckets there are, may hash the whole job instead.
    CROSS JOIN LATERAL (SELECT * FROM "Step" WHERE "jobId" = $1::uuid AND step = b.step LIMIT 1) s
    ORDER BY b.step`;
  return { sql, params };
}

/** JSON has no NaN or Infinity: such values travel as null, and the row's nonFinite says why. */
function finiteOrNull(value: number | null): number | null {
  return value !== null && Number.isFinite(value) ? value : null;
}
