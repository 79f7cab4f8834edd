// pino everywhere: readable with pino-pretty in a terminal, JSON lines otherwise.
import { pino, type Logger } from "pino";
import type { Config } from "./config.ts";

export type { Logger };

/** `stream` 2 (stderr) keeps stdout free for a command's own output. */
export function createLogger(config: Pick<Config, "logLevel" | "logFormat">, name: string, stream: 1 | 2 = 1): Logger {
  const terminal = stream === 1 ? process.stdout.isTTY : process.stderr.isTTY;
  const pretty = config.logFormat === "pretty" || (config.logFormat === "auto" && terminal === true);
  const options = {
    name,
    level: config.logLevel,
    // Tokens and connection strings must never reach a log line.
    redact: ["req.headers.authorization", "databaseUrl", "*.databaseUrl"],
  };
  if (pretty) {
    return pino({
      ...options,
      transport: { target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname", destination: stream } },
    });
  }
  return pino(options, pino.destination(stream));
}
