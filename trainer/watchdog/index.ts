// The watchdog's public surface: configuration (the job spec's `watchdog` field) and the pure
// per-step decision. See README.md in this folder.
export {
  checkWatchdogConfig,
  DEFAULT_POLICY,
  InvalidWatchdogConfigError,
  POLICIES,
  type Policy,
  presetConfig,
  resolveWatchdogConfig,
  type WatchdogConfig,
  type WatchdogConfigProblem,
  type WatchdogSpec,
  WatchdogSpecSchema,
} from "./config.ts";
export { type DeviceBounds, deviceBounds } from "./device-bounds.ts";
export {
  type Action,
  afterRollback,
  clipCoefficient,
  type Decision,
  decide,
  type EventKind,
  initialState,
  isBatchSkipped,
  type StepObservation,
  type WatchdogEvent,
  type WatchdogState,
} from "./watchdog.ts";
