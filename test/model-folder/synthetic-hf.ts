/**
 * Synthetic Hugging Face folders in the real ART_v1.0 and FLUX.1-dev layouts, holding the tiny
 * golden models' weights under the official key names, stored as bf16, with the transformer and
 * T5 sharded behind index files: what the converter must read.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { floatToBf16 } from '../../gpu-server/onnx/half.ts';
import { Checkpoint, writeSafetensors, type TensorToWrite } from '../../gpu-server/onnx/safetensors.ts';
import { writeTinyClipTokenizer, writeTinyT5Tokenizer } from '../../gpu-server/text/tokenizer-tiny.ts';
import { GOLDEN } from '../pipeline/golden-data.ts';
import { floatKeys } from './hf-file-shape.ts';

const bf16 = (data: Float32Array, shape: number[]): TensorToWrite => ({ dtype: 'BF16', shape, data: Uint16Array.from(data, floatToBf16) });

function tensorsOf(caseName: string, replace: Record<string, { shape: number[]; data: Float32Array }> = {}): Record<string, TensorToWrite> {
  const ckpt = Checkpoint.open(join(GOLDEN, caseName, 'weights.safetensors'));
  const out: Record<string, TensorToWrite> = {};
  for (const key of ckpt.keys()) {
    const r = replace[key];
    out[key] = r ? bf16(r.data, r.shape) : bf16(ckpt.readFloat32(key), ckpt.info(key).shape);
  }
  return out;
}

function writeSharded(dir: string, base: string, tensors: Record<string, TensorToWrite>, shards: number): void {
  const keys = Object.keys(tensors);
  const per = Math.ceil(keys.length / shards);
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `${base}-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = Object.fromEntries(keys.slice(s * per, (s + 1) * per).map((k) => [k, tensors[k]]));
    writeSafetensors(join(dir, file), part);
    for (const k of Object.keys(part)) weightMap[k] = file;
  }
  writeFileSync(join(dir, `${base}.safetensors.index.json`), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}

/**
 * A golden config with overrides, numbers the source writes as floats still written as floats
 * (`1.0`, not JSON.stringify's `1`: transformers' strict configs type-check float fields).
 */
function config(caseName: string, over: Record<string, unknown> = {}, drop: string[] = []): string {
  const file = join(GOLDEN, caseName, 'config.json');
  const floats = floatKeys(file);
  const value: Record<string, unknown> = { ...JSON.parse(readFileSync(file, 'utf8')), ...over };
  for (const key of drop) delete value[key];
  const marked = JSON.stringify(value, (key, v) => (floats.has(key) && Number.isInteger(v) ? `@float:${v}` : v), 1);
  return marked.replace(/"@float:(-?\d+)"/g, '$1.0');
}

/** Writes `<root>/ART_v1.0` and `<root>/FLUX.1-dev`; returns their paths. */
export function writeSyntheticHf(root: string): { art: string; flux: string } {
  const art = join(root, 'ART_v1.0');
  const flux = join(root, 'FLUX.1-dev');
  const dirs = {
    transformer: join(art, 'transformer'), transp: join(art, 'transp_vae'),
    clip: join(flux, 'text_encoder'), t5: join(flux, 'text_encoder_2'), vae: join(flux, 'vae'), scheduler: join(flux, 'scheduler'),
    tok: join(flux, 'tokenizer'), tok2: join(flux, 'tokenizer_2'),
  };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });

  // The golden transformer takes pooled vectors of 24; CLIP's width is 32: widen that one input.
  const pooledKey = 'time_text_embed.text_embedder.linear_1.weight';
  const pooledWeight = Float32Array.from({ length: 32 * 32 }, (_, i) => 0.05 * Math.sin(i * 1.7));
  writeFileSync(join(dirs.transformer, 'config.json'), config('transformer', { pooled_projection_dim: 32, _class_name: 'CustomFluxTransformer2DModel' }));
  writeSharded(dirs.transformer, 'diffusion_pytorch_model', tensorsOf('transformer', { [pooledKey]: { shape: [32, 32], data: pooledWeight } }), 3);

  writeFileSync(join(dirs.transp, 'config.json'), config('transp_vae'));
  writeSafetensors(join(dirs.transp, 'diffusion_pytorch_model.safetensors'), tensorsOf('transp_vae'));

  writeFileSync(join(dirs.clip, 'config.json'), config('clip_text'));
  writeSafetensors(join(dirs.clip, 'model.safetensors'), tensorsOf('clip_text'));
  // T5 in transformers' newer form, as FLUX.1-dev's real text_encoder_2/config.json has it.
  writeFileSync(join(dirs.t5, 'config.json'), config('t5_encoder', { dense_act_fn: 'gelu_pytorch_tanh', is_gated_act: true }, ['feed_forward_proj']));
  writeSharded(dirs.t5, 'model', tensorsOf('t5_encoder'), 2);
  writeFileSync(join(dirs.vae, 'config.json'), config('vae'));
  writeSafetensors(join(dirs.vae, 'diffusion_pytorch_model.safetensors'), tensorsOf('vae'));
  writeFileSync(join(dirs.scheduler, 'scheduler_config.json'), config('scheduler', { _class_name: 'FlowMatchEulerDiscreteScheduler' }));
  writeTinyClipTokenizer(dirs.tok, 1000);
  writeTinyT5Tokenizer(dirs.tok2, 1000);
  return { art, flux };
}
