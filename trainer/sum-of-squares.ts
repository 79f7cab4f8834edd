// Σx² of each of a list of tensors: the one reduction every norm the trainer reports is made
// of. Everywhere it is sum(x·x) per tensor; on the wasm backend it is ONE kernel that runs a
// small SIMD loop over each tensor where it lies in the backend's memory. tfjs-wasm has no fused
// kernel for it: x·x writes a full-size tensor that a second kernel reads back, which on the
// reference MLP cost 4.7% of the step (measured) — more than the 3% all of gradguard's
// monitoring may cost — and each kernel call costs a dispatch on top. The training step calls
// the same loop directly (sumsOfSquaresOnHost), which skips even that dispatch and the read.
import * as tf from "@tensorflow/tfjs-core";

const KERNEL = "GradguardSumsOfSquares";

/** [Σx² of xs[0], Σx² of xs[1], …], float32, computed where the tensors lie. */
export function sumsOfSquares(xs: tf.Tensor[]): tf.Tensor1D {
  if (xs.length === 0) return tf.zeros([0]);
  if (xs.every((x) => x.dtype === "float32") && tf.getKernel(KERNEL, tf.getBackend())) {
    return tf.engine().runKernel(KERNEL, Object.fromEntries(xs.map((x, i) => [`x${i}`, x]))) as tf.Tensor1D;
  }
  return tf.tidy(() => tf.stack(xs.map((x) => tf.sum(tf.mul(x, x))))) as tf.Tensor1D;
}

// ---- the wasm kernel ----------------------------------------------------------------------

/** The module, written out in WebAssembly's binary format (a dozen instructions do not warrant a toolchain). */
const MODULE_BYTES = encodeModule();

function encodeModule(): Uint8Array {
  const leb = (n: number): number[] => {
    const bytes: number[] = [];
    do {
      let byte = n & 0x7f;
      n >>>= 7;
      if (n !== 0) byte |= 0x80;
      bytes.push(byte);
    } while (n !== 0);
    return bytes;
  };
  // i32.const takes a signed LEB128.
  const i32Const = (n: number): number[] => {
    const bytes: number[] = [];
    for (;;) {
      const byte = n & 0x7f;
      n >>= 7;
      if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) return [0x41, ...bytes, byte];
      bytes.push(byte | 0x80);
    }
  };
  const name = (s: string) => [...leb(s.length), ...new TextEncoder().encode(s)];
  const section = (id: number, content: number[]) => [id, ...leb(content.length), ...content];
  const [I32, F32, F64, V128] = [0x7f, 0x7d, 0x7c, 0x7b];
  // Four lane sums in turn, so that consecutive additions do not wait on each other (one sum
  // ran at a quarter of the speed: each f32x4.add waited for the one before; 0.14 ms a step on
  // the reference MLP's 235,000 gradients, measured with tf.profile).
  // Locals: 0 ptr (byte offset, param), 1 n (element count, param), 2 end of the whole-chunk
  // part, 3 the values just loaded (v128), 4-7 the lane sums (v128), 8 the tail's sum (f32).
  const LOADED = 3;
  const LANES = [4, 5, 6, 7] as const;
  const TAIL = 8;
  const ACCUMULATORS = LANES.length;
  const CHUNK = 4 * ACCUMULATORS; // floats per iteration
  const get = (i: number) => [0x20, i];
  const set = (i: number) => [0x21, i];
  const memarg = (offset: number) => [0x02, ...leb(offset)]; // 4-byte alignment hint
  const body = [
    ...[3, 1, I32, 1 + ACCUMULATORS, V128, 1, F32], // local declarations: (count, type) × 3
    // end = ptr + (n & -CHUNK) * 4
    ...get(0), ...get(1), ...i32Const(-CHUNK), 0x71 /* i32.and */, ...i32Const(2), 0x74 /* i32.shl */, 0x6a /* i32.add */, ...set(2),
    // while (ptr < end) { for each k: v = load(ptr + 16k); lanes[k] += v * v; } ptr += 4 * CHUNK
    0x02, 0x40, 0x03, 0x40,
    ...get(0), ...get(2), 0x4f /* i32.ge_u */, 0x0d, 0x01 /* br_if out */,
    ...LANES.flatMap((lanes, k) => [
      ...get(0), 0xfd, 0x00, ...memarg(16 * k) /* v128.load */, ...set(LOADED),
      ...get(lanes), ...get(LOADED), ...get(LOADED), 0xfd, 0xe6, 0x01 /* f32x4.mul */, 0xfd, 0xe4, 0x01 /* f32x4.add */, ...set(lanes),
    ]),
    ...get(0), ...i32Const(4 * CHUNK), 0x6a, ...set(0),
    0x0c, 0x00 /* br loop */, 0x0b, 0x0b,
    // n &= CHUNK - 1; while (n != 0) { tail += load(ptr)²; ptr += 4; n-- }
    ...get(1), ...i32Const(CHUNK - 1), 0x71, ...set(1),
    0x02, 0x40, 0x03, 0x40,
    ...get(1), 0x45 /* i32.eqz */, 0x0d, 0x01,
    ...get(TAIL), ...get(0), 0x2a, ...memarg(0) /* f32.load */, ...get(0), 0x2a, ...memarg(0), 0x94 /* f32.mul */, 0x92 /* f32.add */, ...set(TAIL),
    ...get(0), ...i32Const(4), 0x6a, ...set(0),
    ...get(1), ...i32Const(1), 0x6b /* i32.sub */, ...set(1),
    0x0c, 0x00, 0x0b, 0x0b,
    // lanes = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]); return its 4 lanes + tail, as f64
    ...get(LANES[0]), ...get(LANES[1]), 0xfd, 0xe4, 0x01, ...get(LANES[2]), ...get(LANES[3]), 0xfd, 0xe4, 0x01, 0xfd, 0xe4, 0x01, ...set(LOADED),
    ...get(LOADED), 0xfd, 0x1f, 0x00 /* f32x4.extract_lane 0 */,
    ...[1, 2, 3].flatMap((lane) => [...get(LOADED), 0xfd, 0x1f, lane, 0x92]),
    ...get(TAIL), 0x92, 0xbb /* f64.promote_f32 */,
    0x0b,
  ];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [1, 0x60, 2, I32, I32, 1, F64]), // type 0: (i32 ptr, i32 n) → f64
    ...section(2, [1, ...name("env"), ...name("memory"), 0x02, 0x00, 0x00]), // import the backend's memory
    ...section(3, [1, 0]), // function 0 has type 0
    ...section(7, [1, ...name("sumOfSquares"), 0x00, 0]), // export it
    ...section(10, [1, ...leb(body.length), ...body]),
  ]);
}

// The part of the WebAssembly API used here (@types/node 20 does not declare it).
type Memory = object;
const WebAssembly = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;
interface WebAssemblyApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: { env: { memory: Memory } }) => { exports: Record<string, unknown> };
}

interface WasmBackend extends tf.KernelBackend {
  wasm: { asm: { memory: Memory } };
  dataIdMap: { get(dataId: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): tf.TypedArray;
}

/** Σx² of a tensor's n floats at byte offset ptr of a wasm backend's memory; set once registered. */
let computeIn: ((backend: WasmBackend) => (ptr: number, n: number) => number) | undefined;

/**
 * Registers the kernel for tfjs's wasm backend, instantiated against that backend's memory on
 * first use (the backend has to be initialised for its memory to exist). Without WebAssembly
 * SIMD the kernel stays unregistered and sum(x·x) is used.
 */
export function registerWasmSumsOfSquares(): void {
  if (!WebAssembly.validate(MODULE_BYTES)) return;
  const module = new WebAssembly.Module(MODULE_BYTES);
  // One instance per backend memory (a re-created backend has a new one).
  const instances = new WeakMap<Memory, (ptr: number, n: number) => number>();
  computeIn = (backend) => {
    const memory = backend.wasm.asm.memory;
    let compute = instances.get(memory);
    if (!compute) {
      compute = new WebAssembly.Instance(module, { env: { memory } }).exports.sumOfSquares as (ptr: number, n: number) => number;
      instances.set(memory, compute);
    }
    return compute;
  };
  tf.registerKernel({
    kernelName: KERNEL,
    backendName: "wasm",
    kernelFunc: ({ inputs, backend }) => {
      const wasm = backend as WasmBackend;
      const xs = Object.values(inputs) as tf.TensorInfo[];
      const result = wasm.makeOutput([xs.length], "float32");
      // After makeOutput, which may grow the memory.
      wasm.typedArrayFromHeap(result).set(sumsIn(wasm, xs));
      return result;
    },
  });
}

/**
 * The same sums as numbers, computed where the tensors lie when that is host memory (the wasm
 * backend), with no kernel dispatch, no output tensor and no read: on the reference MLP those
 * cost as much as the sums themselves. Null on any other backend: use sumsOfSquares there.
 */
export function sumsOfSquaresOnHost(xs: tf.Tensor[]): Float64Array | null {
  if (!computeIn || tf.getBackend() !== "wasm" || !xs.every((x) => x.dtype === "float32")) return null;
  return sumsIn(tf.backend() as WasmBackend, xs);
}

function sumsIn(backend: WasmBackend, xs: tf.TensorInfo[]): Float64Array {
  const compute = (computeIn as NonNullable<typeof computeIn>)(backend);
  const sums = new Float64Array(xs.length);
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i] as tf.TensorInfo;
    sums[i] = compute(backend.dataIdMap.get(x.dataId).memoryOffset, tf.util.sizeFromShape(x.shape));
  }
  return sums;
}
