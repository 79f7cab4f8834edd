// Ready-made job specs (GET /api/v1/presets, `npm run demo`, the dashboard's preset picker).
// The explosion demo is Pascanu et al. 2013's setting: a SimpleRNN whose recurrent weights
// are too large, on the adding problem, with SGD at a high rate. Unguarded it reaches NaN within
// about ten steps; guarded, the watchdog clips it from the first step on.

export interface Preset {
  id: string;
  title: string;
  description: string;
  spec: Record<string, unknown>;
}

const explodingRnn = {
  model: {
    layers: [
      { type: "simpleRNN", units: 64, inputShape: [50, 2], recurrentInitializer: { className: "RandomNormal", config: { stddev: 0.3 } } },
      { type: "dense", units: 1 },
    ],
  },
  data: { kind: "adding", size: 4096, seqLen: 50, seed: 1 },
  loss: "meanSquaredError",
  optimizer: { type: "sgd", learningRate: 0.5 },
  batchSize: 32,
  steps: 600,
  seed: 1,
};

export const PRESETS: Preset[] = [
  {
    id: "explosion-guarded",
    title: "Exploding RNN, guarded",
    description: "A SimpleRNN with recurrent weights ~ N(0, 0.3²) on the adding problem, SGD at 0.5, under the gradguard watchdog: clipped and slowed from the first step, it stays finite.",
    spec: { name: "explosion demo (gradguard)", ...explodingRnn, watchdog: { policy: "gradguard" } },
  },
  {
    id: "explosion-unguarded",
    title: "Exploding RNN, unguarded",
    description: "The same run with the watchdog off: its gradient norm grows by orders of magnitude and reaches NaN within about ten steps.",
    spec: { name: "explosion demo (off)", ...explodingRnn, watchdog: { policy: "off" } },
  },
  {
    id: "spirals-bad-batch",
    title: "Spirals MLP with bad batches",
    description: "A 4-layer ReLU MLP on two spirals; three batches scaled ×1000 and one NaN batch. The watchdog clips or skips each at its own step.",
    spec: {
      name: "spirals with bad batches",
      model: {
        layers: [
          { type: "dense", units: 64, activation: "relu", inputShape: [2] },
          { type: "dense", units: 64, activation: "relu" },
          { type: "dense", units: 64, activation: "relu" },
          { type: "dense", units: 2 },
        ],
      },
      data: { kind: "spirals", size: 2048, seed: 1 },
      loss: "softmaxCrossEntropy",
      optimizer: { type: "sgd", learningRate: 0.1 },
      batchSize: 64,
      steps: 600,
      seed: 1,
      faults: [
        { kind: "badBatch", step: 150, factor: 1000 },
        { kind: "badBatch", step: 300, factor: 1000 },
        { kind: "nanBatch", step: 400 },
        { kind: "badBatch", step: 450, factor: 1000 },
      ],
    },
  },
];
