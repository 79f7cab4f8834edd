// Picks the tfjs backend at run time: native TensorFlow with CUDA, native TensorFlow on CPU,
// WebAssembly, then pure JavaScript. The native packages are optional dependencies (their
// install downloads libtensorflow, which fails offline), so each is tried and the reason it was
// skipped is logged.
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-wasm";
import type { BackendName } from "../common/config.ts";
import type { Logger } from "../common/logger.ts";

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

interface Candidate {
  name: BackendName;
  /** The tfjs backend it registers. */
  tfName: string;
  /** An optional package that must load first (it registers the backend). */
  packageName?: string;
}

const CANDIDATES: Candidate[] = [
  { name: "tensorflow-gpu", tfName: "tensorflow", packageName: "@tensorflow/tfjs-node-gpu" },
  { name: "tensorflow", tfName: "tensorflow", packageName: "@tensorflow/tfjs-node" },
  { name: "wasm", tfName: "wasm" },
  { name: "cpu", tfName: "cpu" },
];

/** Activates the forced backend, or the first that works; returns its gradguard name. */
export async function resolveBackend(forced: BackendName | undefined, log: Logger): Promise<BackendName> {
  const candidates = forced ? CANDIDATES.filter((c) => c.name === forced) : CANDIDATES;
  const skipped: Record<string, string> = {};
  for (const candidate of candidates) {
    try {
      // A package name held in a variable: TypeScript does not require optional packages.
      if (candidate.packageName) await import(candidate.packageName);
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
