/**
 * Opening the weight files a conversion reads, whatever their format: safetensors (one file, a
 * sharded set through its index, or a folder holding either) or a PyTorch checkpoint read by the
 * restricted reader (`.pt`/`.pth`/`.bin`/`.ckpt`, `file.pt#key` selecting a nested dict). Every
 * failure becomes a ModelFolderError naming what was being read.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint } from '../onnx/safetensors.ts';
import { isTorchFile, TorchCheckpoint } from '../onnx/torch-checkpoint.ts';
import { ModelFolderError } from './manifest.ts';

/** What the converter needs of any weight file: names, shapes, dtypes, float data on demand. */
export interface TensorFile {
  readonly source: string;
  readonly tensors: Map<string, { shape: number[]; dtype: string }>;
  readFloat32(name: string): Float32Array;
}

export function openTensorFile(spec: string, what: string): TensorFile {
  const path = spec.split('#')[0];
  if (!existsSync(path)) throw new ModelFolderError(`${path} is missing: ${what}`);
  try {
    if (isTorchFile(spec)) return autoSelect(TorchCheckpoint.open(spec), spec);
    if (statSync(path).isDirectory()) {
      const files = readdirSync(path);
      const torch = files.filter((f) => isTorchFile(f));
      // A folder of one PyTorch checkpoint and no safetensors (thuteam/CLD's trans_vae/).
      if (!files.some((f) => f.endsWith('.safetensors') || f.endsWith('.safetensors.index.json')) && torch.length === 1) return autoSelect(TorchCheckpoint.open(join(path, torch[0])), join(path, torch[0]));
    }
    return Checkpoint.open(spec);
  } catch (e) {
    if (e instanceof ModelFolderError) throw e;
    throw new ModelFolderError(`${what}: ${(e as Error).message}`);
  }
}

/** A training checkpoint with every weight under `model.` (CLD's trans_vae/*.pt): read that dict. */
function autoSelect(ckpt: TorchCheckpoint, spec: string): TensorFile {
  if (spec.includes('#')) return ckpt;
  const keys = ckpt.keys();
  if (keys.length > 0 && keys.every((k) => k.startsWith('model.'))) return TorchCheckpoint.open(`${spec}#model`);
  return ckpt;
}

export const elementsOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
