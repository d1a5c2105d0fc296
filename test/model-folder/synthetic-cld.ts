/**
 * The decomposition downloads in their real layouts, holding the `cld_adapter` golden models (so a
 * converted folder can be held to the `cld_lora` golden):
 * - `<root>/FLUX.1-dev`: writeSyntheticHf's, with `transformer/` replaced by cld_adapter's
 *   transformer (FLUX's config and key names, no layer_pe, float32, sharded behind an index);
 * - `<root>/FLUX.1-dev-Controlnet-Inpainting-Alpha`: `config.json` with the fields of a diffusers
 *   `FluxControlNetModel` config (the class name, `extra_condition_channels` 4, `num_mode` null, the
 *   block counts of cld_adapter's adapter) and `diffusion_pytorch_model.safetensors`;
 * - `<root>/CLD/ckpt`: thuteam/CLD's tree (README "Prepare model ckpt"): `decouple_LoRA/{adapter,
 *   transformer}/pytorch_lora_weights.safetensors`, `decouple_LoRA/layer_pe.pth`, `pre_trained_LoRA/`
 *   (the cld_lora files themselves) and `trans_vae/0008000.pt` (`{'model': state_dict}`, the golden
 *   decoder, its tiny config beside it);
 * - `<root>/art_layer_pe.safetensors`: generation's layer_pe (cld_adapter's transformer's own).
 * Both models take the golden's pooled vector of 24 widened to CLIP's 32 with zero columns, so the
 * golden inputs padded with zeros give the golden outputs.
 */
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint, writeSafetensors, type TensorToWrite } from '../../gpu-server/onnx/safetensors.ts';
import { GOLDEN } from '../pipeline/golden-data.ts';
import { writeSyntheticHf } from './synthetic-hf.ts';

const TORCH = new URL('../fixtures/torch-checkpoints/', import.meta.url).pathname;
export const CLD_ADAPTER = join(GOLDEN, 'cld_adapter');
export const CLD_LORA = join(GOLDEN, 'cld_lora');
const POOLED_KEY = 'time_text_embed.text_embedder.linear_1.weight';
export const CLIP_WIDTH = 32;

/** A golden state_dict, float32, its pooled input widened to CLIP's width with zero columns; `drop` left out. */
function widened(file: string, drop: string[] = []): Record<string, TensorToWrite> {
  const ckpt = Checkpoint.open(file);
  const out: Record<string, TensorToWrite> = {};
  for (const key of ckpt.keys()) {
    if (drop.includes(key)) continue;
    const shape = ckpt.info(key).shape;
    let data = ckpt.readFloat32(key);
    if (key === POOLED_KEY) {
      const [rows, cols] = shape;
      const wide = new Float32Array(rows * CLIP_WIDTH);
      for (let r = 0; r < rows; r++) wide.set(data.subarray(r * cols, (r + 1) * cols), r * CLIP_WIDTH);
      data = wide;
      out[key] = { dtype: 'F32', shape: [rows, CLIP_WIDTH], data };
    } else out[key] = { dtype: 'F32', shape, data };
  }
  return out;
}

function writeSharded(dir: string, tensors: Record<string, TensorToWrite>, shards: number): void {
  const keys = Object.keys(tensors);
  const per = Math.ceil(keys.length / shards);
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `diffusion_pytorch_model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = Object.fromEntries(keys.slice(s * per, (s + 1) * per).map((k) => [k, tensors[k]]));
    writeSafetensors(join(dir, file), part);
    for (const k of Object.keys(part)) weightMap[k] = file;
  }
  writeFileSync(join(dir, 'diffusion_pytorch_model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}

export interface CldDownloads {
  flux: string;
  adapter: string;
  ckpt: string;
  artLayerPe: string;
}

/** The flags `npm run convert` takes for these downloads (both jobs). */
export const cldSources = (d: CldDownloads) => ({
  flux: d.flux,
  transformerBase: d.flux,
  layerPe: d.artLayerPe,
  transpVae: join(d.ckpt, 'trans_vae', '0008000.pt'),
  loras: [{ file: join(d.ckpt, 'pre_trained_LoRA', 'pytorch_lora_weights.safetensors'), scale: 1 }],
  adapter: d.adapter,
  adapterLora: join(d.ckpt, 'decouple_LoRA', 'adapter'),
  layerLora: join(d.ckpt, 'decouple_LoRA', 'transformer'),
  decomposeLayerPe: join(d.ckpt, 'decouple_LoRA', 'layer_pe.pth'),
});

export function writeSyntheticCld(root: string): CldDownloads {
  const { flux } = writeSyntheticHf(root);
  const configs = JSON.parse(readFileSync(join(CLD_ADAPTER, 'config.json'), 'utf8')) as { transformer: Record<string, unknown>; adapter: Record<string, unknown> };

  const transformerDir = join(flux, 'transformer');
  for (const f of readdirSync(transformerDir)) rmSync(join(transformerDir, f));
  const { max_layer_num: _, ...fluxConfig } = configs.transformer;
  writeFileSync(join(transformerDir, 'config.json'), JSON.stringify({ _class_name: 'FluxTransformer2DModel', _diffusers_version: '0.30.0.dev0', ...fluxConfig, pooled_projection_dim: CLIP_WIDTH }, null, 2));
  const transformer = widened(join(CLD_ADAPTER, 'transformer.safetensors'));
  const { layer_pe: layerPe, ...base } = transformer;
  writeSharded(transformerDir, base, 3);
  const artLayerPe = join(root, 'art_layer_pe.safetensors');
  writeSafetensors(artLayerPe, { layer_pe: layerPe });

  const adapter = join(root, 'FLUX.1-dev-Controlnet-Inpainting-Alpha');
  mkdirSync(adapter, { recursive: true });
  const a = configs.adapter;
  const adapterConfig = {
    _class_name: 'FluxControlNetModel',
    _diffusers_version: '0.30.0.dev0',
    attention_head_dim: a.attention_head_dim,
    axes_dims_rope: a.axes_dims_rope,
    conditioning_embedding_channels: null,
    extra_condition_channels: a.extra_condition_channels,
    guidance_embeds: a.guidance_embeds,
    in_channels: a.in_channels,
    joint_attention_dim: a.joint_attention_dim,
    num_attention_heads: a.num_attention_heads,
    num_layers: a.num_layers,
    num_mode: null,
    num_single_layers: a.num_single_layers,
    patch_size: a.patch_size,
    pooled_projection_dim: CLIP_WIDTH,
  };
  writeFileSync(join(adapter, 'config.json'), JSON.stringify(adapterConfig, null, 2));
  writeSafetensors(join(adapter, 'diffusion_pytorch_model.safetensors'), widened(join(CLD_ADAPTER, 'adapter.safetensors')));

  const ckpt = join(root, 'CLD', 'ckpt');
  mkdirSync(join(ckpt, 'trans_vae'), { recursive: true });
  cpSync(join(CLD_LORA, 'decouple_LoRA'), join(ckpt, 'decouple_LoRA'), { recursive: true });
  cpSync(join(CLD_LORA, 'pre_trained_LoRA'), join(ckpt, 'pre_trained_LoRA'), { recursive: true });
  cpSync(join(TORCH, 'transp_vae_golden.pt'), join(ckpt, 'trans_vae', '0008000.pt'));
  // The golden decoder is tiny: its config beside it (the real trans_vae/ has none: ART's ViT-B/32 defaults).
  cpSync(join(GOLDEN, 'transp_vae', 'config.json'), join(ckpt, 'trans_vae', 'config.json'));
  return { flux, adapter, ckpt, artLayerPe };
}
