-- Summaries of Step over blocks of 16, 64 and 256 consecutive steps, kept up to date by
-- triggers, so that GET /jobs/:id/steps?maxPoints= can downsample a long range from a few
-- thousand summaries instead of reading every row (server/steps-query.ts). Each summary keeps, per
-- series, the min and max of the finite values, so a single-step spike survives; NaN and
-- ±Infinity are left out of both, and the block's nonFinite says that one was there.

-- CreateTable
CREATE TABLE "StepRollup" (
    "jobId" UUID NOT NULL,
    "size" INTEGER NOT NULL,
    "block" INTEGER NOT NULL,
    "firstStep" INTEGER NOT NULL,
    "lastStep" INTEGER NOT NULL,
    "nonFinite" BOOLEAN NOT NULL,
    "severity" INTEGER NOT NULL,
    "lossMin" DOUBLE PRECISION,
    "lossMax" DOUBLE PRECISION,
    "gradNormMin" DOUBLE PRECISION,
    "gradNormMax" DOUBLE PRECISION,
    "lrMin" DOUBLE PRECISION,
    "lrMax" DOUBLE PRECISION,
    "stepMsMin" DOUBLE PRECISION,
    "stepMsMax" DOUBLE PRECISION,
    "weightNormMin" DOUBLE PRECISION,
    "weightNormMax" DOUBLE PRECISION,
    "updateRatioMin" DOUBLE PRECISION,
    "updateRatioMax" DOUBLE PRECISION,
    "gradNormAfterMin" DOUBLE PRECISION,
    "gradNormAfterMax" DOUBLE PRECISION,
    "clipCoefMin" DOUBLE PRECISION,
    "clipCoefMax" DOUBLE PRECISION,
    "valLossMin" DOUBLE PRECISION,
    "valLossMax" DOUBLE PRECISION,
    "layerNormsMax" DOUBLE PRECISION[],

    CONSTRAINT "StepRollup_pkey" PRIMARY KEY ("jobId","size","block")
);

-- AddForeignKey
ALTER TABLE "StepRollup" ADD CONSTRAINT "StepRollup_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "Job"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- A float as the API sends it: NaN and ±Infinity become NULL, which min() and max() skip.
CREATE FUNCTION step_finite(value DOUBLE PRECISION) RETURNS DOUBLE PRECISION
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN value > '-Infinity' AND value < 'Infinity' THEN value END $$;

-- How severe a watchdog action is: none 0 < clip 1 < lowerLr 2 < skip 3 < rollback 4 < stop 5
-- (an unknown action counts as none).
CREATE FUNCTION step_action_severity(action TEXT) RETURNS INTEGER
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT COALESCE(array_position(ARRAY['none', 'clip', 'lowerLr', 'skip', 'rollback', 'stop'], action), 1) - 1 $$;

-- Recomputes the blocks of 16 that hold the given (job, block) pairs from the rows that are
-- there now, then the blocks of 64 and 256 above them, each from the four blocks below it. A
-- block with no rows left disappears. Each block is summarised in a LATERAL subquery, so that
-- it is read by its own range of the primary key rather than joined on "jobId" alone.
CREATE FUNCTION step_rollup_refresh(job_ids UUID[], blocks INTEGER[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  parent INTEGER;
BEGIN
  DELETE FROM "StepRollup" r
  USING unnest(job_ids, blocks) AS t(job_id, block)
  WHERE r."jobId" = t.job_id AND r."size" = 16 AND r."block" = t.block;

  INSERT INTO "StepRollup" ("jobId", "size", "block", "firstStep", "lastStep", "nonFinite", "severity",
                            "lossMin", "lossMax", "gradNormMin", "gradNormMax", "lrMin", "lrMax", "stepMsMin", "stepMsMax", "weightNormMin", "weightNormMax", "updateRatioMin", "updateRatioMax", "gradNormAfterMin", "gradNormAfterMax", "clipCoefMin", "clipCoefMax", "valLossMin", "valLossMax", "layerNormsMax")
  SELECT t.job_id, 16, t.block, a.*
  FROM (SELECT DISTINCT job_id, block FROM unnest(job_ids, blocks) AS u(job_id, block)) t
  CROSS JOIN LATERAL (
    SELECT min(s.step) AS first_step, max(s.step), bool_or(s."nonFinite"), max(step_action_severity(s.action)),
           min(step_finite(s."loss")), max(step_finite(s."loss")),
           min(step_finite(s."gradNorm")), max(step_finite(s."gradNorm")),
           min(step_finite(s."lr")), max(step_finite(s."lr")),
           min(step_finite(s."stepMs")), max(step_finite(s."stepMs")),
           min(step_finite(s."weightNorm")), max(step_finite(s."weightNorm")),
           min(step_finite(s."updateRatio")), max(step_finite(s."updateRatio")),
           min(step_finite(s."gradNormAfter")), max(step_finite(s."gradNormAfter")),
           min(step_finite(s."clipCoef")), max(step_finite(s."clipCoef")),
           min(step_finite(s."valLoss")), max(step_finite(s."valLoss")),
           (SELECT array_agg(m ORDER BY i) FROM (
              SELECT u.i, max(step_finite(u.v)) AS m
              FROM "Step" s2 CROSS JOIN LATERAL unnest(s2."layerNorms") WITH ORDINALITY AS u(v, i)
              WHERE s2."jobId" = t.job_id AND s2.step BETWEEN t.block * 16 AND t.block * 16 + 15
              GROUP BY u.i) x)
    FROM "Step" s
    WHERE s."jobId" = t.job_id AND s.step BETWEEN t.block * 16 AND t.block * 16 + 15
  ) a
  WHERE a.first_step IS NOT NULL;

  FOREACH parent IN ARRAY ARRAY[64, 256] LOOP
    DELETE FROM "StepRollup" r
    USING unnest(job_ids, blocks) AS t(job_id, block)
    WHERE r."jobId" = t.job_id AND r."size" = parent AND r."block" = t.block / (parent / 16);

    INSERT INTO "StepRollup" ("jobId", "size", "block", "firstStep", "lastStep", "nonFinite", "severity",
                              "lossMin", "lossMax", "gradNormMin", "gradNormMax", "lrMin", "lrMax", "stepMsMin", "stepMsMax", "weightNormMin", "weightNormMax", "updateRatioMin", "updateRatioMax", "gradNormAfterMin", "gradNormAfterMax", "clipCoefMin", "clipCoefMax", "valLossMin", "valLossMax", "layerNormsMax")
    SELECT p.job_id, parent, p.block, a.*
    FROM (SELECT DISTINCT job_id, block / (parent / 16) AS block FROM unnest(job_ids, blocks) AS u(job_id, block)) p
    CROSS JOIN LATERAL (
      SELECT min(r."firstStep") AS first_step, max(r."lastStep"), bool_or(r."nonFinite"), max(r."severity"),
             min(r."lossMin"), max(r."lossMax"),
             min(r."gradNormMin"), max(r."gradNormMax"),
             min(r."lrMin"), max(r."lrMax"),
             min(r."stepMsMin"), max(r."stepMsMax"),
             min(r."weightNormMin"), max(r."weightNormMax"),
             min(r."updateRatioMin"), max(r."updateRatioMax"),
             min(r."gradNormAfterMin"), max(r."gradNormAfterMax"),
             min(r."clipCoefMin"), max(r."clipCoefMax"),
             min(r."valLossMin"), max(r."valLossMax"),
             (SELECT array_agg(m ORDER BY i) FROM (
                SELECT u.i, max(u.v) AS m
                FROM "StepRollup" r2 CROSS JOIN LATERAL unnest(r2."layerNormsMax") WITH ORDINALITY AS u(v, i)
                WHERE r2."jobId" = p.job_id AND r2."size" = parent / 4 AND r2."block" BETWEEN p.block * 4 AND p.block * 4 + 3
                GROUP BY u.i) x)
      FROM "StepRollup" r
      WHERE r."jobId" = p.job_id AND r."size" = parent / 4 AND r."block" BETWEEN p.block * 4 AND p.block * 4 + 3
    ) a
    WHERE a.first_step IS NOT NULL;
  END LOOP;
END $$;

-- One refresh per statement, for the blocks its rows fall in: the trainer inserts a batch at a
-- time (trainer/step-writer.ts), and a resumed job deletes the rows past its checkpoint.
-- An UPDATE is followed for changed values, not for changed step numbers.
CREATE FUNCTION step_rollup_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  job_ids UUID[];
  blocks INTEGER[];
BEGIN
  SELECT array_agg(t."jobId"), array_agg(t.block) INTO job_ids, blocks
  FROM (SELECT DISTINCT "jobId", step / 16 AS block FROM changed) t;
  IF job_ids IS NOT NULL THEN
    PERFORM step_rollup_refresh(job_ids, blocks);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER "Step_rollup_insert" AFTER INSERT ON "Step"
REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION step_rollup_trigger();

CREATE TRIGGER "Step_rollup_update" AFTER UPDATE ON "Step"
REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION step_rollup_trigger();

CREATE TRIGGER "Step_rollup_delete" AFTER DELETE ON "Step"
REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION step_rollup_trigger();

-- Summaries for the steps already stored.
SELECT step_rollup_refresh(array_agg("jobId"), array_agg(block))
FROM (SELECT DISTINCT "jobId", step / 16 AS block FROM "Step") t;
