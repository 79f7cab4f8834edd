// The alerts service of the app: the evaluator (events → alerts), woken by NOTIFY job_events
// and every second (so it works without the notification too, and checks silent jobs), and the
// webhook dispatcher. Both start when the app is ready and stop when it closes.
import fp from "fastify-plugin";
import type { AlertsConfig } from "../../common/config.ts";
import type { Logger } from "../../common/logger.ts";
import { EVENTS_CHANNEL } from "../../prisma/channels.ts";
import { PgListener } from "../../prisma/listener.ts";
import { WebhookDispatcher } from "./dispatcher.ts";
import { AlertEvaluator } from "./evaluator.ts";

declare module "fastify" {
  interface FastifyInstance {
    alerts: { evaluator: AlertEvaluator; dispatcher: WebhookDispatcher; settings: AlertsConfig };
  }
}

export interface AlertsPluginOptions {
  settings: AlertsConfig;
  /** Where to LISTEN for new events; without it the evaluator only polls. */
  databaseUrl?: string | undefined;
  /** How often both look for work without being told (ms); default 1,000. */
  pollMs?: number;
}

export default fp<AlertsPluginOptions>(
  async (app, { settings, databaseUrl, pollMs = 1_000 }) => {
    // The app's logger is the pino logger server/main.ts made (common/logger.ts).
    const log = app.log as Logger;
    const dispatcher = new WebhookDispatcher({ prisma: app.prisma, settings, log });
    const evaluator = new AlertEvaluator({
      prisma: app.prisma,
      settings,
      log,
      onRaised: (alerts) => {
        dispatcher.wake();
        // Optional: alerts still work (stored, webhooks) in an app built without the live channel.
        if (!app.hasDecorator("live")) return;
        for (const alert of alerts) {
          try {
            app.live.broadcastAlert(alert);
          } catch (error) {
            app.log.warn({ err: error, alertId: alert.id }, "could not broadcast an alert over socket.io");
          }
        }
      },
    });
    const listener = databaseUrl
      ? new PgListener({ name: "alerts", databaseUrl, channels: [EVENTS_CHANNEL], log, onNotification: () => evaluator.wake(), onConnected: () => evaluator.wake() })
      : undefined;
    let timer: NodeJS.Timeout | undefined;

    app.decorate("alerts", { evaluator, dispatcher, settings });
    app.addHook("onReady", async () => {
      await listener?.start();
      evaluator.wake();
      dispatcher.wake();
      timer = setInterval(() => {
        evaluator.wake();
        dispatcher.wake();
      }, pollMs);
      timer.unref();
    });
    app.addHook("onClose", async () => {
      clearInterval(timer);
      await listener?.close();
      await evaluator.stop();
      await dispatcher.stop();
    });
  },
  { name: "alerts", dependencies: ["prisma"] },
);
