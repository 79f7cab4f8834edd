// server/main.ts (what `npm start` runs) as a process of its own, for the benchmarks that need
// a real server: it resolves with the URL once the server logs that it serves.
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

export interface BenchServer {
  url: string;
  child: ChildProcess;
  /** SIGTERM, then resolves once it has exited (a CPU profile is written on that exit). */
  stop(): Promise<void>;
}

/** `env` is added to this process's environment; `nodeArgs` go before the script (e.g. --cpu-prof). */
export async function startBenchServer(env: NodeJS.ProcessEnv, nodeArgs: string[] = []): Promise<BenchServer> {
  const child = spawn(process.execPath, [...nodeArgs, "--import", "tsx", "server/main.ts"], {
    cwd: ROOT,
    env: { ...process.env, PORT: "0", HOST: "127.0.0.1", LOG_FORMAT: "json", GRADGUARD_WORKER_CONCURRENCY: "0", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const url = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the server exited with ${code} before serving`)));
    // Read every line (the request log too): a full pipe would stall the server.
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      if (line.includes("gradguard is serving")) resolve((JSON.parse(line) as { url: string }).url);
    });
  });
  return {
    url,
    child,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}
