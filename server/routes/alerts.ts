// /api/v1/alerts: list the alerts the rules raised (server/alerts), newest first, and
// acknowledge one. An alert's JSON is socket.io's LiveAlert plus `count` and `acknowledgedBy`.
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import Type from "typebox";
import { ALERT_RULES } from "../../common/config.ts";
import type { Prisma } from "../../prisma/client.ts";
import { type AlertView, toAlertView } from "../alerts/payloads.ts";
import { ConflictProblem, NotFoundProblem, ProblemSchema } from "../errors.ts";

export const SEVERITIES = ["info", "warning", "critical"] as const;
export const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);
/** A bigint id as text (JSON numbers lose precision past 2^53). */
const BigIntId = Type.String({ pattern: "^[0-9]{1,18}$", description: "An alert id" });

export const AlertSchema = Type.Object({
  id: Type.String({ description: "Increasing; a bigint as a string" }),
  jobId: Type.String({ format: "uuid" }),
  jobName: Type.String(),
  rule: Type.String({ description: `The rule that raised it: ${ALERT_RULES.join(", ")}` }),
  severity: Type.Enum(SEVERITIES),
  title: Type.String(),
  message: Type.String(),
  step: Nullable(Type.Integer({ description: "The step it is about" })),
  eventId: Nullable(Type.String({ description: "The event that raised it (GET /jobs/:id/events)" })),
  count: Type.Integer({ description: "Occurrences folded into it: repeats of the rule for the job within the cool-down" }),
  createdAt: Type.String({ format: "date-time" }),
  acknowledgedAt: Nullable(Type.String({ format: "date-time" })),
  acknowledgedBy: Nullable(Type.String({ description: "The id of the token that acknowledged it" })),
});

const ListQuerySchema = Type.Object(
  {
    jobId: Type.Optional(Type.String({ format: "uuid" })),
    severity: Type.Optional(Type.Enum(SEVERITIES)),
    rule: Type.Optional(Type.Enum(ALERT_RULES)),
    acknowledged: Type.Optional(Type.Boolean({ description: "true: only acknowledged alerts; false: only those still open" })),
    cursor: Type.Optional(Type.String({ pattern: "^[0-9]{1,18}$", description: "`nextCursor` of the previous page" })),
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
  },
  { additionalProperties: false },
);

const alertRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    "/alerts",
    {
      schema: {
        querystring: ListQuerySchema,
        response: { 200: Type.Object({ items: Type.Array(AlertSchema), nextCursor: Nullable(Type.String({ description: "Pass as `cursor` for older alerts; null on the last page" })) }), 400: ProblemSchema },
      },
    },
    async (request) => {
      const { jobId, severity, rule, acknowledged, cursor, limit } = request.query;
      const where: Prisma.AlertWhereInput = {
        ...(jobId ? { jobId } : {}),
        ...(severity ? { severity } : {}),
        ...(rule ? { rule } : {}),
        ...(acknowledged === undefined ? {} : { acknowledgedAt: acknowledged ? { not: null } : null }),
        ...(cursor ? { id: { lt: BigInt(cursor) } } : {}),
      };
      const rows = await app.prisma.alert.findMany({ where, orderBy: { id: "desc" }, take: limit + 1, include: { job: { select: { name: true } } } });
      const items: AlertView[] = rows.slice(0, limit).map(toAlertView);
      return { items, nextCursor: rows.length > limit ? (items.at(-1)?.id ?? null) : null };
    },
  );

  app.post(
    "/alerts/:id/ack",
    {
      config: { role: "write" },
      schema: {
        params: Type.Object({ id: BigIntId }, { additionalProperties: false }),
        response: { 200: AlertSchema, 400: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema },
      },
    },
    async (request) => {
      const id = BigInt(request.params.id);
      // One statement decides who acknowledged it first: a second ack is refused, not overwritten.
      const { count } = await app.prisma.alert.updateMany({
        where: { id, acknowledgedAt: null },
        data: { acknowledgedAt: new Date(), acknowledgedBy: request.caller?.tokenId ?? null },
      });
      const row = await app.prisma.alert.findUnique({ where: { id }, include: { job: { select: { name: true } } } });
      if (!row) throw new NotFoundProblem(`alert ${request.params.id}`);
      if (count === 0) throw new ConflictProblem(`alert ${request.params.id} was already acknowledged at ${row.acknowledgedAt?.toISOString()}`);
      return toAlertView(row);
    },
  );
};

export default alertRoutes;
