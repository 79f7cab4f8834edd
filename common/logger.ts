// pino everywhere: readable with pino-pretty in a terminal, JSON lines otherwise.
import { pino, type Logger } from "pino";
import type { Config } from "./config.ts";

export type { Logger };

export function createLogger(config: Pick<Config, "logLevel" | "logFormat">, name: string): Logger {
  const pretty = config.logFormat === "pretty" || (config.logFormat === "auto" && process.stdout.isTTY === true);
  return pino({
    name,
    level: config.logLevel,
    // Tokens and connection strings must never reach a log line.
    redact: ["req.headers.authorization", "databaseUrl", "*.databaseUrl"],
    transport: pretty ? { target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" } } : undefined,
  });
}
