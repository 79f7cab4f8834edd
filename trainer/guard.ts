// The watchdog (a pure function of numbers, trainer/watchdog/) seen from the training loop as a
// StepGuard: it holds the watchdog's state between steps and hands it to checkpoints.
import type { GuardDecision, StepGuard } from "./train-loop.ts";
import { afterRollback, decide, deviceBounds, initialState, resolveWatchdogConfig, type WatchdogSpec, type WatchdogState } from "./watchdog/index.ts";

export function createGuard(spec: WatchdogSpec | undefined, layerNames: string[]): StepGuard & Required<Pick<StepGuard, "deviceBounds">> {
  const config = resolveWatchdogConfig(spec);
  let state: WatchdogState = initialState(config, layerNames);
  return {
    decide(observation): GuardDecision {
      const result = decide(config, state, observation);
      state = result.state;
      return result.decision;
    },
    snapshot: () => state,
    restore: (snapshot) => {
      state = snapshot as WatchdogState;
    },
    afterRollback: (restored) => {
      state = afterRollback(config, state, restored as WatchdogState);
    },
    deviceBounds: () => deviceBounds(config, state),
  };
}
