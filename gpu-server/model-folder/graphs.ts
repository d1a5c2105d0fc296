/**
 * Which graph builder makes which graph of a model folder, from a component's parsed config and
 * its weights. The converter, the tiny generator and the golden pipeline case all build through
 * here, so a model folder is the same thing whatever its weights.
 */
import { buildClipTextEncoder, type ClipTextConfig } from '../models/clip-text.ts';
import { buildT5Encoder, type T5Config } from '../models/t5-encoder.ts';
import { buildTransformer, type TransformerConfig } from '../models/transformer.ts';
import { buildTransparentDecoder, type TransparentDecoderConfig } from '../models/transparent-decoder.ts';
import { buildVaeDecoder, buildVaeEncoder, type VaeConfig } from '../models/vae.ts';
import type { GraphBuilder, WeightSource } from '../onnx/graph.ts';
import { writeModel, type WriteProgress } from '../onnx/onnx-writer.ts';
import { adapterSamples, buildAdapter, withLayerPe, type AdapterConfig } from '../models/adapter.ts';
import type { AnyGraphName, Precision } from './manifest.ts';

export const graphFloat = (p: Precision): 'float32' | 'float16' => (p === 'fp32' ? 'float32' : 'float16');

export interface Component<C> {
  config: C;
  weights: WeightSource;
}

export interface ModelComponents {
  transformer: Component<TransformerConfig>;
  vae: Component<VaeConfig>;
  transparentDecoder: Component<TransparentDecoderConfig>;
  clip: Component<ClipTextConfig>;
  t5: Component<T5Config> & { seqLen: number };
  /**
   * Decomposition (CLD): the adapter, and the transformer that takes its residuals (CLD's own
   * weights: FLUX.1-dev with CLD's LoRAs and layer_pe; the tiny model reuses its transformer).
   * The adapter borrows that transformer's `layer_pe`.
   */
  decompose?: { adapter: Component<AdapterConfig>; transformer: Component<TransformerConfig> };
}

/** A builder per graph name, for the components given. */
export function graphBuilders(c: Partial<ModelComponents>, precision: Precision): Partial<Record<AnyGraphName, () => GraphBuilder>> {
  const f = graphFloat(precision);
  const out: Partial<Record<AnyGraphName, () => GraphBuilder>> = {};
  const { transformer, vae, transparentDecoder, clip, t5 } = c;
  if (transformer) out.transformer = () => buildTransformer(transformer.config, transformer.weights, f, { quantize: precision === 'int4' ? 'int4' : 'none' });
  if (vae) {
    out.vae_encoder = () => buildVaeEncoder(vae.config, vae.weights, f);
    out.vae_decoder = () => buildVaeDecoder(vae.config, vae.weights, f);
  }
  if (transparentDecoder) out.transparent_decoder = () => buildTransparentDecoder(transparentDecoder.config, transparentDecoder.weights, f);
  if (clip) out.clip_text = () => buildClipTextEncoder(clip.config, clip.weights, f);
  if (t5) out.t5_encoder = () => buildT5Encoder(t5.config, t5.weights, f, { seqLen: t5.seqLen });
  const cld = c.decompose;
  if (cld) {
    const quantize = precision === 'int4' ? 'int4' : 'none';
    out.adapter = () => buildAdapter(cld.adapter.config, withLayerPe(cld.adapter.weights, cld.transformer.weights), cld.transformer.config.maxLayerNum, f);
    out.transformer_decompose = () => buildTransformer(cld.transformer.config, cld.transformer.weights, f, { quantize, residuals: adapterSamples(cld.adapter.config) });
  }
  return out;
}

/** File names of a graph inside the folder. */
export const graphFiles = (name: AnyGraphName) => ({ file: `${name}.onnx`, data: [`${name}.onnx.data`] });

/** Builds and writes one graph as `<dir>/<name>.onnx` (+ `.data`). */
export function writeGraph(dir: string, name: AnyGraphName, build: () => GraphBuilder, onProgress?: (p: WriteProgress) => void): { file: string; data: string[] } {
  writeModel(build(), `${dir}/${name}.onnx`, onProgress);
  return graphFiles(name);
}
