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
