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
import { graphBuilders, writeGraph, type ModelComponents } from '../model-folder/graphs.ts';
import type { AnyGraphName } from '../model-folder/manifest.ts';
import { parseTransparentDecoderConfig, patchesToRgba } from '../models/transparent-decoder.ts';
import { parseVaeConfig } from '../models/vae.ts';
import { checkpointWeights } from '../onnx/graph.ts';
import { Checkpoint, loadAll } from '../onnx/safetensors.ts';
import { openSession, type Provider } from '../onnx/session.ts';
import { Denoiser } from '../pipeline/denoiser.ts';
import { GraphSession } from '../pipeline/graph-session.ts';
import { transformerTokens } from '../pipeline/layout-tokens.ts';
import type { TextEmbeddings } from '../pipeline/noise-predictor.ts';
import { gatherTokens, scatterTokens } from '../pipeline/packing.ts';
import { FLUX_SCHEDULER } from '../pipeline/scheduler.ts';
import { tokenCondition } from '../pipeline/condition.ts';
import { caseLayout, GoldenError, need, readCase, readFloats, readJson, withScratch } from './case.ts';
import { withLayerPe } from '../models/adapter.ts';
import { cldConfigs } from './cld_adapter-case.ts';
import { compareFloat, compareLevels, type Comparison, type GoldenReport } from './compare.ts';

const caseSchema = z.object({
  steps: z.number().int().positive(),
  guidance_embedding: z.number(),
  true_cfg: z.number(),
  conditioning_scale: z.number(),
  models: z.object({ transformer: z.string(), adapter: z.string(), config: z.string(), vae: z.string(), transp_vae: z.string() }),
});

/** CLD's adapter condition tolerance (README: `adapter_cond` 1e-5 relative). */
const CONDITION_TOLERANCE = 1e-5;

const component = <C>(dir: string, parse: (json: unknown) => C) => ({
  config: parse(readJson(join(dir, 'config.json'))),
  weights: checkpointWeights(Checkpoint.open(join(dir, 'weights.safetensors'))),
});

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
  const input = (name: string) => need(inputs, name, inputsFile);
  const output = (name: string) => need(outputs, name, outputsFile).data;
  const text = (hidden: string, pooled: string): TextEmbeddings => {
    const h = input(hidden);
    return { hidden: h.data, tokens: h.shape[1], width: h.shape[2], pooled: input(pooled).data };
  };
  const pixels = loadAll(inputsFile).get('image');
  if (!pixels || pixels.info.dtype !== 'U8') throw new GoldenError(`${inputsFile}: U8 tensor "image" [H, W, 3] is missing`);
  const [imageH, imageW, channels] = pixels.info.shape;
  if (channels !== 3 && channels !== 4) throw new GoldenError(`${inputsFile}: "image" has ${channels} channels, expected 3 or 4`);
  const image = { width: imageW, height: imageH, channels, pixels: new Uint8Array(pixels.bytes) } as const;

  const grid = transformerTokens(layout);
  const full = output('latents_denoised').length;
  const mask = scatterTokens(new Float32Array(grid.count * 64).fill(1), grid, new Float32Array(full));
  const inBoxes = (tokens: Float32Array) => scatterTokens(tokens, grid, new Float32Array(full));
  const comparisons: Comparison[] = [];

  await withScratch(async (scratch) => {
    const builders = graphBuilders(models, 'fp32');
    const open = async (name: AnyGraphName) => {
      const build = builders[name];
      if (!build) throw new GoldenError(`no builder for ${name}`);
      writeGraph(scratch, name, build);
      return new GraphSession(name, (await openSession(join(scratch, `${name}.onnx`), provider)).session);
    };
    const graphs = {
      transformer: await open('transformer'),
      vaeEncoder: await open('vae_encoder'),
      vaeDecoder: await open('vae_decoder'),
      transparentDecoder: await open('transparent_decoder'),
    };
    // The folder's one transformer (built with residual inputs, as for a folder that decomposes) runs both.
    const cld = { adapter: await open('adapter'), transformer: graphs.transformer };
    try {
      const vae = models.vae.config;
      const denoiser = new Denoiser(
        graphs,
        {
          vae: { scalingFactor: vae.scalingFactor, shiftFactor: vae.shiftFactor },
          scheduler: FLUX_SCHEDULER,
          transformer: { axesDimsRope: configs.transformer.axesDimsRope, ropeTheta: 10000 },
          transparentDecoder: { axesDimsRope: models.transparentDecoder.config.ropeAxes, ropeTheta: models.transparentDecoder.config.ropeTheta },
        },
        cld,
      );
      const condition = await denoiser.condition(image);
      comparisons.push(compareFloat('adapter_cond', condition, output('adapter_cond'), CONDITION_TOLERANCE));
      const schedule = denoiser.schedule(p.steps, grid);
      comparisons.push(compareFloat('timesteps', schedule.timesteps, output('timesteps')));
      comparisons.push(compareFloat('sigmas', schedule.sigmas, output('sigmas')));

      const tokens = await denoiser.denoise({
        grid,
        initial: gatherTokens(input('initial_latents').data, grid),
        positive: text('prompt_embeds', 'pooled_prompt_embeds'),
        negative: text('negative_prompt_embeds', 'negative_pooled_prompt_embeds'),
        steps: p.steps,
        guidance: p.guidance_embedding,
        trueCfg: p.true_cfg,
        adapter: { condition: tokenCondition(condition, grid), conditioningScale: p.conditioning_scale },
        onStep: (done, _total, latents, prediction) => {
          if (done === 1) {
            comparisons.push(compareFloat('noise_pred_cond_step_0 (in boxes)', inBoxes(prediction.cond), output('noise_pred_cond_step_0'), undefined, mask));
            if (prediction.uncond) comparisons.push(compareFloat('noise_pred_uncond_step_0 (in boxes)', inBoxes(prediction.uncond), output('noise_pred_uncond_step_0'), undefined, mask));
          }
          comparisons.push(compareFloat(`latents_after_step_${done - 1} (in boxes)`, inBoxes(latents), output(`latents_after_step_${done - 1}`), undefined, mask));
        },
      });

      // A decomposition decodes the background with the VAE and no merged image (it is composited).
      const decoded = await denoiser.decode(layout, grid, tokens, undefined, undefined, false);
      comparisons.push(compareFloat('latents_for_decoders', decoded.latents, output('latents_for_decoders')));
      const images = output('images');
      const px = images.length / layout.boxes.length;
      comparisons.push(compareFloat('images[background]', decoded.background, images.subarray(BACKGROUND_LAYER * px, (BACKGROUND_LAYER + 1) * px)));
      const rgba = patchesToRgba(decoded.patches, layout);
      const expectedRgba = loadAll(outputsFile).get('rgba');
      if (!expectedRgba || expectedRgba.info.dtype !== 'U8') throw new GoldenError(`${outputsFile}: U8 tensor "rgba" is missing`);
      comparisons.push(compareLevels('rgba', rgba, new Uint8Array(expectedRgba.bytes), 1));
    } finally {
      for (const g of [...Object.values(graphs), cld.adapter]) await g.release();
    }
  });
  return { kind: 'cld_pipeline', dir, comparisons };
}
