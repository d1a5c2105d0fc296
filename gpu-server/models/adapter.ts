/**
 * CLD's `MultiLayerAdapter` (a diffusers `FluxControlNetModel` that reads every layer): its own
 * embedders and blocks over the same packed in-box tokens as the transformer, with the flat
 * image's condition added to every layer's tokens; each block's image output through a
 * `controlnet_blocks[i]` Linear, times the conditioning scale, is a residual sample for the
 * transformer (`transformer.ts`, `residuals`). Checkpoint keys are the official state_dict names
 * (those of alimama's Inpainting-Alpha ControlNet); `layer_pe` is the transformer's (CLD shares it),
 * so the weight source must serve it too (`withLayerPe`).
 *
 * Inputs:  the transformer's (`fluxStem`) plus condition [1,N,68] (the condition cell of each token,
 *          see `pipeline/condition.ts`) and conditioning_scale [1].
 * Outputs: adapter_block_sample_<i> [B,N,D] per double block, adapter_single_block_sample_<i>
 *          [B,N,D] per single block.
 */
import { GraphBuilder, GraphError, type Value, type WeightSource } from '../onnx/graph.ts';
import * as nn from '../onnx/nn.ts';
import {
  doubleSampleName, fluxBlocks, fluxStem, innerDim, layerEmbedding, parseTransformerConfig, singleSampleName,
  type ResidualCounts, type TransformerConfig, type TransformerPrecision,
} from './transformer.ts';

export interface AdapterConfig extends TransformerConfig {
  /** Channels of the condition beyond the packed latent's 64 (4: a packed mask channel). */
  extraConditionChannels: number;
}

/** Reads a `FluxControlNetModel` config.json (alimama's, or CLD's adapter entry); names what is wrong. */
export function parseAdapterConfig(json: unknown, source = 'adapter config.json'): AdapterConfig {
  const c = (json ?? {}) as Record<string, unknown>;
  const extra = c.extra_condition_channels ?? 0;
  if (typeof extra !== 'number' || !Number.isInteger(extra) || extra < 0) throw new GraphError(`${source}: "extra_condition_channels" must be a non-negative integer (got ${JSON.stringify(extra)})`);
  if (c.num_mode !== undefined && c.num_mode !== null) throw new GraphError(`${source}: a union ControlNet (num_mode ${JSON.stringify(c.num_mode)}) is not CLD's adapter; use alimama-creative/FLUX.1-dev-Controlnet-Inpainting-Alpha`);
  // The adapter has no layer_pe of its own: max_layer_num is the transformer's (checked at build).
  return { ...parseTransformerConfig({ ...c, max_layer_num: c.max_layer_num ?? 1 }, source), extraConditionChannels: extra };
}

export const conditionChannels = (c: AdapterConfig): number => c.inChannels + c.extraConditionChannels;

/** The samples this adapter gives the transformer (one per block). */
export const adapterSamples = (c: AdapterConfig): ResidualCounts => ({ double: c.numLayers, single: c.numSingleLayers });

/** Checks that the adapter can feed `transformer`; throws naming the mismatch. */
export function checkAdapterFits(adapter: AdapterConfig, transformer: TransformerConfig): void {
  const same = (what: string, a: unknown, b: unknown) => {
    if (JSON.stringify(a) !== JSON.stringify(b)) throw new GraphError(`the adapter's ${what} (${JSON.stringify(a)}) differs from the transformer's (${JSON.stringify(b)}): it was made for another base model`);
  };
  same('inner dim', innerDim(adapter), innerDim(transformer));
  same('attention_head_dim', adapter.headDim, transformer.headDim);
  same('axes_dims_rope', adapter.axesDimsRope, transformer.axesDimsRope);
  same('joint_attention_dim', adapter.jointAttentionDim, transformer.jointAttentionDim);
  same('pooled_projection_dim', adapter.pooledProjectionDim, transformer.pooledProjectionDim);
  same('guidance_embeds', adapter.guidanceEmbeds, transformer.guidanceEmbeds);
  if (adapter.numLayers > transformer.numLayers || adapter.numSingleLayers > transformer.numSingleLayers) {
    throw new GraphError(`the adapter has more blocks (${adapter.numLayers} + ${adapter.numSingleLayers}) than the transformer (${transformer.numLayers} + ${transformer.numSingleLayers})`);
  }
}

/** The adapter's weights, with the transformer's `layer_pe` served under its own key (CLD's `set_layerPE`). */
export function withLayerPe(adapter: WeightSource, transformer: WeightSource): WeightSource {
  return {
    describe: `${adapter.describe} + layer_pe of ${transformer.describe}`,
    shape: (key) => (key === 'layer_pe' ? transformer.shape(key) : adapter.shape(key)),
    read: (key) => (key === 'layer_pe' ? transformer.read(key) : adapter.read(key)),
  };
}

/** `maxLayerNum`: the number of layers of the transformer's `layer_pe` the adapter borrows. */
export function buildAdapter(c: AdapterConfig, weights: WeightSource, maxLayerNum: number, precision: TransformerPrecision = 'float32'): GraphBuilder {
  const g = new GraphBuilder('cld_adapter', precision, weights);
  const cfg: AdapterConfig = { ...c, maxLayerNum };
  const { x, hidden, tokenLayer, tembAct, txt } = fluxStem(g, cfg);
  const { dim } = x;
  const condIn = conditionChannels(c);
  const condition = g.input('condition', 'float', [1, 'tokens', condIn]);
  const scale = g.input('conditioning_scale', 'float', [1]);

  // The official order: (x_embedder(hidden) + controlnet_x_embedder(cond)) + layer_pe.
  let img = nn.add(g, nn.linear(g, hidden, 'x_embedder', c.inChannels, dim), nn.linear(g, condition, 'controlnet_x_embedder', condIn, dim));
  img = nn.add(g, img, layerEmbedding(g, cfg, tokenLayer));

  const sample = (h: Value, key: string, name: string) => g.output(nn.mul(g, nn.linear(g, h, key, dim, dim), scale), name, 'float', ['batch', 'tokens', dim]);
  fluxBlocks(x, img, txt, tembAct, {
    afterDouble: (i, out) => {
      sample(out, `controlnet_blocks.${i}`, doubleSampleName(i));
      return out;
    },
    afterSingle: (i, joint, image) => {
      sample(image(), `controlnet_single_blocks.${i}`, singleSampleName(i));
      return joint;
    },
  });
  return g;
}
