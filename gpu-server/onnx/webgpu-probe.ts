/**
 * What onnxruntime's WebGPU provider does on this machine, found once per process in a child
 * process, so that the messages Vulkan and Dawn write straight to stderr ("XDG_RUNTIME_DIR is
 * invalid...", "Vulkan shaderUniform*ArrayDynamicIndexing required" from an adapter Dawn refuses)
 * stay out of the user's terminal: whether a session opens at all, and whether its fused
 * MultiHeadAttention is exact at 32 tokens, the first length on its one-kernel path (it is not on
 * SwiftShader; see unfused-attention.ts and docs/webgpu.md).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder, memoryWeights } from './graph.ts';
import { attention } from './nn.ts';
import { buildModelProto } from './onnx-writer.ts';

export type WebGpuProbe =
  | { usable: false; reason: string }
  /** `attentionError`: the fused attention's largest error relative to the largest reference value. */
  | { usable: true; fusedAttentionExact: boolean; attentionError: number };

/** The probe's attention: 32 query tokens (the first the fused one-kernel path takes), 2 heads of 8. */
export const PROBE_TOKENS = 32;
const HEADS = 2;
const HEAD_DIM = 8;
/** float32 attention is exact to ~1e-7; the broken kernel is 10-20% off. */
const EXACT = 1e-4;
const PROBE_TIMEOUT_MS = 120_000;

/**
 * Wayland's client library (which Vulkan loads for its window-system support) prints
 * "XDG_RUNTIME_DIR is invalid or not set" when the variable does not name a folder. onnxruntime
 * never shows a window: a private empty folder is enough. Changes only this process's environment.
 */
export function quietVulkanEnvironment(env: NodeJS.ProcessEnv = process.env): void {
  const dir = env.XDG_RUNTIME_DIR;
  if (dir && existsSync(dir) && statSync(dir).isDirectory()) return;
  env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), 'art-xdg-'));
}

let cached: Promise<WebGpuProbe> | undefined;

/** Probes WebGPU once per process (a child process; a few seconds on a CPU-only Vulkan). */
export function probeWebGpu(): Promise<WebGpuProbe> {
  return (cached ??= runProbe());
}

function probeInputs(): { model: Uint8Array; q: Float32Array; k: Float32Array; v: Float32Array } {
  const g = new GraphBuilder('webgpu_probe', 'float32', memoryWeights('probe', new Map()));
  const dims = [1, PROBE_TOKENS, HEADS * HEAD_DIM];
  const [q, k, v] = ['q', 'k', 'v'].map((name) => g.input(name, 'float', dims));
  g.output(attention(g, q, k, v, HEADS, { headDim: HEAD_DIM }), 'out', 'float', dims);
  const wave = (phase: number) => Float32Array.from({ length: PROBE_TOKENS * HEADS * HEAD_DIM }, (_, i) => Math.sin(i * 0.37 + phase) * 2);
  return { model: buildModelProto(g, 'none'), q: wave(0), k: wave(1), v: wave(2) };
}

/** Plain attention in float64: `[1, S, H*d]` in and out. */
export function referenceAttention(q: Float32Array, k: Float32Array, v: Float32Array, tokens: number, heads: number, headDim: number): Float64Array {
  const w = heads * headDim;
  const out = new Float64Array(tokens * w);
  const scale = 1 / Math.sqrt(headDim);
  for (let h = 0; h < heads; h++) {
    for (let s = 0; s < tokens; s++) {
      const scores = Array.from({ length: tokens }, (_, t) => {
        let dot = 0;
        for (let j = 0; j < headDim; j++) dot += q[s * w + h * headDim + j] * k[t * w + h * headDim + j];
        return dot * scale;
      });
      const max = Math.max(...scores);
      const e = scores.map((x) => Math.exp(x - max));
      const z = e.reduce((a, b) => a + b, 0);
      for (let j = 0; j < headDim; j++) out[s * w + h * headDim + j] = e.reduce((acc, p, t) => acc + (p / z) * v[t * w + h * headDim + j], 0);
    }
  }
  return out;
}

/** The child: opens the probe model on WebGPU, runs it, answers one JSON line on stdout. */
const CHILD = `
const ort = require(process.argv[1]);
let input = '';
process.stdin.on('data', (c) => (input += c)).on('end', async () => {
  const { model, dims, q, k, v } = JSON.parse(input);
  try {
    const s = await ort.InferenceSession.create(Buffer.from(model, 'base64'), { executionProviders: ['webgpu'] });
    const t = (a) => new ort.Tensor('float32', Float32Array.from(a), dims);
    const out = await s.run({ q: t(q), k: t(k), v: t(v) });
    process.stdout.write(JSON.stringify({ ok: true, out: Array.from(out.out.data) }));
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, error: String((e && e.message) || e) }));
  }
});`;

async function runProbe(): Promise<WebGpuProbe> {
  quietVulkanEnvironment();
  const { model, q, k, v } = probeInputs();
  const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
  const answer = await new Promise<string>((resolve) => {
    const child = spawn(process.execPath, ['-e', CHILD, ortPath], { stdio: ['pipe', 'pipe', 'pipe'], timeout: PROBE_TIMEOUT_MS });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stderr.resume(); // Vulkan's and Dawn's messages: read and dropped
    child.on('error', (e) => resolve(JSON.stringify({ ok: false, error: e.message })));
    child.on('close', (code, signal) => resolve(out || JSON.stringify({ ok: false, error: signal ? `the probe was stopped (${signal})` : `the probe exited with code ${code}` })));
    child.stdin.end(JSON.stringify({ model: Buffer.from(model).toString('base64'), dims: [1, PROBE_TOKENS, HEADS * HEAD_DIM], q: [...q], k: [...k], v: [...v] }));
  });
  return judge(answer, referenceAttention(q, k, v, PROBE_TOKENS, HEADS, HEAD_DIM));
}

/** The child's answer against the reference. */
export function judge(answer: string, reference: Float64Array): WebGpuProbe {
  let parsed: { ok: boolean; error?: string; out?: number[] };
  try {
    parsed = JSON.parse(answer);
  } catch {
    return { usable: false, reason: `the WebGPU probe answered something unexpected: ${answer.slice(0, 200)}` };
  }
  if (!parsed.ok || !parsed.out) return { usable: false, reason: whyNot(parsed.error ?? 'unknown error') };
  if (parsed.out.length !== reference.length) return { usable: false, reason: `the WebGPU probe returned ${parsed.out.length} values, expected ${reference.length}` };
  let maxAbs = 0;
  let maxRef = 0;
  for (let i = 0; i < reference.length; i++) {
    const d = Math.abs(parsed.out[i] - reference[i]);
    maxAbs = Number.isNaN(d) ? Infinity : Math.max(maxAbs, d);
    maxRef = Math.max(maxRef, Math.abs(reference[i]));
  }
  const attentionError = maxAbs / maxRef;
  return { usable: true, fusedAttentionExact: attentionError <= EXACT, attentionError };
}

/** onnxruntime's message, restated with what to do. */
function whyNot(error: string): string {
  // onnxruntime's messages start with its source location and the failed check; keep what follows.
  const first = error.split('\n')[0].replace(/^.*? was false\. /, '').replace(/^\/onnxruntime_src\/\S+ /, '');
  if (/No supported adapters|Failed to get a WebGPU adapter/.test(error)) {
    return `no WebGPU adapter: Vulkan found no device that WebGPU (Dawn) accepts. Install your GPU's Vulkan driver (Linux), or use --provider cpu. (${first})`;
  }
  return `WebGPU did not start: ${first}`;
}
