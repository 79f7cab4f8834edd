// Graceful shutdown shared by the long-running entry points: the first SIGINT/SIGTERM/SIGHUP
// drains (stop taking work, let running steps finish, close connections); a second one exits
// at once. Ctrl-C reaches us twice in a row (from the terminal and forwarded by npm), so a
// repeat within a second counts as the same request.
import type { Logger } from "./logger.ts";

export function onShutdown(log: Logger, drain: () => Promise<void>): void {
  let drainingSince: number | undefined;
  const handler = (signal: NodeJS.Signals) => {
    if (drainingSince !== undefined && Date.now() - drainingSince < 1_000) return;
    if (drainingSince !== undefined) {
      log.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    drainingSince = Date.now();
    log.info({ signal }, "shutting down (send the signal again to exit at once)");
    drain().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, handler);
}

/** Runs an entry point, turning a start-up failure into one clear line and exit code 1. */
export async function runMain(name: string, main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (error) {
    console.error(`${name}: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
}
