// Runs gradguard as a real process, the way a user starts it, and reads its JSON log.
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll } from "vitest";
import { TEST_ADMIN_TOKEN } from "./app.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface LogLine {
  msg: string;
  pid: number;
  [key: string]: unknown;
}

export interface ServerProcess {
  url: string;
  /** pid of the node process serving (not npm's). */
  pid: number;
  lines: LogLine[];
  /** Resolves with the exit code (or signal) of the spawned command. */
  exited: Promise<number | string>;
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
}

const running = new Set<ChildProcess>();
afterAll(() => {
  for (const child of running) if (child.pid) process.kill(-child.pid, "SIGKILL");
});

/**
 * Starts `npm start` (or another script) with a clean environment: only what is given here,
 * plus PATH and HOME, so the suite's own DATABASE_URL does not leak into an embedded test.
 */
export async function startServer(env: Record<string, string>, script: "start" | "worker" = "start"): Promise<ServerProcess> {
  const child = spawn("npm", ["run", "--silent", script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", PORT: "0", LOG_FORMAT: "json", GRADGUARD_POLL_MS: "100", GRADGUARD_RETRY_BACKOFF_MS: "200", GRADGUARD_ADMIN_TOKEN: TEST_ADMIN_TOKEN, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  running.add(child);
  const lines: LogLine[] = [];
  let text = "";
  const waiters = new Set<() => void>();
  const onOutput = (chunk: Buffer) => {
    text += chunk.toString("utf8");
    let newline = text.indexOf("\n");
    while (newline >= 0) {
      const line = text.slice(0, newline);
      text = text.slice(newline + 1);
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        lines.push({ msg: line, pid: -1 });
      }
      newline = text.indexOf("\n");
    }
    for (const wake of waiters) wake();
  };
  child.stdout?.on("data", onOutput);
  child.stderr?.on("data", onOutput);
  let done = false;
  // "close", not "exit": by then every line the process printed has been read.
  const exited = new Promise<number | string>((resolve) =>
    child.on("close", (code, signal) => {
      running.delete(child);
      done = true;
      for (const wake of waiters) wake();
      resolve(code ?? signal ?? -1);
    }),
  );

  const waitForLog = (predicate: (line: LogLine) => boolean, timeoutMs = 60_000) =>
    new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`no such log line within ${timeoutMs} ms; output:\n${dump()}`)), timeoutMs);
      const check = () => {
        const found = lines.find(predicate);
        if (found) finish(undefined, found);
        else if (done) finish(new Error(`the process exited first; output:\n${dump()}`));
      };
      const finish = (error?: Error, line?: LogLine) => {
        clearTimeout(timer);
        waiters.delete(check);
        if (error) reject(error);
        else resolve(line as LogLine);
      };
      waiters.add(check);
      check();
    });
  const dump = () => lines.map((l) => JSON.stringify(l)).join("\n").slice(-4000);

  // A server is ready when it serves; a standalone worker when it starts taking jobs.
  const ready = await waitForLog((line) => typeof line.msg === "string" && (script === "start" ? line.msg.startsWith("gradguard is serving") : line.msg === "worker started"));
  return { url: (ready.url as string | undefined) ?? "", pid: ready.pid, lines, exited, waitForLog };
}

/** A request to the API as the test admin (pass an authorization header to be someone else). */
export async function api<T = Record<string, unknown>>(base: string, path: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const response = await fetch(`${base}/api/v1${path}`, {
    ...init,
    headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, ...(init?.body ? { "content-type": "application/json" } : {}), ...(init?.headers as Record<string, string>) },
  });
  return { status: response.status, body: (await response.json()) as T };
}
