/**
 * Golden check of the VAE graphs on a `vae` case: decode `decode_latents`, encode the zero
 * `encode_image` (mean and log-variance, nothing sampled), and the grey latent
 * `(mean - shift) * scaling` that the pipeline fills outside the boxes.
 */
import { join } from 'node:path';
import { buildVaeDecoder, buildVaeEncoder, parseVaeConfig, type VaeConfig } from '../models/vae.ts';
import { checkpointWeights, type GraphBuilder } from '../onnx/graph.ts';
import { Checkpoint } from '../onnx/safetensors.ts';
import { ort, type Provider } from '../onnx/session.ts';
import { need, readFloats, readJson, runGraphOnce } from './case.ts';
import { compareFloat, type GoldenReport } from './compare.ts';

type Feeds = Record<string, { shape: number[]; data: Float32Array }>;

/** Runs `graph` once on float32 feeds. */
const runOnce = (graph: GraphBuilder, feeds: Feeds, provider: Provider): Promise<Record<string, Float32Array>> =>
  runGraphOnce(graph, Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, new ort.Tensor('float32', v.data, v.shape)])), provider);

/** The grey latent from the encoder's mean, in float32 steps as torch computes it. */
function greyLatent(mean: Float32Array, config: VaeConfig): Float32Array {
  const shift = Math.fround(config.shiftFactor);
  const scale = Math.fround(config.scalingFactor);
  return mean.map((m) => Math.fround(Math.fround(m - shift) * scale));
}

export async function check(dir: string, provider: Provider = 'cpu'): Promise<GoldenReport> {
  const configFile = join(dir, 'config.json');
  const config = parseVaeConfig(readJson(configFile));
  const weights = checkpointWeights(Checkpoint.open(join(dir, 'weights.safetensors')));
  const inputsFile = join(dir, 'inputs.safetensors');
  const outputsFile = join(dir, 'outputs.safetensors');
  const inputs = readFloats(inputsFile);
  const outputs = readFloats(outputsFile);
  const expect = (name: string): Float32Array => need(outputs, name, outputsFile).data;

  const decoded = await runOnce(buildVaeDecoder(config, weights, 'float32'), { latents: need(inputs, 'decode_latents', inputsFile) }, provider);
  const encoded = await runOnce(buildVaeEncoder(config, weights, 'float32'), { image: need(inputs, 'encode_image', inputsFile) }, provider);
  return {
    kind: 'vae',
    dir,
    comparisons: [
      compareFloat('decoded', decoded.image, expect('decoded')),
      compareFloat('encoded_mean', encoded.mean, expect('encoded_mean')),
      compareFloat('encoded_logvar', encoded.logvar, expect('encoded_logvar')),
      compareFloat('grey_latent', greyLatent(encoded.mean, config), expect('grey_latent')),
    ],
  };
}
