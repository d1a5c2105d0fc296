/**
 * Golden check of a whole decomposition on a `cld_pipeline` case (`CustomFluxPipelineCfgLayer`):
 * the graphs of the model folders the case names, driven by the pipeline's own denoiser (the
 * flat image's condition through the VAE encoder, the schedule, per step the adapter once and the
 * transformer on both prompts with its residuals, true CFG, Euler, grey fill, the transparent
 * decoder, the VAE for the background) from the case's image, noise and text embeddings.
 */
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { BACKGROUND_LAYER, validateLayout } from '../../domain/layout.ts';
import type { ModelComponents } from '../model-folder/graphs.ts';
import { withLayerPe } from '../models/adapter.ts';
import { parseTransparentDecoderConfig } from '../models/transparent-decoder.ts';
import { parseVaeConfig } from '../models/vae.ts';
import { checkpointWeights } from '../onnx/graph.ts';
import { Checkpoint, loadAll } from '../onnx/safetensors.ts';
import type { Provider } from '../onnx/session.ts';
import { tokenCondition } from '../pipeline/condition.ts';
import { transformerTokens } from '../pipeline/layout-tokens.ts';
import { caseLayout, GoldenError, need, readCase, readFloats, withScratch } from './case.ts';
import { cldConfigs } from './cld_adapter-case.ts';
import { compareFloat, type Comparison, type GoldenReport } from './compare.ts';
import { component, denoiseCase, rgbaComparison, withGoldenDenoiser } from './pipeline-run.ts';

const caseSchema = z.object({
  steps: z.number().int().positive(),
  guidance_embedding: z.number(),
  true_cfg: z.number(),
  conditioning_scale: z.number(),
  models: z.object({ transformer: z.string(), adapter: z.string(), config: z.string(), vae: z.string(), transp_vae: z.string() }),
});

/** CLD's adapter condition tolerance (README: `adapter_cond` 1e-5 relative). */
const CONDITION_TOLERANCE = 1e-5;

export async function check(dir: string, provider: Provider = 'cpu'): Promise<GoldenReport> {
  const c = readCase(dir);
  const caseFile = join(dir, 'case.json');
  const layout = caseLayout(c, caseFile);
  validateLayout(layout);
  const parsed = caseSchema.safeParse(c);
  if (!parsed.success) throw new GoldenError(`${caseFile}: a cld_pipeline case needs steps, guidance_embedding, true_cfg, conditioning_scale and models { transformer, adapter, config, vae, transp_vae } (${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message})`);
  const p = parsed.data;
  const configs = cldConfigs(resolve(dir, p.models.config, '..'));
  const transformer = { config: configs.transformer, weights: checkpointWeights(Checkpoint.open(resolve(dir, p.models.transformer))) };
  const models: Pick<ModelComponents, 'transformer' | 'vae' | 'transparentDecoder' | 'decompose'> = {
    transformer,
    vae: component(resolve(dir, p.models.vae), parseVaeConfig),
    transparentDecoder: component(resolve(dir, p.models.transp_vae), parseTransparentDecoderConfig),
    decompose: { adapter: { config: configs.adapter, weights: withLayerPe(checkpointWeights(Checkpoint.open(resolve(dir, p.models.adapter))), transformer.weights) } },
  };

  const inputsFile = join(dir, 'inputs.safetensors');
  const outputsFile = join(dir, 'outputs.safetensors');
  const inputs = readFloats(inputsFile);
  const outputs = readFloats(outputsFile);
  const output = (name: string) => need(outputs, name, outputsFile).data;
  const pixels = loadAll(inputsFile).get('image');
  if (!pixels || pixels.info.dtype !== 'U8') throw new GoldenError(`${inputsFile}: U8 tensor "image" [H, W, 3] is missing`);
  const [imageH, imageW, channels] = pixels.info.shape;
  if (channels !== 3 && channels !== 4) throw new GoldenError(`${inputsFile}: "image" has ${channels} channels, expected 3 or 4`);
  const image = { width: imageW, height: imageH, channels, pixels: new Uint8Array(pixels.bytes) } as const;
  const grid = transformerTokens(layout);
  const comparisons: Comparison[] = [];

  await withScratch((scratch) =>
    withGoldenDenoiser(scratch, models, provider, async (denoiser) => {
      const condition = await denoiser.condition(image);
      comparisons.push(compareFloat('adapter_cond', condition, output('adapter_cond'), CONDITION_TOLERANCE));
      const adapter = { condition: tokenCondition(condition, grid), conditioningScale: p.conditioning_scale };
      const tokens = await denoiseCase(denoiser, grid, p, inputs, inputsFile, output, comparisons, adapter);

      // A decomposition decodes the background with the VAE and no merged image (it is composited).
      const decoded = await denoiser.decode(layout, grid, tokens, undefined, undefined, false);
      comparisons.push(compareFloat('latents_for_decoders', decoded.latents, output('latents_for_decoders')));
      const images = output('images');
      const px = images.length / layout.boxes.length;
      comparisons.push(compareFloat('images[background]', decoded.background, images.subarray(BACKGROUND_LAYER * px, (BACKGROUND_LAYER + 1) * px)));
      comparisons.push(rgbaComparison(decoded.patches, layout, outputsFile, 1));
    }),
  );
  return { kind: 'cld_pipeline', dir, comparisons };
}
