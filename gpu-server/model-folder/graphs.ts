/**
 * Which graph builder makes which graph of a model folder, from a component's parsed config and
 * its weights. The converter, the tiny generator and the golden pipeline case all build through
 * here, so a model folder is the same thing whatever its weights.
 */
import { buildClipTextEncoder, type ClipTextConfig } from '../models/clip-text.ts';
import { buildT5Encoder, type T5Config } from '../models/t5-encoder.ts';
import { adapterSamples, buildAdapter, type AdapterConfig } from '../models/adapter.ts';
import { buildTransformer, type JobSwitch, type TransformerConfig } from '../models/transformer.ts';
import { buildTransparentDecoder, type TransparentDecoderConfig } from '../models/transparent-decoder.ts';
import { buildVaeDecoder, buildVaeEncoder, type VaeConfig } from '../models/vae.ts';
import type { GraphBuilder, WeightSource } from '../onnx/graph.ts';
import { writeModel, type WriteProgress } from '../onnx/onnx-writer.ts';
import type { AnyGraphName, Precision } from './manifest.ts';

export const graphFloat = (p: Precision): 'float32' | 'float16' => (p === 'fp32' ? 'float32' : 'float16');

export interface Component<C> {
  config: C;
  weights: WeightSource;
}

export interface ModelComponents {
  /** `jobs`: the transformer serves generation and decomposition (one graph, switched per job). */
  transformer: Component<TransformerConfig> & { jobs?: JobSwitch };
  /**
   * Decomposition (CLD): the adapter, its weights serving the `layer_pe` it borrows (decomposition's).
   * Its residuals go into the one transformer graph above.
   */
  decompose?: { adapter: Component<AdapterConfig> };
  vae: Component<VaeConfig>;
  transparentDecoder: Component<TransparentDecoderConfig>;
  clip: Component<ClipTextConfig>;
  t5: Component<T5Config> & { seqLen: number };
}

/** A builder per graph name, for the components given. */
export function graphBuilders(c: Partial<ModelComponents>, precision: Precision): Partial<Record<AnyGraphName, () => GraphBuilder>> {
  const f = graphFloat(precision);
  const out: Partial<Record<AnyGraphName, () => GraphBuilder>> = {};
  const { transformer, vae, transparentDecoder, clip, t5 } = c;
  const adapter = c.decompose?.adapter;
  // With an adapter, the transformer takes its residual samples (generation feeds zeros, see JobSwitch).
  if (transformer) {
    const options = { quantize: precision === 'int4' ? ('int4' as const) : ('none' as const), ...(adapter ? { residuals: adapterSamples(adapter.config) } : {}), ...(transformer.jobs ? { jobs: transformer.jobs } : {}) };
    out.transformer = () => buildTransformer(transformer.config, transformer.weights, f, options);
    if (adapter) out.adapter = () => buildAdapter(adapter.config, adapter.weights, transformer.config.maxLayerNum, f);
  }
  if (vae) {
    out.vae_encoder = () => buildVaeEncoder(vae.config, vae.weights, f);
    out.vae_decoder = () => buildVaeDecoder(vae.config, vae.weights, f);
  }
  if (transparentDecoder) out.transparent_decoder = () => buildTransparentDecoder(transparentDecoder.config, transparentDecoder.weights, f);
  if (clip) out.clip_text = () => buildClipTextEncoder(clip.config, clip.weights, f);
  if (t5) out.t5_encoder = () => buildT5Encoder(t5.config, t5.weights, f, { seqLen: t5.seqLen });
  return out;
}

/** File names of a graph inside the folder. */
export const graphFiles = (name: AnyGraphName) => ({ file: `${name}.onnx`, data: [`${name}.onnx.data`] });

/** Builds and writes one graph as `<dir>/<name>.onnx` (+ `.data`). */
export function writeGraph(dir: string, name: AnyGraphName, build: () => GraphBuilder, onProgress?: (p: WriteProgress) => void): { file: string; data: string[] } {
  writeModel(build(), `${dir}/${name}.onnx`, onProgress);
  return graphFiles(name);
}
