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
import type { GraphName, Precision } from './manifest.ts';

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
}

/** A builder per graph name, for the components given. */
export function graphBuilders(c: Partial<ModelComponents>, precision: Precision): Partial<Record<GraphName, () => GraphBuilder>> {
  const f = graphFloat(precision);
  const out: Partial<Record<GraphName, () => GraphBuilder>> = {};
  const { transformer, vae, transparentDecoder, clip, t5 } = c;
  if (transformer) out.transformer = () => buildTransformer(transformer.config, transformer.weights, f, { quantize: precision === 'int4' ? 'int4' : 'none' });
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
export const graphFiles = (name: GraphName) => ({ file: `${name}.onnx`, data: [`${name}.onnx.data`] });

/** Builds and writes one graph as `<dir>/<name>.onnx` (+ `.data`). */
export function writeGraph(dir: string, name: GraphName, build: () => GraphBuilder, onProgress?: (p: WriteProgress) => void): { file: string; data: string[] } {
  writeModel(build(), `${dir}/${name}.onnx`, onProgress);
  return graphFiles(name);
}
