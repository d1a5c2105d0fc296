/**
 * CLD's adapter from the downloads as they come: alimama's `FLUX.1-dev-Controlnet-Inpainting-Alpha`
 * (a diffusers `FluxControlNetModel` folder: `config.json` + `diffusion_pytorch_model.safetensors`,
 * or shards behind an index), CLD's `decouple_LoRA/adapter` LoRA fused into it (diffusers format,
 * the adapter's modules under the `transformer.` prefix), and the decomposition's `layer_pe`, which
 * the adapter borrows from the transformer (CLD's `set_layerPE`). The block counts are the config's.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { checkAdapterFits, parseAdapterConfig, type AdapterConfig } from '../models/adapter.ts';
import type { TransformerConfig } from '../models/transformer.ts';
import { checkpointWeights, type WeightSource } from '../onnx/graph.ts';
import { fusedWeights, loadLora, type LoadedLora } from './lora.ts';
import { ModelFolderError } from './manifest.ts';
import { openTensorFile, type TensorFile } from './weight-files.ts';

/** Alimama's inpainting ControlNet packs one mask channel 2x2 beside the latents: 64 + 4 = 68 inputs. */
const MASK_CONDITION_CHANNELS = 4;
const CLASSES = new Set(['FluxControlNetModel', 'MultiLayerAdapter']);
const TIME_CHANNELS = 256;

/**
 * Reads the Inpainting-Alpha `config.json` (a FluxControlNetModel's): the adapter's parser, plus
 * what tells another ControlNet from the one CLD's adapter starts from.
 */
export function readAdapterConfig(json: unknown, source: string): AdapterConfig {
  const c = (json ?? {}) as Record<string, unknown>;
  const cls = c._class_name;
  if (typeof cls === 'string' && !CLASSES.has(cls)) throw new ModelFolderError(`${source}: a ${cls} config, not a FLUX ControlNet; give --adapter the alimama-creative/FLUX.1-dev-Controlnet-Inpainting-Alpha folder`);
  if (c.conditioning_embedding_channels !== undefined && c.conditioning_embedding_channels !== null) {
    throw new ModelFolderError(`${source}: conditioning_embedding_channels ${JSON.stringify(c.conditioning_embedding_channels)} means a pixel-space condition encoder (InstantX style), not the Inpainting-Alpha ControlNet CLD's adapter starts from`);
  }
  if (c.extra_condition_channels !== MASK_CONDITION_CHANNELS) {
    throw new ModelFolderError(`${source}: extra_condition_channels is ${JSON.stringify(c.extra_condition_channels)}, but CLD's adapter takes the latents plus a mask (${MASK_CONDITION_CHANNELS}); is this the Inpainting-Alpha ControlNet?`);
  }
  return asFolderError(() => parseAdapterConfig(c, source));
}

function asFolderError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw e instanceof ModelFolderError ? e : new ModelFolderError((e as Error).message);
  }
}

/** Every tensor a FluxControlNetModel of this config holds, with its shape (diffusers' state_dict names). */
export function adapterKeys(c: AdapterConfig): Record<string, number[]> {
  const d = c.heads * c.headDim;
  const out: Record<string, number[]> = {};
  const lin = (prefix: string, inF: number, outF: number) => {
    out[`${prefix}.weight`] = [outF, inF];
    out[`${prefix}.bias`] = [outF];
  };
  lin('x_embedder', c.inChannels, d);
  lin('context_embedder', c.jointAttentionDim, d);
  const embedders: Array<[string, number]> = [['timestep_embedder', TIME_CHANNELS], ['text_embedder', c.pooledProjectionDim], ...(c.guidanceEmbeds ? [['guidance_embedder', TIME_CHANNELS] as [string, number]] : [])];
  for (const [name, inF] of embedders) {
    lin(`time_text_embed.${name}.linear_1`, inF, d);
    lin(`time_text_embed.${name}.linear_2`, d, d);
  }
  for (let i = 0; i < c.numLayers; i++) {
    const p = `transformer_blocks.${i}`;
    for (const m of ['to_q', 'to_k', 'to_v', 'add_q_proj', 'add_k_proj', 'add_v_proj', 'to_out.0', 'to_add_out']) lin(`${p}.attn.${m}`, d, d);
    for (const n of ['norm_q', 'norm_k', 'norm_added_q', 'norm_added_k']) out[`${p}.attn.${n}.weight`] = [c.headDim];
    lin(`${p}.norm1.linear`, d, 6 * d);
    lin(`${p}.norm1_context.linear`, d, 6 * d);
    for (const ff of ['ff', 'ff_context']) {
      lin(`${p}.${ff}.net.0.proj`, d, 4 * d);
      lin(`${p}.${ff}.net.2`, 4 * d, d);
    }
    lin(`controlnet_blocks.${i}`, d, d);
  }
  for (let i = 0; i < c.numSingleLayers; i++) {
    const p = `single_transformer_blocks.${i}`;
    for (const m of ['to_q', 'to_k', 'to_v']) lin(`${p}.attn.${m}`, d, d);
    for (const n of ['norm_q', 'norm_k']) out[`${p}.attn.${n}.weight`] = [c.headDim];
    lin(`${p}.norm.linear`, d, 3 * d);
    lin(`${p}.proj_mlp`, d, 4 * d);
    lin(`${p}.proj_out`, 5 * d, d);
    lin(`controlnet_single_blocks.${i}`, d, d);
  }
  lin('controlnet_x_embedder', c.inChannels + c.extraConditionChannels, d);
  return out;
}

const some = (keys: string[]) => keys.slice(0, 3).join(', ') + (keys.length > 3 ? `, ... (${keys.length} in all)` : '');

/** The ControlNet folder's weights, checked against its config: every tensor there at its shape. */
function checkWeights(f: TensorFile, c: AdapterConfig, where: string): string[] {
  const expected = adapterKeys(c);
  const missing = Object.keys(expected).filter((k) => !f.tensors.has(k));
  if (missing.length > 0) {
    const blocks = [...f.tensors.keys()].filter((k) => /^controlnet_blocks\.\d+\.weight$/.test(k)).length;
    const hint = blocks !== c.numLayers ? ` (the weights have ${blocks} controlnet_blocks, the config ${c.numLayers}: config.json and weights are from different models)` : '';
    throw new ModelFolderError(`${where}: tensors the config implies are missing: ${some(missing)}${hint}`);
  }
  for (const [k, shape] of Object.entries(expected)) {
    const actual = f.tensors.get(k)!.shape;
    if (actual.length !== shape.length || actual.some((v, i) => v !== shape[i])) throw new ModelFolderError(`${where}: tensor "${k}" is [${actual}] but its config.json needs [${shape}]`);
  }
  // Tensors beyond those the adapter uses (none in the real file) are left out, and said so.
  return [...f.tensors.keys()].filter((k) => !(k in expected));
}

/** The ControlNet folder (config.json beside its weights), not a file. */
function controlNetDir(dir: string): string {
  if (!existsSync(dir)) throw new ModelFolderError(`${dir} is missing: the FLUX.1-dev-Controlnet-Inpainting-Alpha folder (--adapter)`);
  if (!statSync(dir).isDirectory()) throw new ModelFolderError(`--adapter ${dir}: give the folder (config.json + diffusion_pytorch_model.safetensors), not a file`);
  return dir;
}

export interface AdapterPlan {
  config: AdapterConfig;
  weights: WeightSource;
  lora: LoadedLora;
  source: TensorFile;
  /** Tensors of the folder the adapter does not use. */
  unused: string[];
}

/**
 * The adapter: `dir`'s config and weights checked, `loraFile` fused in (scale 1, alpha = rank as the
 * file carries none), `layerPe` under `layer_pe`.
 */
export function planAdapter(dir: string, loraFile: string, layerPe: { shape: number[]; data: () => Float32Array }, transformer: TransformerConfig, readJson: (file: string, what: string) => unknown): AdapterPlan {
  const folder = controlNetDir(dir);
  const configFile = join(folder, 'config.json');
  const config = { ...readAdapterConfig(readJson(configFile, 'the adapter config (FLUX.1-dev-Controlnet-Inpainting-Alpha/config.json)'), configFile), maxLayerNum: layerPe.shape[1] };
  asFolderError(() => checkAdapterFits(config, transformer));
  const source = openTensorFile(folder, 'the adapter weights (FLUX.1-dev-Controlnet-Inpainting-Alpha)');
  const unused = checkWeights(source, config, source.source);
  const plain = checkpointWeights(source);
  const base: WeightSource = {
    describe: plain.describe,
    shape: (k) => (k === 'layer_pe' ? layerPe.shape : unused.includes(k) ? undefined : plain.shape(k)),
    read: (k) => (k === 'layer_pe' ? layerPe.data() : plain.read(k)),
  };
  const lora = loadLora({ file: loraFile, scale: 1 }, (k) => base.shape(k));
  return { config, weights: fusedWeights(base, [lora]), lora, source, unused };
}
