/**
 * Golden check of the whole CFG pipeline on a `pipeline` case: the graphs of the model cases the
 * case names, driven by the pipeline's own denoiser (schedule, batched true CFG, Euler, grey fill,
 * transparent decoder, VAE for merged and background) from the case's noise and text embeddings.
 */
import { join, resolve } from 'node:path';
import { BACKGROUND_LAYER, MERGED_LAYER, validateLayout } from '../../domain/layout.ts';
import { graphBuilders, writeGraph, type ModelComponents } from '../model-folder/graphs.ts';
import type { GraphName } from '../model-folder/manifest.ts';
import { parseTransformerConfig } from '../models/transformer.ts';
import { parseTransparentDecoderConfig, patchesToRgba } from '../models/transparent-decoder.ts';
import { parseVaeConfig } from '../models/vae.ts';
import { checkpointWeights } from '../onnx/graph.ts';
import { Checkpoint, loadAll } from '../onnx/safetensors.ts';
import { openSession, type Provider } from '../onnx/session.ts';
import { Denoiser } from '../pipeline/denoiser.ts';
import { GraphSession } from '../pipeline/graph-session.ts';
import { transformerTokens } from '../pipeline/layout-tokens.ts';
import { gatherTokens, scatterTokens } from '../pipeline/packing.ts';
import { FLUX_SCHEDULER } from '../pipeline/scheduler.ts';
import type { TextEmbeddings } from '../pipeline/noise-predictor.ts';
import { caseLayout, GoldenError, need, readCase, readFloats, readJson, withScratch } from './case.ts';
import { compareFloat, compareLevels, type Comparison, type GoldenReport } from './compare.ts';

interface PipelineCase {
  steps: number;
  guidance_embedding: number;
  true_cfg: number;
  models: { transformer: string; vae: string; transp_vae: string };
}

const component = <C>(dir: string, parse: (json: unknown) => C) => ({
  config: parse(readJson(join(dir, 'config.json'))),
  weights: checkpointWeights(Checkpoint.open(join(dir, 'weights.safetensors'))),
});

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
  const input = (name: string) => need(inputs, name, inputsFile);
  const extraOf = (name: string) => need(extra, name, extraFile).data;
  const text = (hidden: string, pooled: string): TextEmbeddings => {
    const h = input(hidden);
    return { hidden: h.data, tokens: h.shape[1], width: h.shape[2], pooled: input(pooled).data };
  };

  const grid = transformerTokens(layout);
  const full = extraOf('latents_denoised').length;
  const mask = scatterTokens(new Float32Array(grid.count * 64).fill(1), grid, new Float32Array(full));
  const inBoxes = (tokens: Float32Array) => scatterTokens(tokens, grid, new Float32Array(full));
  const comparisons: Comparison[] = [];

  await withScratch(async (scratch) => {
    const builders = graphBuilders(models, 'fp32');
    const open = async (name: GraphName) => {
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
    try {
      const vae = models.vae.config;
      const denoiser = new Denoiser(graphs, {
        vae: { scalingFactor: vae.scalingFactor, shiftFactor: vae.shiftFactor },
        scheduler: FLUX_SCHEDULER,
        transformer: { axesDimsRope: models.transformer.config.axesDimsRope, ropeTheta: 10000 },
        transparentDecoder: { axesDimsRope: models.transparentDecoder.config.ropeAxes, ropeTheta: models.transparentDecoder.config.ropeTheta },
      });
      const schedule = denoiser.schedule(p.steps, grid);
      comparisons.push(compareFloat('timesteps', schedule.timesteps, extraOf('timesteps')));
      comparisons.push(compareFloat('sigmas', schedule.sigmas, extraOf('sigmas')));

      const tokens = await denoiser.denoise({
        grid,
        initial: gatherTokens(input('initial_latents').data, grid),
        positive: text('prompt_embeds', 'pooled_prompt_embeds'),
        negative: text('negative_prompt_embeds', 'negative_pooled_prompt_embeds'),
        steps: p.steps,
        guidance: p.guidance_embedding,
        trueCfg: p.true_cfg,
        onStep: (done, _total, latents, prediction) => {
          if (done === 1) {
            comparisons.push(compareFloat('noise_pred_cond_step_0 (in boxes)', inBoxes(prediction.cond), extraOf('noise_pred_cond_step_0'), undefined, mask));
            if (prediction.uncond) comparisons.push(compareFloat('noise_pred_uncond_step_0 (in boxes)', inBoxes(prediction.uncond), extraOf('noise_pred_uncond_step_0'), undefined, mask));
          }
          comparisons.push(compareFloat(`latents_after_step_${done - 1} (in boxes)`, inBoxes(latents), extraOf(`latents_after_step_${done - 1}`), undefined, mask));
        },
      });

      const decoded = await denoiser.decode(layout, grid, tokens);
      comparisons.push(compareFloat('latents_for_decoders', decoded.latents, need(outputs, 'latents_for_decoders', outputsFile).data));
      const images = need(outputs, 'images', outputsFile).data;
      const px = images.length / layout.boxes.length;
      comparisons.push(compareFloat('images[merged]', decoded.merged ?? new Float32Array(0), images.subarray(MERGED_LAYER * px, (MERGED_LAYER + 1) * px)));
      comparisons.push(compareFloat('images[background]', decoded.background, images.subarray(BACKGROUND_LAYER * px, (BACKGROUND_LAYER + 1) * px)));
      const rgba = patchesToRgba(decoded.patches, layout);
      const expectedRgba = loadAll(outputsFile).get('rgba');
      if (!expectedRgba || expectedRgba.info.dtype !== 'U8') throw new GoldenError(`${outputsFile}: U8 tensor "rgba" is missing`);
      comparisons.push(compareLevels('rgba', rgba, new Uint8Array(expectedRgba.bytes)));
    } finally {
      for (const g of Object.values(graphs)) await g.release();
    }
  });
  return { kind: 'pipeline', dir, comparisons };
}
