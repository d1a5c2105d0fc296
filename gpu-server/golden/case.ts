/**
 * A golden case directory: `case.json` names its kind; each kind has a checker module
 * `<kind>-case.ts` exporting `check(dir)`. Shared helpers for the checkers live here.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAll, toFloat32 } from '../onnx/safetensors.ts';
import type { Layout } from '../pipeline/types.ts';
import type { GoldenReport } from './compare.ts';

export const GOLDEN_KINDS = ['transformer', 'transp_vae', 'vae', 'clip_text', 't5_encoder', 'scheduler', 'pipeline'] as const;
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
  if (!existsSync(file)) throw new GoldenError(`${dir}: no case.json here; point at a golden case folder (like ../shared/golden/transformer)`);
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

export async function checkCase(dir: string): Promise<GoldenReport> {
  const c = readCase(dir);
  const mod = (await import(`./${c.kind}-case.ts`)) as { check(dir: string): Promise<GoldenReport> };
  return mod.check(dir);
}
