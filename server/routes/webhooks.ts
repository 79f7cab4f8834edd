// /api/v1/webhooks (admin): register receivers of alerts, list and delete them, and read each
// one's delivery log. The secret signs every delivery and is never shown again. See
// docs/webhooks.md for what a receiver gets and how it checks the signature.
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import Type from "typebox";
import { ALERT_RULES } from "../../common/config.ts";
import { refuseWebhookUrl } from "../alerts/outbound.ts";
import { InvalidRequestProblem, NotFoundProblem, ProblemSchema } from "../errors.ts";
import { Nullable, SEVERITIES } from "./alerts.ts";

const admin = { role: "admin" as const };

const EventFilterSchema = Type.Object(
  {
    rules: Type.Optional(Type.Array(Type.Enum(ALERT_RULES), { uniqueItems: true, description: "Only alerts of these rules; absent or empty: every rule" })),
    severities: Type.Optional(Type.Array(Type.Enum(SEVERITIES), { uniqueItems: true, description: "Only alerts of these severities; absent or empty: every severity" })),
  },
  { additionalProperties: false },
);

const WebhookSchema = Type.Object({
  id: Type.String({ format: "uuid" }),
  url: Type.String(),
  format: Type.Enum(["json", "slack"]),
  events: Type.Object({ rules: Type.Array(Type.String()), severities: Type.Array(Type.Enum(SEVERITIES)) }),
  createdAt: Type.String({ format: "date-time" }),
});

const CreateWebhookSchema = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 2048, description: "http(s) URL that receives a POST per alert" }),
    secret: Type.String({ minLength: 16, maxLength: 512, description: "Key of the HMAC-SHA256 signature in the gradguard-signature header" }),
    events: Type.Optional(EventFilterSchema),
    format: Type.Optional(Type.Enum(["json", "slack"], { description: "json (default): gradguard's body; slack: a Slack incoming-webhook message (text + blocks)" })),
  },
  { additionalProperties: false },
);

const IdParams = Type.Object({ id: Type.String({ format: "uuid" }) }, { additionalProperties: false });

const DeliverySchema = Type.Object({
  id: Type.String({ format: "uuid", description: "The gradguard-delivery header: the same on every attempt" }),
  alertId: Type.String(),
  status: Type.Enum(["pending", "delivered", "failed"]),
  attempts: Type.Integer(),
  nextAttemptAt: Nullable(Type.String({ format: "date-time", description: "When a pending delivery is tried next" })),
  createdAt: Type.String({ format: "date-time" }),
  finishedAt: Nullable(Type.String({ format: "date-time" })),
  log: Type.Array(
    Type.Object({
      attempt: Type.Integer(),
      statusCode: Nullable(Type.Integer({ description: "The receiver's answer; null when there was none" })),
      error: Nullable(Type.String()),
      durationMs: Type.Number(),
      at: Type.String({ format: "date-time" }),
    }),
  ),
});

function toWebhookResponse(row: { id: string; url: string; format: "json" | "slack"; rules: string[]; severities: (typeof SEVERITIES)[number][]; createdAt: Date }) {
  return { id: row.id, url: row.url, format: row.format, events: { rules: row.rules, severities: row.severities }, createdAt: row.createdAt.toISOString() };
}

const webhookRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post("/webhooks", { config: admin, schema: { body: CreateWebhookSchema, response: { 201: WebhookSchema, 400: ProblemSchema } } }, async (request, reply) => {
    const { url, secret, events, format } = request.body;
    const refusal = await refuseWebhookUrl(url, app.alerts.settings.webhookAllowPrivate);
    if (refusal) throw new InvalidRequestProblem(`body/url: ${refusal}`, [{ in: "body", field: "/url", message: refusal }]);
    const row = await app.prisma.webhook.create({ data: { url, secret, format: format ?? "json", rules: events?.rules ?? [], severities: events?.severities ?? [] } });
    reply.code(201);
    return toWebhookResponse(row);
  });

  app.get("/webhooks", { config: admin, schema: { response: { 200: Type.Object({ items: Type.Array(WebhookSchema) }) } } }, async () => {
    const rows = await app.prisma.webhook.findMany({ orderBy: { createdAt: "asc" } });
    return { items: rows.map(toWebhookResponse) };
  });

  app.delete("/webhooks/:id", { config: admin, schema: { params: IdParams, response: { 200: WebhookSchema, 400: ProblemSchema, 404: ProblemSchema } } }, async (request) => {
    // Its deliveries go with it: pending ones are not sent any more.
    const row = await app.prisma.webhook.delete({ where: { id: request.params.id } }).catch(() => null);
    if (!row) throw new NotFoundProblem(`webhook ${request.params.id}`);
    return toWebhookResponse(row);
  });

  app.get(
    "/webhooks/:id/deliveries",
    {
      config: admin,
      schema: {
        params: IdParams,
        querystring: Type.Object(
          {
            status: Type.Optional(Type.Enum(["pending", "delivered", "failed"])),
            limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(DeliverySchema) }), 400: ProblemSchema, 404: ProblemSchema },
      },
    },
    async (request) => {
      const webhook = await app.prisma.webhook.findUnique({ where: { id: request.params.id }, select: { id: true } });
      if (!webhook) throw new NotFoundProblem(`webhook ${request.params.id}`);
      const { status, limit } = request.query;
      const rows = await app.prisma.alertDelivery.findMany({
        where: { webhookId: webhook.id, ...(status ? { status } : {}) },
        orderBy: [{ createdAt: "desc" }, { id: "desc" }],
        take: limit,
        include: { log: { orderBy: { attempt: "asc" } } },
      });
      return {
        items: rows.map((d) => ({
          id: d.id,
          alertId: d.alertId.toString(),
          status: d.status,
          attempts: d.attempts,
          nextAttemptAt: d.status === "pending" ? d.nextAttemptAt.toISOString() : null,
          createdAt: d.createdAt.toISOString(),
          finishedAt: d.finishedAt?.toISOString() ?? null,
          log: d.log.map((a) => ({ attempt: a.attempt, statusCode: a.statusCode, error: a.error, durationMs: a.durationMs, at: a.createdAt.toISOString() })),
        })),
      };
    },
  );
};

export default webhookRoutes;
