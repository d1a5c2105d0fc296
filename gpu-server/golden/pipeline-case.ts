/**
 * Golden check of the whole CFG pipeline on a `pipeline` case: the graphs of the model cases the
 * case names, driven by the pipeline's own denoiser (schedule, batched true CFG, Euler, grey fill,
 * transparent decoder, VAE for merged and background) from the case's noise and text embeddings.
 */
import { join, resolve } from 'node:path';
import { BACKGROUND_LAYER, MERGED_LAYER, validateLayout } from '../../domain/layout.ts';
import type { ModelComponents } from '../model-folder/graphs.ts';
import { parseTransformerConfig } from '../models/transformer.ts';
import { parseTransparentDecoderConfig } from '../models/transparent-decoder.ts';
import { parseVaeConfig } from '../models/vae.ts';
import type { Provider } from '../onnx/session.ts';
import { transformerTokens } from '../pipeline/layout-tokens.ts';
import { caseLayout, GoldenError, need, readCase, readFloats, withScratch } from './case.ts';
import { compareFloat, type Comparison, type GoldenReport } from './compare.ts';
import { component, denoiseCase, rgbaComparison, withGoldenDenoiser } from './pipeline-run.ts';

interface PipelineCase {
  steps: number;
  guidance_embedding: number;
  true_cfg: number;
  models: { transformer: string; vae: string; transp_vae: string };
}

export async function check(dir: string, provider: Provider = 'cpu'): Promise<GoldenReport> {
  const c = readCase(dir);
  const caseFile = join(dir, 'case.json');
  const layout = caseLayout(c, caseFile);
  validateLayout(layout);
  const p = c as unknown as PipelineCase;
  if (!p.models?.transformer || !p.models.vae || !p.models.transp_vae) throw new GoldenError(`${caseFile}: "models" must name the transformer, vae and transp_vae case folders`);
  const models: Pick<ModelComponents, 'transformer' | 'vae' | 'transparentDecoder'> = {
    transformer: component(resolve(dir, p.models.transformer), (j) => parseTransformerConfig(j)),
    vae: component(resolve(dir, p.models.vae), parseVaeConfig),
    transparentDecoder: component(resolve(dir, p.models.transp_vae), parseTransparentDecoderConfig),
  };

  const inputsFile = join(dir, 'inputs.safetensors');
  const outputsFile = join(dir, 'outputs.safetensors');
  const extraFile = join(dir, 'extra_outputs.safetensors');
  const inputs = readFloats(inputsFile);
  const outputs = readFloats(outputsFile);
  const extra = readFloats(extraFile);
  const extraOf = (name: string) => need(extra, name, extraFile).data;
  const grid = transformerTokens(layout);
  const comparisons: Comparison[] = [];

  await withScratch((scratch) =>
    withGoldenDenoiser(scratch, models, provider, async (denoiser) => {
      const tokens = await denoiseCase(denoiser, grid, p, inputs, inputsFile, extraOf, comparisons);

      const decoded = await denoiser.decode(layout, grid, tokens);
      comparisons.push(compareFloat('latents_for_decoders', decoded.latents, need(outputs, 'latents_for_decoders', outputsFile).data));
      const images = need(outputs, 'images', outputsFile).data;
      const px = images.length / layout.boxes.length;
      comparisons.push(compareFloat('images[merged]', decoded.merged ?? new Float32Array(0), images.subarray(MERGED_LAYER * px, (MERGED_LAYER + 1) * px)));
      comparisons.push(compareFloat('images[background]', decoded.background, images.subarray(BACKGROUND_LAYER * px, (BACKGROUND_LAYER + 1) * px)));
      comparisons.push(rgbaComparison(decoded.patches, layout, outputsFile));
    }),
  );
  return { kind: 'pipeline', dir, comparisons };
}
