// `npm run bench:watchdog [seeds] [steps] [scenario filter] [policy filter]`: does the watchdog help? Every scenario runs
// under every policy with the same seeds (a paired comparison), through the production
// training loop, and reports divergence, final validation loss against the clean run's,
// interventions, and the delay from an injected fault to the first intervention.
import { pino } from "pino";
import { resolveBackend } from "../trainer/backend.ts";
import { parseJobSpec } from "../trainer/spec.ts";
import { prepareTraining, type StepRecord } from "../trainer/train-loop.ts";
import { POLICIES, type Policy } from "../trainer/watchdog/index.ts";
import { writeResults } from "./results.ts";

const SEEDS = Number(process.argv[2] ?? 3);
const STEPS = Number(process.argv[3] ?? 300);
/** Only scenarios whose name contains this, and their clean references (for quick looks). */
const ONLY = process.argv[4] ?? "";
const POLICY_FILTER = process.argv[5] ?? "";

const spirals = { kind: "spirals", size: 2048, noise: 0.1 };
const reluMlp = {
  layers: [
    { type: "dense", units: 64, activation: "relu", inputShape: [2] },
    { type: "dense", units: 64, activation: "relu" },
    { type: "dense", units: 64, activation: "relu" },
    { type: "dense", units: 2 },
  ],
};
const deepTanh = {
  layers: [
    { type: "dense", units: 32, activation: "tanh", inputShape: [2] },
    ...Array.from({ length: 15 }, () => ({ type: "dense", units: 32, activation: "tanh" })),
    { type: "dense", units: 2 },
  ],
};
const rnn = (seqLen: number, recurrentStd: number) => ({
  model: {
    layers: [
      { type: "simpleRNN", units: 64, inputShape: [seqLen, 2], recurrentInitializer: { className: "RandomNormal", config: { stddev: recurrentStd } } },
      { type: "dense", units: 1 },
    ],
  },
  data: { kind: "adding", size: 2048, seqLen },
  loss: "meanSquaredError",
  batchSize: 32,
});

interface Scenario {
  name: string;
  /** The healthy run this one is compared with (same model and data, no fault). */
  clean: string;
  spec: Record<string, unknown>;
  /** First step of the injected trouble, for the detection delay. */
  faultStep?: number;
}

const mlp = { model: reluMlp, data: spirals, loss: "softmaxCrossEntropy", batchSize: 64, optimizer: { type: "sgd", learningRate: 0.1 } };
const tanh = { model: deepTanh, data: spirals, loss: "softmaxCrossEntropy", batchSize: 64, optimizer: { type: "sgd", learningRate: 0.05 } };
const at = (fraction: number) => Math.floor(STEPS * fraction);

const SCENARIOS: Scenario[] = [
  // Pascanu et al. 2013's setting: recurrent weights ~ N(0, 0.3²), SGD at 0.5, no clipping.
  { name: "1a SimpleRNN adding T=50, SGD 0.5", clean: "6c clean SimpleRNN T=50", spec: { ...rnn(50, 0.3), optimizer: { type: "sgd", learningRate: 0.5 } } },
  { name: "1b SimpleRNN adding T=100, SGD 0.5", clean: "6d clean SimpleRNN T=100", spec: { ...rnn(100, 0.3), optimizer: { type: "sgd", learningRate: 0.5 } } },
  { name: "2 deep tanh MLP (18 layers), lrSpike ×40", clean: "6b clean deep tanh MLP", spec: { ...tanh, faults: [{ kind: "lrSpike", step: at(0.5), factor: 40, duration: 5 }] }, faultStep: at(0.5) },
  {
    name: "3 ReLU MLP, badBatch ×1e3",
    clean: "6a clean ReLU MLP",
    spec: { ...mlp, faults: [at(0.3), at(0.6), at(0.8)].map((step) => ({ kind: "badBatch", step, factor: 1000 })) },
    faultStep: at(0.3),
  },
  { name: "4 ReLU MLP, Adam lr 0.1, no warm-up", clean: "6e clean ReLU MLP, Adam 0.005", spec: { ...mlp, optimizer: { type: "adam", learningRate: 0.1 } } },
  { name: "5 ReLU MLP, nanBatch", clean: "6a clean ReLU MLP", spec: { ...mlp, faults: [{ kind: "nanBatch", step: at(0.5) }] }, faultStep: at(0.5) },
  { name: "6a clean ReLU MLP", clean: "6a clean ReLU MLP", spec: mlp },
  { name: "6b clean deep tanh MLP", clean: "6b clean deep tanh MLP", spec: tanh },
  { name: "6c clean SimpleRNN T=50", clean: "6c clean SimpleRNN T=50", spec: { ...rnn(50, 0.05), optimizer: { type: "sgd", learningRate: 0.05 } } },
  { name: "6d clean SimpleRNN T=100", clean: "6d clean SimpleRNN T=100", spec: { ...rnn(100, 0.05), optimizer: { type: "sgd", learningRate: 0.05 } } },
  { name: "6e clean ReLU MLP, Adam 0.005", clean: "6e clean ReLU MLP, Adam 0.005", spec: { ...mlp, optimizer: { type: "adam", learningRate: 0.005 } } },
];

interface Run {
  scenario: string;
  policy: Policy;
  seed: number;
  diverged: boolean;
  finalValLoss: number | null;
  interventions: number;
  detectionDelay: number | null;
  seconds: number;
}

async function runOnce(scenario: Scenario, policy: Policy, seed: number): Promise<Run> {
  const spec = parseJobSpec(
    { name: scenario.name, steps: STEPS, seed, ...scenario.spec, data: { ...(scenario.spec.data as object), seed }, validation: { fraction: 0.2, everySteps: STEPS }, watchdog: { policy } },
    { maxSteps: 1_000_000 },
  );
  const training = prepareTraining(spec);
  const records: StepRecord[] = [];
  const started = performance.now();
  const summary = await training.run({ onStep: (r) => records.push(r) });
  const weightsFinite = training.readWeights().every((w) => w.every(Number.isFinite));
  training.dispose();
  const firstLoss = records.find((r) => Number.isFinite(r.loss))?.loss ?? Number.NaN;
  const lastLoss = summary.finalValLoss ?? Number.NaN;
  const firstIntervention = records.find((r) => r.action !== "none" && r.step >= (scenario.faultStep ?? 0));
  return {
    scenario: scenario.name,
    policy,
    seed,
    // Non-finite weights, a loss far above where it started, or stopped by the watchdog.
    diverged: !weightsFinite || !Number.isFinite(lastLoss) || lastLoss > 10 * firstLoss || summary.diverged !== null,
    finalValLoss: Number.isFinite(lastLoss) ? lastLoss : null,
    interventions: records.filter((r) => r.action !== "none").length,
    detectionDelay: scenario.faultStep === undefined || !firstIntervention ? null : firstIntervention.step - scenario.faultStep,
    seconds: (performance.now() - started) / 1000,
  };
}

const backend = await resolveBackend(undefined, pino({ level: "warn" }));
const selected = SCENARIOS.filter((s) => s.name.includes(ONLY) || SCENARIOS.some((t) => t.name.includes(ONLY) && t.clean === s.name));
const policies = POLICIES.filter((p) => p.includes(POLICY_FILTER));
const runs: Run[] = [];
for (const scenario of selected) {
  for (const policy of policies) {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const run = await runOnce(scenario, policy, seed);
      runs.push(run);
      console.error(`${scenario.name} | ${policy} | seed ${seed}: ${run.diverged ? "DIVERGED" : "ok"}, val ${run.finalValLoss?.toFixed(4)}, ${run.interventions} interventions, delay ${run.detectionDelay}, ${run.seconds.toFixed(1)} s`);
    }
  }
}

const mean = (values: number[]) => (values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length);
const rows = selected.flatMap((scenario) =>
  policies.map((policy) => {
    const mine = runs.filter((r) => r.scenario === scenario.name && r.policy === policy);
    // Paired: each seed's loss against the clean scenario's run under the same policy and seed.
    const ratios = mine.flatMap((run) => {
      const clean = runs.find((r) => r.scenario === scenario.clean && r.policy === policy && r.seed === run.seed);
      return run.finalValLoss !== null && clean?.finalValLoss ? [run.finalValLoss / clean.finalValLoss] : [];
    });
    const delays = mine.flatMap((r) => (r.detectionDelay === null ? [] : [r.detectionDelay]));
    return {
      scenario: scenario.name,
      policy,
      diverged: `${mine.filter((r) => r.diverged).length}/${mine.length}`,
      finalValLoss: mean(mine.flatMap((r) => (r.finalValLoss === null ? [] : [r.finalValLoss]))),
      ratioToClean: ratios.length === mine.length ? mean(ratios) : null,
      interventions: mean(mine.map((r) => r.interventions)),
      interventionRate: mean(mine.map((r) => r.interventions / STEPS)),
      detectionDelay: scenario.faultStep === undefined ? "n/a" : delays.length === mine.length ? mean(delays) : "missed",
    };
  }),
);
await writeResults(ONLY || POLICY_FILTER ? "watchdog-partial" : "watchdog", { backend, seeds: SEEDS, steps: STEPS, rows, runs });
