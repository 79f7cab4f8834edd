// Picks the tfjs backend at run time: native TensorFlow with CUDA, WebGPU (Dawn), native
// TensorFlow on CPU, WebAssembly, then pure JavaScript. The GPU and native packages are optional
// dependencies (tfjs-node's install downloads libtensorflow, which fails offline), so each is
// tried and the reason it was skipped is logged.
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-wasm";
import type { BackendName } from "../common/config.ts";
import type { Logger } from "../common/logger.ts";
import { registerWasmSumsOfSquares } from "./sum-of-squares.ts";

/**
 * Kernels tfjs-backend-wasm 4.22 lacks (conv filter and embedding gradients) or gets wrong
 * (MaxPoolGrad on all-negative windows) are run by the cpu backend's instead: inputs copied out
 * of wasm memory, the cpu kernel run, the result copied back.
 */
function borrowCpuKernels(backendName: string, kernelNames: string[]): void {
  for (const kernelName of kernelNames) {
    const cpuKernel = tf.getKernel(kernelName, "cpu");
    if (!cpuKernel) continue;
    if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel({
      kernelName,
      backendName,
      kernelFunc: ({ inputs, attrs, backend }) => {
        const wasm = backend as tf.KernelBackend & {
          makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
          typedArrayFromHeap(info: tf.TensorInfo): tf.TypedArray;
        };
        const cpu = tf.engine().findBackend("cpu");
        const cpuInputs: tf.NamedTensorInfoMap = {};
        for (const [name, info] of Object.entries(inputs)) {
          if (info) cpuInputs[name] = { ...info, dataId: cpu.write(wasm.readSync(info.dataId) as tf.TypedArray, info.shape, info.dtype) };
        }
        const output = cpuKernel.kernelFunc({ inputs: cpuInputs, attrs, backend: cpu }) as tf.TensorInfo;
        const values = cpu.readSync(output.dataId) as tf.TypedArray;
        for (const info of [...Object.values(cpuInputs), output]) if (info) cpu.disposeData(info.dataId, true);
        const result = wasm.makeOutput(output.shape, output.dtype);
        wasm.typedArrayFromHeap(result).set(values);
        return result;
      },
    });
  }
}
borrowCpuKernels("wasm", ["Conv2DBackpropFilter", "UnsortedSegmentSum", "MaxPoolGrad"]);

/**
 * tfjs-backend-wasm 4.22 hands XNNPACK only untransposed operands: a matMul with transposeA or
 * transposeB runs a plain loop instead, 5–13× slower than copying the operand transposed and
 * multiplying that (measured on 784×256 and 256×256 layers, batch 128). Every dense layer's
 * backward pass is such a matMul (dW = xᵀ·dy, dx = dy·Wᵀ), so training spent most of its step
 * there; now the operand is transposed first.
 */
function transposeOperandsFirst(backendName: string, kernelNames: string[]): void {
  const transpose = tf.getKernel("Transpose", backendName);
  for (const kernelName of kernelNames) {
    const kernel = tf.getKernel(kernelName, backendName);
    if (!kernel || !transpose) continue;
    tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel({
      ...kernel,
      kernelFunc: ({ inputs, attrs, backend }) => {
        const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
        if (!transposeA && !transposeB) return kernel.kernelFunc({ inputs, attrs, backend });
        const copies: tf.TensorInfo[] = [];
        const transposed = (x: tf.TensorInfo) => {
          const rank = x.shape.length;
          const perm = [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2];
          const copy = transpose.kernelFunc({ inputs: { x }, attrs: { perm }, backend }) as tf.TensorInfo;
          copies.push(copy);
          return copy;
        };
        const a = inputs.a as tf.TensorInfo;
        const b = inputs.b as tf.TensorInfo;
        const plain = { ...inputs, a: transposeA ? transposed(a) : a, b: transposeB ? transposed(b) : b };
        const output = kernel.kernelFunc({ inputs: plain, attrs: { ...attrs, transposeA: false, transposeB: false }, backend });
        for (const copy of copies) (backend as tf.KernelBackend).disposeData(copy.dataId);
        return output;
      },
    });
  }
}
transposeOperandsFirst("wasm", ["BatchMatMul", "_FusedMatMul"]);

registerWasmSumsOfSquares();

interface Candidate {
  name: BackendName;
  /** The tfjs backend it registers. */
  tfName: string;
  /** Loads what the backend needs (it registers the tfjs backend); throws with the reason it cannot. */
  load?: () => Promise<void>;
}

// Package names held in variables: TypeScript then does not require optional packages.
const NATIVE_GPU = "@tensorflow/tfjs-node-gpu";
const NATIVE_CPU = "@tensorflow/tfjs-node";
const DAWN = "webgpu";
const WEBGPU_BACKEND = "@tensorflow/tfjs-backend-webgpu";

const CANDIDATES: Candidate[] = [
  { name: "tensorflow-gpu", tfName: "tensorflow", load: async () => void (await import(NATIVE_GPU)) },
  { name: "webgpu", tfName: "webgpu", load: loadWebGpu },
  { name: "tensorflow", tfName: "tensorflow", load: async () => void (await import(NATIVE_CPU)) },
  { name: "wasm", tfName: "wasm" },
  { name: "cpu", tfName: "cpu" },
];

/**
 * tfjs's WebGPU backend over Dawn (dawn.node from the npm package `webgpu`, on Vulkan, Metal or
 * D3D12). The backend registers only if navigator.gpu exists when it is imported, so the GPU
 * comes first; without an adapter (no GPU, no driver) it is skipped.
 */
async function loadWebGpu(): Promise<void> {
  await installWebGpu((await import(DAWN)) as Dawn);
  await import(WEBGPU_BACKEND);
}

/** What dawn.node exports. */
export interface Dawn {
  create(flags: string[]): { requestAdapter(): Promise<unknown> };
  globals: object;
}

/** Makes `dawn`'s GPU navigator.gpu, for tfjs's WebGPU backend to find when it is imported; throws without an adapter. */
export async function installWebGpu(dawn: Dawn): Promise<void> {
  const gpu = dawn.create([]);
  if (!(await gpu.requestAdapter())) throw new Error("no WebGPU adapter (no GPU, or no Vulkan/Metal/D3D12 driver)");
  Object.assign(globalThis, dawn.globals);
  const existing = (globalThis as { navigator?: object }).navigator;
  Object.defineProperty(globalThis, "navigator", { value: { ...existing, gpu }, configurable: true });
}

/**
 * How many steps the trainer reads back at once on `backend` (TrainingOptions.readEvery): on a
 * GPU a read stalls the device's queue (×3.4 on the reference MLP, DESIGN.md), so each update is
 * bounded on the device and 8 steps are read together; where tensors lie in host memory (wasm,
 * cpu, native TensorFlow on the CPU) a read costs little and every step is judged before its update.
 */
export function readEveryFor(backend: BackendName, configured: number | undefined): number {
  return configured ?? (backend === "webgpu" || backend === "tensorflow-gpu" ? 8 : 0);
}

/** Activates the forced backend, or the first that works; returns its gradguard name. */
export async function resolveBackend(forced: BackendName | undefined, log: Logger): Promise<BackendName> {
  const candidates = forced ? CANDIDATES.filter((c) => c.name === forced) : CANDIDATES;
  const skipped: Record<string, string> = {};
  for (const candidate of candidates) {
    try {
      await candidate.load?.();
      if (!(await tf.setBackend(candidate.tfName))) throw new Error(`tfjs could not initialise the ${candidate.tfName} backend`);
      await tf.ready();
      log.info({ backend: candidate.name, skipped }, forced ? "tfjs backend forced by GRADGUARD_BACKEND" : "tfjs backend selected");
      return candidate.name;
    } catch (error) {
      skipped[candidate.name] = firstLine(error);
      log.debug({ backend: candidate.name, reason: skipped[candidate.name] }, "tfjs backend unavailable");
    }
  }
  throw new Error(`no tfjs backend could be started: ${JSON.stringify(skipped)}`);
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
}
