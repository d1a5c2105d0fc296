/**
 * What the two whole-pipeline golden checks (`pipeline`, `cld_pipeline`) share: the case's models
 * built into graphs and driven by the pipeline's own Denoiser, the text embeddings of a case's
 * inputs, and the comparisons of each step and of the decoded RGBA.
 */
import { join } from 'node:path';
import type { Layout } from '../../domain/layout.ts';
import { graphBuilders, writeGraph, type ModelComponents } from '../model-folder/graphs.ts';
import type { AnyGraphName } from '../model-folder/manifest.ts';
import { patchesToRgba } from '../models/transparent-decoder.ts';
import { checkpointWeights } from '../onnx/graph.ts';
import { Checkpoint, loadAll } from '../onnx/safetensors.ts';
import { openSession, type Provider } from '../onnx/session.ts';
import type { DenoiseOptions } from '../pipeline/denoise.ts';
import { Denoiser, type DenoiseJob } from '../pipeline/denoiser.ts';
import { GraphSession } from '../pipeline/graph-session.ts';
import type { TokenGrid } from '../pipeline/layout-tokens.ts';
import type { TextEmbeddings } from '../pipeline/noise-predictor.ts';
import { gatherTokens, scatterTokens } from '../pipeline/packing.ts';
import { FLUX_SCHEDULER } from '../pipeline/scheduler.ts';
import { GoldenError, need, readJson } from './case.ts';
import { compareFloat, compareLevels, type Comparison } from './compare.ts';

/** A model case folder: its `config.json` parsed, its `weights.safetensors`. */
export const component = <C>(dir: string, parse: (json: unknown) => C) => ({
  config: parse(readJson(join(dir, 'config.json'))),
  weights: checkpointWeights(Checkpoint.open(join(dir, 'weights.safetensors'))),
});

/** One prompt's embeddings as a case's inputs hold them. */
export function caseText(inputs: Map<string, { shape: number[]; data: Float32Array }>, file: string, hidden: string, pooled: string): TextEmbeddings {
  const h = need(inputs, hidden, file);
  return { hidden: h.data, tokens: h.shape[1], width: h.shape[2], pooled: need(inputs, pooled, file).data };
}

type PipelineModels = Pick<ModelComponents, 'transformer' | 'vae' | 'transparentDecoder' | 'decompose'>;

/**
 * Builds the models' graphs into `scratch`, opens them on `provider` and runs `fn` with a Denoiser
 * over them (with the adapter, when the models have one, on the one transformer); releases them.
 */
export async function withGoldenDenoiser<T>(scratch: string, models: PipelineModels, provider: Provider, fn: (denoiser: Denoiser) => Promise<T>): Promise<T> {
  const builders = graphBuilders(models, 'fp32');
  const opened: GraphSession[] = [];
  const open = async (name: AnyGraphName) => {
    const build = builders[name];
    if (!build) throw new GoldenError(`no builder for ${name}`);
    writeGraph(scratch, name, build);
    const g = new GraphSession(name, (await openSession(join(scratch, `${name}.onnx`), provider)).session);
    opened.push(g);
    return g;
  };
  try {
    const graphs = { transformer: await open('transformer'), vaeEncoder: await open('vae_encoder'), vaeDecoder: await open('vae_decoder'), transparentDecoder: await open('transparent_decoder') };
    const cld = models.decompose ? { adapter: await open('adapter'), transformer: graphs.transformer } : undefined;
    const vae = models.vae.config;
    const td = models.transparentDecoder.config;
    const denoiser = new Denoiser(
      graphs,
      {
        vae: { scalingFactor: vae.scalingFactor, shiftFactor: vae.shiftFactor },
        scheduler: FLUX_SCHEDULER,
        transformer: { axesDimsRope: models.transformer.config.axesDimsRope, ropeTheta: 10000 },
        transparentDecoder: { axesDimsRope: td.ropeAxes, ropeTheta: td.ropeTheta },
      },
      cld,
    );
    return await fn(denoiser);
  } finally {
    for (const g of opened) await g.release();
  }
}

/**
 * Compares each step with the reference (`ref(name)`): both predictions of step 0 and the latents
 * after every step, inside the boxes (`full` values of the whole per-layer latents).
 */
export function stepComparisons(grid: TokenGrid, full: number, ref: (name: string) => Float32Array, comparisons: Comparison[]): NonNullable<DenoiseOptions['onStep']> {
  const mask = scatterTokens(new Float32Array(grid.count * 64).fill(1), grid, new Float32Array(full));
  const inBoxes = (tokens: Float32Array) => scatterTokens(tokens, grid, new Float32Array(full));
  return (done, _total, latents, prediction) => {
    if (done === 1) {
      comparisons.push(compareFloat('noise_pred_cond_step_0 (in boxes)', inBoxes(prediction.cond), ref('noise_pred_cond_step_0'), undefined, mask));
      if (prediction.uncond) comparisons.push(compareFloat('noise_pred_uncond_step_0 (in boxes)', inBoxes(prediction.uncond), ref('noise_pred_uncond_step_0'), undefined, mask));
    }
    comparisons.push(compareFloat(`latents_after_step_${done - 1} (in boxes)`, inBoxes(latents), ref(`latents_after_step_${done - 1}`), undefined, mask));
  };
}

/** The transparent decoder's RGBA of every layer against the case's U8 `rgba`. */
export function rgbaComparison(patches: Float32Array, layout: Layout, outputsFile: string, maxLevels?: number): Comparison {
  const expected = loadAll(outputsFile).get('rgba');
  if (!expected || expected.info.dtype !== 'U8') throw new GoldenError(`${outputsFile}: U8 tensor "rgba" is missing`);
  return compareLevels('rgba', patchesToRgba(patches, layout), new Uint8Array(expected.bytes), maxLevels);
}

/** A pipeline case's settings, as both `case.json` kinds spell them. */
export interface CaseSteps {
  steps: number;
  guidance_embedding: number;
  true_cfg: number;
}

/**
 * The case's schedule against its `timesteps` and `sigmas`, then the denoising loop from its
 * `initial_latents` with the case's prompt and negative embeddings, every step compared
 * (`stepComparisons`); `adapter` for a decomposition. Returns the denoised in-box tokens.
 */
export async function denoiseCase(
  denoiser: Denoiser,
  grid: TokenGrid,
  p: CaseSteps,
  inputs: Map<string, { shape: number[]; data: Float32Array }>,
  inputsFile: string,
  ref: (name: string) => Float32Array,
  comparisons: Comparison[],
  adapter?: DenoiseJob['adapter'],
): Promise<Float32Array> {
  const schedule = denoiser.schedule(p.steps, grid);
  comparisons.push(compareFloat('timesteps', schedule.timesteps, ref('timesteps')));
  comparisons.push(compareFloat('sigmas', schedule.sigmas, ref('sigmas')));
  return denoiser.denoise({
    grid,
    initial: gatherTokens(need(inputs, 'initial_latents', inputsFile).data, grid),
    positive: caseText(inputs, inputsFile, 'prompt_embeds', 'pooled_prompt_embeds'),
    negative: caseText(inputs, inputsFile, 'negative_prompt_embeds', 'negative_pooled_prompt_embeds'),
    steps: p.steps,
    guidance: p.guidance_embedding,
    trueCfg: p.true_cfg,
    adapter,
    onStep: stepComparisons(grid, ref('latents_denoised').length, ref, comparisons),
  });
}
