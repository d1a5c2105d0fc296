/**
 * Stand-ins for the real FLUX.1-dev and ART_v1.0 folders at full size: the real files of
 * test/fixtures/flux-dev (configs, the two sharded index files, tokenizers) plus shards whose
 * headers list the real index's tensor names at their full-size shapes (bf16), and whose data are
 * holes (the file is truncated to its full length, so it takes no disk). Only `--check` and
 * structure builds may use them: reading a tensor gives zeros.
 */
import { closeSync, cpSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { readHeader, safetensorsPrefix } from '../../gpu-server/onnx/safetensors.ts';
import { GOLDEN } from '../pipeline/golden-data.ts';
import { FLUX_DEV } from './hf-file-shape.ts';

type Shapes = Record<string, number[]>;
const reference = JSON.parse(readFileSync(new URL('../fixtures/reference/full-size-keys.json', import.meta.url), 'utf8')) as Record<'transformer' | 'vae' | 'transp_vae', { config: Record<string, unknown>; keys: Shapes }>;

const weightMap = (rel: string): Record<string, string> => (JSON.parse(readFileSync(join(FLUX_DEV, rel), 'utf8')) as { weight_map: Record<string, string> }).weight_map;

/** The transformer's names from FLUX.1-dev's real index, shapes from the reference (ART adds layer_pe). */
export function transformerShapes(): Shapes {
  const out: Shapes = {};
  for (const name of Object.keys(weightMap('transformer/diffusion_pytorch_model.safetensors.index.json'))) {
    const shape = reference.transformer.keys[name];
    if (!shape) throw new Error(`FLUX.1-dev's index lists ${name}, which the full-size reference does not`);
    out[name] = shape;
  }
  return out;
}

/** A T5 v1.1 XXL encoder tensor's shape, by its name (or its name within a block). */
export function t5XxlShape(name: string): number[] {
  const [d, inner, ff, vocab, heads, buckets] = [4096, 4096, 10240, 32128, 64, 32];
  if (name === 'shared.weight' || name === 'encoder.embed_tokens.weight') return [vocab, d];
  if (name.endsWith('relative_attention_bias.weight')) return [buckets, heads];
  if (/SelfAttention\.[qkv]\.weight$/.test(name)) return [inner, d];
  if (name.endsWith('SelfAttention.o.weight')) return [d, inner];
  if (/wi_[01]\.weight$/.test(name)) return [ff, d];
  if (name.endsWith('wo.weight')) return [d, ff];
  if (name.endsWith('layer_norm.weight')) return [d];
  throw new Error(`unexpected T5 key ${name}`);
}

/** T5-XXL's names from the real index, shapes from T5 v1.1 XXL's sizes. */
export function t5Shapes(): Shapes {
  return Object.fromEntries(Object.keys(weightMap('text_encoder_2/model.safetensors.index.json')).map((n) => [n, t5XxlShape(n)]));
}

/** CLIP-L's names (the golden text model's, 12 layers; FLUX.1-dev ships no index for it), CLIP-L's shapes. */
export function clipShapes(): Shapes {
  const [d, mlp, vocab, pos, layers] = [768, 3072, 49408, 77, 12];
  const shapeOf = (suffix: string): number[] => {
    if (suffix === 'embeddings.token_embedding.weight') return [vocab, d];
    if (suffix === 'embeddings.position_embedding.weight') return [pos, d];
    if (suffix.endsWith('mlp.fc1.weight')) return [mlp, d];
    if (suffix.endsWith('mlp.fc1.bias')) return [mlp];
    if (suffix.endsWith('mlp.fc2.weight')) return [d, mlp];
    if (suffix.endsWith('proj.weight')) return [d, d];
    if (suffix.endsWith('.bias') || suffix.endsWith('.weight')) return [d]; // biases and LayerNorms
    throw new Error(`unexpected CLIP key ${suffix}`);
  };
  const out: Shapes = {};
  for (const name of readHeader(join(GOLDEN, 'clip_text', 'weights.safetensors')).tensors.keys()) {
    const m = /^text_model\.encoder\.layers\.(\d+)\.(.*)$/.exec(name);
    if (!m) out[name] = shapeOf(name.slice('text_model.'.length));
    else if (m[1] === '0') for (let i = 0; i < layers; i++) out[`text_model.encoder.layers.${i}.${m[2]}`] = shapeOf(m[2]);
  }
  return out;
}

/** A safetensors file whose header lists `shapes` (bf16) and whose data is a hole. */
export function writeStandInShard(file: string, shapes: Shapes, dtype: 'BF16' | 'F32' = 'BF16'): void {
  const { prefix, dataBytes } = safetensorsPrefix(Object.entries(shapes).map(([name, shape]) => [name, dtype, shape]));
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, prefix);
    ftruncateSync(fd, prefix.length + dataBytes);
  } finally {
    closeSync(fd);
  }
}

/** Shards as the real index places them. */
function writeIndexedShards(dir: string, indexRel: string, shapes: Shapes): void {
  const map = weightMap(indexRel);
  const byShard = new Map<string, Shapes>();
  for (const [name, shard] of Object.entries(map)) byShard.set(shard, { ...byShard.get(shard), [name]: shapes[name] });
  for (const [shard, part] of byShard) writeStandInShard(join(dir, shard), part);
}

/**
 * `<root>/FLUX.1-dev`: the real folder with stand-in shards; `<root>/ART_v1.0`: ART's layout
 * (FLUX's transformer config + max_layer_num, its shards with layer_pe, the ViT-B/32 transp_vae);
 * `<root>/layer_pe.safetensors`.
 */
export function writeStandInFolders(root: string): { flux: string; art: string; layerPe: string } {
  const flux = join(root, 'FLUX.1-dev');
  cpSync(FLUX_DEV, flux, { recursive: true });
  const transformer = transformerShapes();
  writeIndexedShards(join(flux, 'transformer'), 'transformer/diffusion_pytorch_model.safetensors.index.json', transformer);
  writeIndexedShards(join(flux, 'text_encoder_2'), 'text_encoder_2/model.safetensors.index.json', t5Shapes());
  writeStandInShard(join(flux, 'text_encoder', 'model.safetensors'), clipShapes());
  writeStandInShard(join(flux, 'vae', 'diffusion_pytorch_model.safetensors'), reference.vae.keys);

  const art = join(root, 'ART_v1.0');
  mkdirSync(join(art, 'transformer'), { recursive: true });
  mkdirSync(join(art, 'transp_vae'), { recursive: true });
  const config = JSON.parse(readFileSync(join(FLUX_DEV, 'transformer', 'config.json'), 'utf8')) as Record<string, unknown>;
  cpSync(join(FLUX_DEV, 'transformer', 'config.json'), join(art, 'transformer', 'config.json'));
  writeFileJson(join(art, 'transformer', 'config.json'), { ...config, _class_name: 'CustomFluxTransformer2DModel', max_layer_num: 52 });
  writeStandInShard(join(art, 'transformer', 'diffusion_pytorch_model.safetensors'), { ...transformer, layer_pe: reference.transformer.keys.layer_pe });
  writeStandInShard(join(art, 'transp_vae', 'diffusion_pytorch_model.safetensors'), reference.transp_vae.keys);
  const layerPe = join(root, 'layer_pe.safetensors');
  writeStandInShard(layerPe, { layer_pe: reference.transformer.keys.layer_pe }, 'F32');
  return { flux, art, layerPe };
}

function writeFileJson(file: string, value: unknown): void {
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, JSON.stringify(value, null, 2));
  } finally {
    closeSync(fd);
  }
}

/** Alimama's Inpainting-Alpha ControlNet blocks in the stand-in (the real config.json's count is read, whatever it is). */
export const STAND_IN_ADAPTER_BLOCKS = 6;
/** The stand-in LoRAs' rank (CLD trains rank 64; the rank changes no structure, only the test's memory). */
export const STAND_IN_LORA_RANK = 8;

/** CLD's LoRA targets (set_lora_into_transformer) in `blocks` double and `single` single blocks, as diffusers names them. */
function cldLoraModules(blocks: number, single: number): string[] {
  const double = ['attn.to_q', 'attn.to_k', 'attn.to_v', 'attn.to_out.0', 'attn.add_q_proj', 'attn.add_k_proj', 'attn.add_v_proj', 'attn.to_add_out'];
  return [
    ...Array.from({ length: blocks }, (_, i) => double.map((m) => `transformer_blocks.${i}.${m}`)).flat(),
    ...Array.from({ length: single }, (_, i) => ['attn.to_q', 'attn.to_k', 'attn.to_v', 'proj_out'].map((m) => `single_transformer_blocks.${i}.${m}`)).flat(),
  ];
}

/** A diffusers LoRA file over `modules` of `shapes` (the `transformer.` prefix, no alphas), data as holes. */
function writeStandInLora(file: string, modules: string[], shapes: Shapes): void {
  const out: Shapes = {};
  for (const m of modules) {
    const [rows, cols] = shapes[`${m}.weight`];
    out[`transformer.${m}.lora_A.weight`] = [STAND_IN_LORA_RANK, cols];
    out[`transformer.${m}.lora_B.weight`] = [rows, STAND_IN_LORA_RANK];
  }
  writeStandInShard(file, out, 'F32');
}

/**
 * `<root>/FLUX.1-dev-Controlnet-Inpainting-Alpha` (a FluxControlNetModel folder: the FLUX
 * transformer's embedders and first blocks by the reference's names and shapes, the
 * controlnet_* Linears, config.json with a diffusers FluxControlNetModel's fields) and
 * `<root>/CLD/ckpt/decouple_LoRA` (the adapter and transformer LoRAs over CLD's targets,
 * `layer_pe`), at full size with holes for data.
 */
export function writeStandInCld(root: string): { adapter: string; adapterLora: string; layerLora: string; layerPe: string } {
  const t = reference.transformer;
  const d = (t.config.num_attention_heads as number) * (t.config.attention_head_dim as number);
  const adapter = join(root, 'FLUX.1-dev-Controlnet-Inpainting-Alpha');
  mkdirSync(adapter, { recursive: true });
  const config = { _class_name: 'FluxControlNetModel', _diffusers_version: '0.30.0.dev0', ...Object.fromEntries(Object.entries(t.config).filter(([k]) => k !== 'max_layer_num')), conditioning_embedding_channels: null, extra_condition_channels: 4, num_layers: STAND_IN_ADAPTER_BLOCKS, num_mode: null, num_single_layers: 0 };
  writeFileJson(join(adapter, 'config.json'), config);
  const shapes: Shapes = {};
  for (const [name, shape] of Object.entries(t.keys)) {
    const block = /^transformer_blocks\.(\d+)\./.exec(name);
    const stem = /^(x_embedder|context_embedder|time_text_embed)\./.test(name);
    if (stem || (block && Number(block[1]) < STAND_IN_ADAPTER_BLOCKS)) shapes[name] = shape;
  }
  for (let i = 0; i < STAND_IN_ADAPTER_BLOCKS; i++) Object.assign(shapes, { [`controlnet_blocks.${i}.weight`]: [d, d], [`controlnet_blocks.${i}.bias`]: [d] });
  Object.assign(shapes, { 'controlnet_x_embedder.weight': [d, 64 + 4], 'controlnet_x_embedder.bias': [d] });
  writeStandInShard(join(adapter, 'diffusion_pytorch_model.safetensors'), shapes);

  const decouple = join(root, 'CLD', 'ckpt', 'decouple_LoRA');
  for (const part of ['adapter', 'transformer']) mkdirSync(join(decouple, part), { recursive: true });
  writeStandInLora(join(decouple, 'adapter', 'pytorch_lora_weights.safetensors'), cldLoraModules(STAND_IN_ADAPTER_BLOCKS, 0), shapes);
  writeStandInLora(join(decouple, 'transformer', 'pytorch_lora_weights.safetensors'), cldLoraModules(t.config.num_layers as number, t.config.num_single_layers as number), t.keys);
  const layerPe = join(decouple, 'layer_pe.safetensors');
  writeStandInShard(layerPe, { layer_pe: t.keys.layer_pe }, 'F32');
  return { adapter, adapterLora: join(decouple, 'adapter'), layerLora: join(decouple, 'transformer'), layerPe };
}
