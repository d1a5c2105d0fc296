/**
 * onnxruntime-node sessions: the one place that knows about execution providers.
 * `auto` tries CUDA, then WebGPU, then the CPU, and the session says which it got.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import ort from 'onnxruntime-node';
import { disableOnnxTelemetry } from './telemetry.ts';
import { PROVIDERS, type Provider } from '../constants.ts';
import { float32ToHalves, halvesToFloat32 } from './half.ts';
import { unfuseAttention } from './unfused-attention.ts';
import { probeWebGpu, type WebGpuProbe } from './webgpu-probe.ts';

export type { Provider };
export type ProviderChoice = Provider | 'auto';

export interface OpenSession {
  session: ort.InferenceSession;
  provider: Provider;
}

const require = createRequire(import.meta.url);
disableOnnxTelemetry(); // takes effect on the main thread (the generate CLI); the bridge sets it before its worker starts


/** What `auto` looks at on this machine; tests inject their own. */
export interface ProviderDetection {
  /** The backends this onnxruntime build lists. */
  backends(): readonly { name: string }[];
  cudaInstalled(): boolean;
  webgpuPossible(): boolean;
  /** Whether a WebGPU session opens and its fused attention is exact (probed once, in a child process). */
  webgpu(): Promise<WebGpuProbe>;
}

export const systemDetection: ProviderDetection = {
  backends: () => ort.listSupportedBackends?.() ?? [{ name: 'cpu', bundled: true }],
  cudaInstalled: () => cudaInstalled(),
  webgpuPossible: () => webgpuPossible(),
  webgpu: probeWebGpu,
};

/** Providers worth trying here, in PROVIDERS order: CUDA only after `npm run setup:cuda`, WebGPU only where a Vulkan loader exists (Linux). */
export function availableProviders(detect: ProviderDetection = systemDetection): Provider[] {
  const backends = detect.backends();
  const usable = (p: Provider) => (p === 'cuda' ? detect.cudaInstalled() : p === 'webgpu' ? detect.webgpuPossible() : true);
  return PROVIDERS.filter((p) => backends.some((b) => b.name === p) && usable(p));
}

/** How sessions are made: onnxruntime's, unless a test injects another. */
export interface SessionFactory {
  detect?: ProviderDetection;
  /** `model`: a path, or the bytes of a restated model whose external data lies in the original's folder. */
  create?: (model: string | Uint8Array, options: ort.InferenceSession.SessionOptions) => Promise<ort.InferenceSession>;
  /** Where `auto` says, once, why it skipped WebGPU (default: stderr). */
  notice?: (line: string) => void;
}

/** On Linux onnxruntime's WebGPU runs on Vulkan; without a loader it can only fail (noisily). */
function webgpuPossible(): boolean {
  if (process.platform !== 'linux') return true;
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(':'), '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu', '/usr/local/lib'];
  return dirs.some((d) => d && existsSync(join(d, 'libvulkan.so.1')));
}

/** The CUDA provider library fetched by `npm run setup:cuda`, if present. */
export function cudaProviderPath(): string | undefined {
  const binding = dirname(require.resolve('onnxruntime-node'));
  const root = dirname(binding);
  for (const napi of ['napi-v6', 'napi-v3']) {
    const lib = join(root, 'bin', napi, process.platform, process.arch, 'libonnxruntime_providers_cuda.so');
    if (existsSync(lib)) return lib;
  }
  return undefined;
}

const cudaInstalled = (): boolean => cudaProviderPath() !== undefined;

let toldWhyNotWebGpu = false;

/**
 * What a WebGPU session opens: probed first (once per process, in a child), so a machine without a
 * usable adapter never shows Vulkan's messages (`auto` says once why it skipped WebGPU); where the
 * adapter's fused attention is wrong, the model's bytes with attention restated, its external
 * weights read from its own folder.
 */
async function webgpuModel(modelPath: string, auto: boolean, factory: SessionFactory, detect: ProviderDetection): Promise<{ model: string | Uint8Array; folder?: string }> {
  const probe = await detect.webgpu();
  if (!probe.usable) {
    if (auto && !toldWhyNotWebGpu) {
      toldWhyNotWebGpu = true;
      (factory.notice ?? ((line) => console.error(line)))(`WebGPU not used: ${probe.reason}`);
    }
    throw new Error(probe.reason);
  }
  if (probe.fusedAttentionExact) return { model: modelPath };
  const restated = unfuseAttention(readFileSync(modelPath), modelPath);
  return restated.rewritten ? { model: restated.bytes, folder: dirname(modelPath) } : { model: modelPath };
}

export async function openSession(modelPath: string, choice: ProviderChoice = 'cpu', options: ort.InferenceSession.SessionOptions = {}, factory: SessionFactory = {}): Promise<OpenSession> {
  const detect = factory.detect ?? systemDetection;
  const candidates = choice === 'auto' ? availableProviders(detect) : [choice];
  const create = factory.create ?? ((model, opts) => (typeof model === 'string' ? ort.InferenceSession.create(model, opts) : ort.InferenceSession.create(model, opts)));
  const errors: string[] = [];
  for (const provider of candidates) {
    try {
      const { model, folder } = provider === 'webgpu' ? await webgpuModel(modelPath, choice === 'auto', factory, detect) : { model: modelPath };
      const extra = folder ? { ...options.extra, session: { ...(options.extra?.session as object | undefined), model_external_initializers_file_folder_path: folder } } : options.extra;
      const session = await create(model, {
        graphOptimizationLevel: 'all',
        // Errors only: WebGPU sessions warn that shape ops run on the CPU, which is by design.
        logSeverityLevel: 3,
        ...options,
        ...(extra ? { extra } : {}),
        executionProviders: [provider],
      });
      return { session, provider };
    } catch (e) {
      errors.push(`${provider}: ${(e as Error).message}`);
    }
  }
  throw new Error(`could not open ${modelPath} on ${candidates.join(', ')}:\n${errors.join('\n')}`);
}

/** A float tensor in the graph's working precision (float16 tensors carry IEEE half bits). */
export function floatTensor(data: Float32Array, dims: readonly number[], precision: 'float32' | 'float16'): ort.Tensor {
  return precision === 'float16' ? new ort.Tensor('float16', float32ToHalves(data), dims) : new ort.Tensor('float32', data, dims);
}

/** Any float output as float32 values. */
export function floatsOf(t: ort.Tensor): Float32Array {
  if (t.type === 'float32') return t.data as Float32Array;
  if (t.type === 'float16') {
    const d = t.data as ArrayLike<number>;
    return d instanceof Uint16Array ? halvesToFloat32(d) : Float32Array.from(d);
  }
  throw new TypeError(`expected a float tensor, got ${t.type}`);
}

export { ort };
