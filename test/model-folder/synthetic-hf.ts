/**
 * Synthetic Hugging Face folders in the real ART_v1.0 and FLUX.1-dev layouts, holding the tiny
 * golden models' weights under the official key names, stored as bf16 (the transformer as float32
 * on request), with the transformers and T5 sharded behind index files: what the converter must read.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { floatToBf16 } from '../../gpu-server/onnx/half.ts';
import { Checkpoint, writeSafetensors, type TensorToWrite } from '../../gpu-server/onnx/safetensors.ts';
import { writeTinyClipTokenizer, writeTinyT5Tokenizer } from '../../gpu-server/text/tokenizer-tiny.ts';
import { GOLDEN } from '../pipeline/golden-data.ts';
import { floatKeys } from './hf-file-shape.ts';

const bf16 = (data: Float32Array, shape: number[]): TensorToWrite => ({ dtype: 'BF16', shape, data: Uint16Array.from(data, floatToBf16) });
const f32 = (data: Float32Array, shape: number[]): TensorToWrite => ({ dtype: 'F32', shape, data });

function tensorsOf(caseName: string, replace: Record<string, { shape: number[]; data: Float32Array }> = {}, store = bf16): Record<string, TensorToWrite> {
  const ckpt = Checkpoint.open(join(GOLDEN, caseName, 'weights.safetensors'));
  const out: Record<string, TensorToWrite> = {};
  for (const key of ckpt.keys()) {
    const r = replace[key];
    out[key] = r ? store(r.data, r.shape) : store(ckpt.readFloat32(key), ckpt.info(key).shape);
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

/** Writes `<root>/ART_v1.0`, `<root>/FLUX.1-dev` and `<root>/layer_pe.safetensors`; returns their paths. */
export function writeSyntheticHf(root: string, options: { exactTransformer?: boolean } = {}): { art: string; flux: string; layerPe: string } {
  const art = join(root, 'ART_v1.0');
  const flux = join(root, 'FLUX.1-dev');
  const dirs = {
    transformer: join(art, 'transformer'), transp: join(art, 'transp_vae'),
    fluxTransformer: join(flux, 'transformer'),
    clip: join(flux, 'text_encoder'), t5: join(flux, 'text_encoder_2'), vae: join(flux, 'vae'), scheduler: join(flux, 'scheduler'),
    tok: join(flux, 'tokenizer'), tok2: join(flux, 'tokenizer_2'),
  };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });

  // The golden transformer takes pooled vectors of 24; CLIP's width is 32: widen that one input.
  // `exactTransformer`: with zero columns, so the golden inputs padded with zeros give the golden outputs.
  const pooledKey = 'time_text_embed.text_embedder.linear_1.weight';
  const golden = Checkpoint.open(join(GOLDEN, 'transformer', 'weights.safetensors')).readFloat32(pooledKey);
  const pooledWeight = Float32Array.from({ length: 32 * 32 }, (_, i) => (options.exactTransformer ? 0 : 0.05 * Math.sin(i * 1.7)));
  if (options.exactTransformer) for (let o = 0; o < 32; o++) pooledWeight.set(golden.subarray(o * 24, o * 24 + 24), o * 32);
  writeFileSync(join(dirs.transformer, 'config.json'), config('transformer', { pooled_projection_dim: 32, _class_name: 'CustomFluxTransformer2DModel' }));
  // `exactTransformer`: the transformer in float32 (the real one is bf16), so that converting it
  // with the golden LoRA files can be held to the transformer_lora golden at 1e-4.
  const transformer = tensorsOf('transformer', { [pooledKey]: { shape: [32, 32], data: pooledWeight } }, options.exactTransformer ? f32 : bf16);
  writeSharded(dirs.transformer, 'diffusion_pytorch_model', transformer, 3);
  // FLUX.1-dev's own transformer/: the same weights without layer_pe, FLUX's config (no
  // max_layer_num); ART's layer_pe beside it as its own file (thuteam/CLD ships layer_pe.pth).
  const { layer_pe: layerPe, ...fluxTransformer } = transformer;
  writeFileSync(join(dirs.fluxTransformer, 'config.json'), config('transformer', { pooled_projection_dim: 32, _class_name: 'FluxTransformer2DModel' }, ['max_layer_num']));
  writeSharded(dirs.fluxTransformer, 'diffusion_pytorch_model', fluxTransformer, 3);
  writeSafetensors(join(root, 'layer_pe.safetensors'), { layer_pe: layerPe });

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
  return { art, flux, layerPe: join(root, 'layer_pe.safetensors') };
}
