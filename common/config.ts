// The one place that reads process.env: parse it once against a schema, fail fast naming the
// bad variable, and hand the typed result down as plain values.
import Type, { type Static } from "typebox";
import Value from "typebox/value";

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export const BACKENDS = ["tensorflow-gpu", "webgpu", "tensorflow", "wasm", "cpu"] as const;
export type BackendName = (typeof BACKENDS)[number];
/** The alert rules of server/alerts/rules.ts, named here so GRADGUARD_ALERT_RULES can be checked. */
export const ALERT_RULES = ["diverged", "nonFinite", "rollback", "repeatedSpikes", "lrLowered", "silent", "trainerCrashed"] as const;
export type AlertRule = (typeof ALERT_RULES)[number];
const DEFAULT_ALERT_SEVERITIES: AlertsConfig["severities"] = {
  diverged: "critical",
  nonFinite: "warning",
  rollback: "warning",
  repeatedSpikes: "warning",
  lrLowered: "info",
  silent: "critical",
  trainerCrashed: "critical",
};

export const EnvSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000, description: "HTTP port; 0 picks a free one" }),
  HOST: Type.String({ minLength: 1, default: "127.0.0.1", description: "Address the API binds to" }),
  DATABASE_URL: Type.Optional(
    Type.String({
      pattern: "^postgres(ql)?://",
      description: "PostgreSQL to use; unset starts the embedded one",
    }),
  ),
  GRADGUARD_DATA_DIR: Type.String({
    minLength: 1,
    default: "./.gradguard",
    description: "Where the embedded PostgreSQL keeps its data",
  }),
  LOG_LEVEL: Type.Enum(LOG_LEVELS, { default: "info" }),
  LOG_FORMAT: Type.Enum(["auto", "pretty", "json"], { default: "auto", description: "auto: pretty in a terminal, JSON otherwise" }),
  GRADGUARD_BACKEND: Type.Optional(Type.Enum(BACKENDS, { description: "Force one tfjs backend instead of the first that loads" })),
  GRADGUARD_READ_EVERY: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: 1000,
      description: "Steps whose numbers the trainer reads back at once, each update bounded on the device meanwhile; 0: judged before every update. Default 8 on GPU backends, 0 elsewhere",
    }),
  ),
  GRADGUARD_ADMIN_TOKEN: Type.Optional(
    Type.String({ minLength: 16, maxLength: 512, description: "An admin API token accepted as is (automation, tests); unset: the first start creates one" }),
  ),
  GRADGUARD_CORS_ORIGINS: Type.Optional(
    Type.String({ pattern: "^(\\*|https?://[^,\\s]+(,https?://[^,\\s]+)*)$", description: "Origins allowed by CORS, comma-separated, or *; unset: none" }),
  ),
  GRADGUARD_URL: Type.Optional(Type.String({ pattern: "^https?://", description: "Where command-line clients (npm run demo) find the server; default http://HOST:PORT" })),
  GRADGUARD_TOKEN: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: "The API token command-line clients send; default GRADGUARD_ADMIN_TOKEN" })),
  GRADGUARD_RATE_LIMIT: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1200, description: "Requests per minute per token (or per address without one)" }),
  GRADGUARD_MAX_STEPS: Type.Integer({
    minimum: 1,
    default: 1_000_000,
    description: "Largest `steps` a job spec may ask for",
  }),
  GRADGUARD_MAX_PARAMETERS: Type.Integer({
    minimum: 1,
    default: 50_000_000,
    description: "Most weights a job's model may have; larger specs are refused before anything is allocated",
  }),
  GRADGUARD_MAX_BATCH_VALUES: Type.Integer({
    minimum: 1,
    default: 10_000_000,
    description: "Most input numbers in one batch (batchSize × numbers per example)",
  }),
  GRADGUARD_WORKER_CONCURRENCY: Type.Integer({
    minimum: 0,
    maximum: 64,
    default: 1,
    description: "Jobs trained at once by the in-process worker; 0 runs no worker",
  }),
  GRADGUARD_MAX_DATASET_BYTES: Type.Integer({
    minimum: 1024,
    maximum: 2 ** 31 - 1,
    default: 50 * 1024 * 1024,
    description: "Largest CSV upload, in bytes",
  }),
  GRADGUARD_MAX_ATTEMPTS: Type.Integer({
    minimum: 1,
    maximum: 100,
    default: 3,
    description: "Times a job is started before a crashing trainer marks it failed",
  }),
  GRADGUARD_LEASE_MS: Type.Integer({
    minimum: 1_000,
    maximum: 3_600_000,
    default: 30_000,
    description: "A running job whose worker sent no heartbeat for this long (ms) is taken over",
  }),
  GRADGUARD_RETRY_BACKOFF_MS: Type.Integer({
    minimum: 0,
    maximum: 3_600_000,
    default: 5_000,
    description: "A job whose trainer crashed or whose worker vanished waits this long (ms) before it is claimed again, doubling with each attempt (with jitter)",
  }),
  GRADGUARD_POLL_MS: Type.Integer({
    minimum: 10,
    maximum: 60_000,
    default: 500,
    description: "How often an idle worker looks for queued jobs, in milliseconds",
  }),
  GRADGUARD_ALERT_RULES: Type.Optional(
    Type.String({
      pattern: `^(${ALERT_RULES.join("|")})=(info|warning|critical|off)(,(${ALERT_RULES.join("|")})=(info|warning|critical|off))*$`,
      description: "Severity per alert rule, or off: `silent=warning,lrLowered=off`; rules not named keep their default",
    }),
  ),
  GRADGUARD_ALERT_COOLDOWN_S: Type.Integer({ minimum: 0, maximum: 86_400, default: 300, description: "Repeats of one rule for one job within this many seconds of its alert fold into it" }),
  GRADGUARD_ALERT_SILENT_S: Type.Integer({ minimum: 5, maximum: 86_400, default: 120, description: "A running job with no new step for this many seconds raises a silent alert" }),
  GRADGUARD_ALERT_SPIKE_COUNT: Type.Integer({ minimum: 2, maximum: 10_000, default: 10, description: "Interventions (clip, skip, spike warnings) within the window that raise repeatedSpikes" }),
  GRADGUARD_ALERT_SPIKE_WINDOW_S: Type.Integer({ minimum: 1, maximum: 86_400, default: 60, description: "The repeatedSpikes window, in seconds" }),
  GRADGUARD_WEBHOOK_ALLOW_PRIVATE: Type.Enum(["true", "false"], { default: "false", description: "true: webhooks may target loopback, link-local and private addresses" }),
  GRADGUARD_WEBHOOK_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 120_000, default: 10_000, description: "How long one webhook attempt may take, in milliseconds" }),
  GRADGUARD_WEBHOOK_RETRY_MS: Type.Integer({ minimum: 1, maximum: 3_600_000, default: 1_000, description: "Longest wait before the first retry (ms); doubles per attempt, up to an hour, with full jitter" }),
  GRADGUARD_WEBHOOK_MAX_AGE_S: Type.Integer({ minimum: 1, maximum: 30 * 86_400, default: 86_400, description: "A delivery still failing this many seconds after its alert is given up" }),
});

type Env = Static<typeof EnvSchema>;

/** How alerts are raised and sent (server/alerts). */
export interface AlertsConfig {
  /** Severity per rule; "off" disables the rule. */
  severities: Record<AlertRule, "info" | "warning" | "critical" | "off">;
  cooldownMs: number;
  silentMs: number;
  spikeCount: number;
  spikeWindowMs: number;
  webhookAllowPrivate: boolean;
  webhookTimeoutMs: number;
  webhookRetryMs: number;
  webhookMaxAgeMs: number;
}

export interface Config {
  port: number;
  host: string;
  adminToken: string | undefined;
  corsOrigins: string[] | "*" | undefined;
  rateLimit: number;
  /** For command-line clients of the API. */
  serverUrl: string;
  clientToken: string | undefined;
  /** Unset: start the embedded PostgreSQL under dataDir. */
  databaseUrl: string | undefined;
  dataDir: string;
  logLevel: Env["LOG_LEVEL"];
  logFormat: Env["LOG_FORMAT"];
  backend: BackendName | undefined;
  /** Unset: the backend's default (readEveryFor in trainer/backend.ts). */
  readEvery: number | undefined;
  maxSteps: number;
  maxParameters: number;
  maxBatchValues: number;
  workerConcurrency: number;
  maxDatasetBytes: number;
  maxAttempts: number;
  leaseMs: number;
  retryBackoffMs: number;
  pollMs: number;
  alerts: AlertsConfig;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const known = Object.keys(EnvSchema.properties);
  // An empty variable means "not set": `PORT= npm start` must not become port 0.
  const raw: Record<string, string> = {};
  for (const key of known) {
    const value = env[key];
    if (value !== undefined && value.trim() !== "") raw[key] = value.trim();
  }
  const parsed = Value.Default(EnvSchema, convert(raw));
  const problems = [...Value.Errors(EnvSchema, parsed)].map((error) => {
    const name = error.instancePath.replace(/^\//, "");
    const allowed = (error.params as { allowedValues?: unknown[] }).allowedValues;
    const message = allowed ? `must be one of ${allowed.join(", ")}` : error.message;
    return `${name}: ${message} (got ${JSON.stringify(raw[name])})`;
  });
  if (problems.length > 0) throw new ConfigError([...new Set(problems)]);
  const e = parsed as Env;
  return {
    port: e.PORT,
    host: e.HOST,
    adminToken: e.GRADGUARD_ADMIN_TOKEN,
    corsOrigins: e.GRADGUARD_CORS_ORIGINS === "*" ? "*" : e.GRADGUARD_CORS_ORIGINS?.split(","),
    rateLimit: e.GRADGUARD_RATE_LIMIT,
    serverUrl: e.GRADGUARD_URL ?? `http://${e.HOST}:${e.PORT}`,
    clientToken: e.GRADGUARD_TOKEN ?? e.GRADGUARD_ADMIN_TOKEN,
    databaseUrl: e.DATABASE_URL,
    dataDir: e.GRADGUARD_DATA_DIR,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    backend: e.GRADGUARD_BACKEND,
    readEvery: e.GRADGUARD_READ_EVERY,
    maxSteps: e.GRADGUARD_MAX_STEPS,
    maxParameters: e.GRADGUARD_MAX_PARAMETERS,
    maxBatchValues: e.GRADGUARD_MAX_BATCH_VALUES,
    workerConcurrency: e.GRADGUARD_WORKER_CONCURRENCY,
    maxDatasetBytes: e.GRADGUARD_MAX_DATASET_BYTES,
    maxAttempts: e.GRADGUARD_MAX_ATTEMPTS,
    leaseMs: e.GRADGUARD_LEASE_MS,
    retryBackoffMs: e.GRADGUARD_RETRY_BACKOFF_MS,
    pollMs: e.GRADGUARD_POLL_MS,
    alerts: {
      severities: { ...DEFAULT_ALERT_SEVERITIES, ...parseRuleSeverities(e.GRADGUARD_ALERT_RULES) },
      cooldownMs: e.GRADGUARD_ALERT_COOLDOWN_S * 1000,
      silentMs: e.GRADGUARD_ALERT_SILENT_S * 1000,
      spikeCount: e.GRADGUARD_ALERT_SPIKE_COUNT,
      spikeWindowMs: e.GRADGUARD_ALERT_SPIKE_WINDOW_S * 1000,
      webhookAllowPrivate: e.GRADGUARD_WEBHOOK_ALLOW_PRIVATE === "true",
      webhookTimeoutMs: e.GRADGUARD_WEBHOOK_TIMEOUT_MS,
      webhookRetryMs: e.GRADGUARD_WEBHOOK_RETRY_MS,
      webhookMaxAgeMs: e.GRADGUARD_WEBHOOK_MAX_AGE_S * 1000,
    },
  };
}

/** `silent=warning,lrLowered=off` (already checked against the schema's pattern). */
function parseRuleSeverities(text: string | undefined): Partial<AlertsConfig["severities"]> {
  if (!text) return {};
  return Object.fromEntries(text.split(",").map((pair) => pair.split("=")));
}

/**
 * Text to the types the schema wants, strictly: "30.5" is not an integer (TypeBox's Convert
 * would truncate it to 30). What does not convert stays text and fails validation by name.
 */
function convert(raw: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, text] of Object.entries(raw)) {
    const type = (EnvSchema.properties as Record<string, { type?: string }>)[key]?.type;
    if (type === "integer" && /^[+-]?\d+$/.test(text)) out[key] = Number(text);
    else out[key] = text;
  }
  return out;
}

/** The variables a child process needs to see the same configuration as its parent. */
export function configToEnv(config: Config): Record<string, string> {
  const env: Record<string, string> = {
    PORT: String(config.port),
    HOST: config.host,
    GRADGUARD_RATE_LIMIT: String(config.rateLimit),
    GRADGUARD_DATA_DIR: config.dataDir,
    LOG_LEVEL: config.logLevel,
    LOG_FORMAT: config.logFormat,
    GRADGUARD_MAX_STEPS: String(config.maxSteps),
    GRADGUARD_MAX_PARAMETERS: String(config.maxParameters),
    GRADGUARD_MAX_BATCH_VALUES: String(config.maxBatchValues),
    GRADGUARD_WORKER_CONCURRENCY: String(config.workerConcurrency),
    GRADGUARD_MAX_DATASET_BYTES: String(config.maxDatasetBytes),
    GRADGUARD_MAX_ATTEMPTS: String(config.maxAttempts),
    GRADGUARD_LEASE_MS: String(config.leaseMs),
    GRADGUARD_RETRY_BACKOFF_MS: String(config.retryBackoffMs),
    GRADGUARD_POLL_MS: String(config.pollMs),
  };
  if (config.databaseUrl) env.DATABASE_URL = config.databaseUrl;
  if (config.adminToken) env.GRADGUARD_ADMIN_TOKEN = config.adminToken;
  if (config.corsOrigins) env.GRADGUARD_CORS_ORIGINS = config.corsOrigins === "*" ? "*" : config.corsOrigins.join(",");
  if (config.backend) env.GRADGUARD_BACKEND = config.backend;
  if (config.readEvery !== undefined) env.GRADGUARD_READ_EVERY = String(config.readEvery);
  return env;
}
