/**
 * A golden case directory: `case.json` names its kind; each kind has a checker module
 * `<kind>-case.ts` exporting `check(dir)`. Shared helpers for the checkers live here.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Layout } from '../../domain/layout.ts';
import type { GraphBuilder } from '../onnx/graph.ts';
import { writeModel } from '../onnx/onnx-writer.ts';
import { loadAll, toFloat32 } from '../onnx/safetensors.ts';
import { floatsOf, openSession, type ort, type Provider } from '../onnx/session.ts';
import type { GoldenReport } from './compare.ts';

export const GOLDEN_KINDS = ['transformer', 'transp_vae', 'vae', 'clip_text', 't5_encoder', 'scheduler', 'pipeline', 'cld_adapter', 'cld_pipeline', 'cld_lora'] as const;
export type GoldenKind = (typeof GOLDEN_KINDS)[number];

export interface CaseJson {
  kind: GoldenKind;
  width?: number;
  height?: number;
  boxes?: [number, number, number, number][];
  [key: string]: unknown;
}

export class GoldenError extends Error {
  override name = 'GoldenError';
}

export function readCase(dir: string): CaseJson {
  const file = join(dir, 'case.json');
  if (!existsSync(file)) throw new GoldenError(`${dir}: no case.json here; point at a golden case folder (like test/fixtures/golden/transformer)`);
  let json: CaseJson;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new GoldenError(`${file}: not valid JSON`);
  }
  if (!GOLDEN_KINDS.includes(json.kind)) throw new GoldenError(`${file}: unknown kind ${JSON.stringify(json.kind)}; known kinds: ${GOLDEN_KINDS.join(', ')}`);
  return json;
}

export function caseLayout(c: CaseJson, file: string): Layout {
  if (!c.width || !c.height || !Array.isArray(c.boxes)) throw new GoldenError(`${file}: a ${c.kind} case needs width, height and boxes`);
  return { width: c.width, height: c.height, boxes: c.boxes };
}

export const readJson = (file: string): unknown => JSON.parse(readFileSync(file, 'utf8'));

/** Float tensors of a small safetensors file by name. */
export function readFloats(file: string): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, { info, bytes }] of loadAll(file)) {
    if (info.dtype === 'F32' || info.dtype === 'F16' || info.dtype === 'BF16') out.set(name, { shape: info.shape, data: toFloat32(info, bytes) });
  }
  return out;
}

/** An I64 tensor of a small safetensors file (token ids). */
export function readInt64(file: string, name: string): { shape: number[]; data: BigInt64Array } {
  const t = loadAll(file).get(name);
  if (!t) throw new GoldenError(`${file}: tensor "${name}" is missing`);
  if (t.info.dtype !== 'I64') throw new GoldenError(`${file}: tensor "${name}" is ${t.info.dtype}, expected I64 token ids`);
  const b = t.bytes;
  return { shape: t.info.shape, data: new BigInt64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) };
}

export function need<T>(map: Map<string, T>, name: string, file: string): T {
  const v = map.get(name);
  if (v === undefined) throw new GoldenError(`${file}: tensor "${name}" is missing`);
  return v;
}

/** Runs `fn` with a scratch folder that is removed afterwards. */
export async function withScratch<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'art-golden-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Writes `graph` to a scratch folder, opens it on `provider` (the CPU unless asked: the golden
 * bar), runs it once with `feeds` and returns every output (float outputs as float32). Each
 * golden check goes through here.
 */
export async function runGraphOnce(graph: GraphBuilder, feeds: Record<string, ort.Tensor>, provider: Provider = 'cpu'): Promise<Record<string, Float32Array>> {
  return withScratch(async (scratch) => {
    const path = join(scratch, `${graph.name}.onnx`);
    writeModel(graph, path);
    const { session } = await openSession(path, provider);
    try {
      const out = await session.run(feeds);
      return Object.fromEntries(Object.entries(out).map(([name, t]) => [name, floatsOf(t)]));
    } finally {
      await session.release();
    }
  });
}

/** Checks a case folder with its kind's checker, its graphs run on `provider`. */
export async function checkCase(dir: string, provider: Provider = 'cpu'): Promise<GoldenReport> {
  const c = readCase(dir);
  const mod = (await import(`./${c.kind}-case.ts`)) as { check(dir: string, provider: Provider): Promise<GoldenReport> };
  return mod.check(dir, provider);
}
