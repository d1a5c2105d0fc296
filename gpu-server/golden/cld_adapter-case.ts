/**
 * Golden check of CLD's adapter and the transformer taking its residuals on a `cld_adapter` case:
 * the adapter's samples (in-box tokens) and the transformer's noise_pred inside the boxes, from
 * the case's models (`config.json` with `transformer` and `adapter`, their state_dicts).
 */
import { validateLayout } from '../../domain/layout.ts';
import { join } from 'node:path';
import { z } from 'zod';
import type { Component } from '../model-folder/graphs.ts';
import { adapterSamples, buildAdapter, checkAdapterFits, parseAdapterConfig, withLayerPe, type AdapterConfig } from '../models/adapter.ts';
import { buildTransformer, doubleSampleName, parseTransformerConfig, sampleForBlock, singleSampleName, type TransformerConfig } from '../models/transformer.ts';
import { checkpointWeights } from '../onnx/graph.ts';
import { Checkpoint } from '../onnx/safetensors.ts';
import { ort, type Provider } from '../onnx/session.ts';
import { PACKED_CONDITION, tokenCondition } from '../pipeline/condition.ts';
import { transformerTokens } from '../pipeline/layout-tokens.ts';
import { scatterTokens } from '../pipeline/packing.ts';
import { ropeTables } from '../pipeline/rope.ts';
import { caseLayout, type CaseJson, GoldenError, need, readCase, readFloats, readJson, runGraphOnce } from './case.ts';
import { compareFloat, type Comparison, type GoldenReport } from './compare.ts';
import { fluxFeeds } from './transformer-case.ts';

export interface CldModels {
  transformer: Component<TransformerConfig>;
  adapter: Component<AdapterConfig>;
}

const cldConfigSchema = z.object({ transformer: z.record(z.unknown()), adapter: z.record(z.unknown()) });

/** The configs of a `cld_adapter` folder (`config.json`: `{ transformer, adapter }`). */
export function cldConfigs(dir: string): { transformer: TransformerConfig; adapter: AdapterConfig } {
  const file = join(dir, 'config.json');
  const parsed = cldConfigSchema.safeParse(readJson(file));
  if (!parsed.success) throw new GoldenError(`${file}: must hold "transformer" and "adapter" configs`);
  const transformer = parseTransformerConfig(parsed.data.transformer, `${file} (transformer)`);
  const adapter = parseAdapterConfig(parsed.data.adapter, `${file} (adapter)`);
  checkAdapterFits(adapter, transformer);
  return { transformer, adapter };
}

/** The case folder's models, as their state_dicts hold them. */
export function cldModels(dir: string): CldModels {
  const configs = cldConfigs(dir);
  return {
    transformer: { config: configs.transformer, weights: checkpointWeights(Checkpoint.open(join(dir, 'transformer.safetensors'))) },
    adapter: { config: configs.adapter, weights: checkpointWeights(Checkpoint.open(join(dir, 'adapter.safetensors'))) },
  };
}

const conditioningScaleOf = (c: CaseJson, file: string): number => {
  if (typeof c.conditioning_scale !== 'number' || !Number.isFinite(c.conditioning_scale)) throw new GoldenError(`${file}: "conditioning_scale" must be a number`);
  return c.conditioning_scale;
};

/** Runs one graph on the case's feeds; its outputs by name. */
export type CldRun = (feeds: Record<string, ort.Tensor>) => Promise<Record<string, Float32Array>>;

/**
 * Runs the adapter and the transformer with its residuals on `inputsDir`'s inputs (a
 * `cld_adapter` folder) and compares with `outputsFile`: every `adapter_block_samples.<i>` /
 * `adapter_single_block_samples.<i>` it holds, and `noise_pred` inside the boxes. `run` replaces
 * the graphs built from `models` (a converted model folder's sessions).
 */
export async function checkCld(kind: string, dir: string, inputsDir: string, models: CldModels, outputsFile: string, run?: { adapter: CldRun; transformer: CldRun }, provider: Provider = 'cpu'): Promise<GoldenReport> {
  const c = readCase(dir);
  const caseFile = join(dir, 'case.json');
  const layout = caseLayout(c, caseFile);
  validateLayout(layout);
  const scale = conditioningScaleOf(c, caseFile);
  const inputsFile = join(inputsDir, 'inputs.safetensors');
  const inputs = readFloats(inputsFile);
  const outputs = readFloats(outputsFile);
  const { transformer, adapter } = models;

  const grid = transformerTokens(layout);
  const latents = need(inputs, 'hidden_states', inputsFile);
  const textTokens = need(inputs, 'encoder_hidden_states', inputsFile).shape[1];
  const rope = ropeTables(grid.ids, transformer.config.axesDimsRope, textTokens);
  const comparisons: Comparison[] = [compareFloat('img_ids', Float32Array.from(grid.ids), need(inputs, 'img_ids', inputsFile).data, 0)];
  const counts = adapterSamples(adapter.config);
  for (const [key, blocks, samples] of [['double_sample_for_block', transformer.config.numLayers, counts.double], ['single_sample_for_block', transformer.config.numSingleLayers, counts.single]] as const) {
    const expected = c[key];
    if (!Array.isArray(expected)) continue;
    const mapping = Array.from({ length: blocks }, (_, i) => sampleForBlock(i, blocks, samples));
    comparisons.push(compareFloat(key, mapping, expected as number[], 0));
  }

  const feeds = fluxFeeds(grid, rope, latents.data, inputs, inputsFile, transformer.config.guidanceEmbeds);
  const cond = need(inputs, 'adapter_cond', inputsFile);
  const runAdapter: CldRun = run?.adapter ?? ((f) => runGraphOnce(buildAdapter(adapter.config, withLayerPe(adapter.weights, transformer.weights), transformer.config.maxLayerNum), f, provider));
  const runTransformer: CldRun = run?.transformer ?? ((f) => runGraphOnce(buildTransformer(transformer.config, transformer.weights, 'float32', { residuals: counts }), f, provider));
  const samples = await runAdapter({
    ...feeds,
    condition: new ort.Tensor('float32', tokenCondition(cond.data, grid), [1, grid.count, PACKED_CONDITION]),
    conditioning_scale: new ort.Tensor('float32', Float32Array.of(scale), [1]),
  });
  const sampleFeeds: Record<string, ort.Tensor> = {};
  const dim = transformer.config.heads * transformer.config.headDim;
  const compareSamples = (count: number, name: (j: number) => string, ref: string) => {
    for (let j = 0; j < count; j++) {
      const data = samples[name(j)];
      sampleFeeds[name(j)] = new ort.Tensor('float32', data, [1, grid.count, dim]);
      comparisons.push(compareFloat(`${ref}.${j}`, data, need(outputs, `${ref}.${j}`, outputsFile).data));
    }
  };
  compareSamples(counts.double, doubleSampleName, 'adapter_block_samples');
  compareSamples(counts.single, singleSampleName, 'adapter_single_block_samples');

  const result = await runTransformer({ ...feeds, ...sampleFeeds });
  const full = new Float32Array(latents.data.length);
  scatterTokens(result.noise_pred, grid, full);
  const mask = scatterTokens(new Float32Array(grid.count * 64).fill(1), grid, new Float32Array(latents.data.length));
  comparisons.push(compareFloat('noise_pred (inside boxes)', full, need(outputs, 'noise_pred', outputsFile).data, undefined, mask));
  return { kind, dir, comparisons };
}

export function check(dir: string, provider: Provider = 'cpu'): Promise<GoldenReport> {
  return checkCld('cld_adapter', dir, dir, cldModels(dir), join(dir, 'outputs.safetensors'), undefined, provider);
}
