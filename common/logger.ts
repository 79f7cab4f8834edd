// pino everywhere: readable with pino-pretty in a terminal, JSON lines otherwise.
import { pino, type Logger } from "pino";
import type { Config } from "./config.ts";

export type { Logger };

/**
 * Secrets never reach a log line, wherever they sit in a logged object: request headers (a
 * bearer token, a cookie), a socket.io handshake's `auth`, fields named like a secret (API and
 * webhook tokens, webhook signing secrets, passwords) and connection strings (which carry one).
 */
export const LOG_REDACT_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  "headers.authorization",
  "headers.cookie",
  "*.headers.authorization",
  "handshake.auth",
  "auth",
  "*.auth",
  "token",
  "*.token",
  "secret",
  "*.secret",
  "password",
  "*.password",
  "databaseUrl",
  "*.databaseUrl",
  "DATABASE_URL",
  "*.DATABASE_URL",
];

/** `stream` 2 (stderr) keeps stdout free for a command's own output. */
export function createLogger(config: Pick<Config, "logLevel" | "logFormat">, name: string, stream: 1 | 2 = 1): Logger {
  const terminal = stream === 1 ? process.stdout.isTTY : process.stderr.isTTY;
  const pretty = config.logFormat === "pretty" || (config.logFormat === "auto" && terminal === true);
  const options = {
    name,
    level: config.logLevel,
    redact: LOG_REDACT_PATHS,
  };
  if (pretty) {
    return pino({
      ...options,
      transport: { target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname", destination: stream } },
    });
  }
  return pino(options, pino.destination(stream));
}
