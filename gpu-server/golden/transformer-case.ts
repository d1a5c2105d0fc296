/** Golden check of the transformer graph on a `transformer` case (packed tokens in, noise_pred inside the boxes out). */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { validateLayout } from '../../domain/layout.ts';
import { fusedWeights, loadLoras, type LoraSpec } from '../model-folder/lora.ts';
import { buildTransformer, parseTransformerConfig } from '../models/transformer.ts';
import { checkpointWeights, type WeightSource } from '../onnx/graph.ts';
import { Checkpoint } from '../onnx/safetensors.ts';
import { floatTensor, ort, type Provider } from '../onnx/session.ts';
import { transformerTokens, type TokenGrid } from '../pipeline/layout-tokens.ts';
import { gatherTokens, scatterTokens } from '../pipeline/packing.ts';
import { ropeTables, type RopeTables } from '../pipeline/rope.ts';
import { caseLayout, type CaseJson, GoldenError, need, readCase, readFloats, readJson, runGraphOnce } from './case.ts';
import { compareFloat, type Comparison, FP32_TOLERANCE, type GoldenReport } from './compare.ts';

/** Builds variants of the graph for the same case: fp32 (the golden bar), fp16 or int4 (their own bars). */
export interface TransformerVariant {
  precision: 'float32' | 'float16';
  quantize: 'none' | 'int4';
  /** Relative error allowed on noise_pred. */
  tolerance: number;
}

export const FP32_VARIANT: TransformerVariant = { precision: 'float32', quantize: 'none', tolerance: FP32_TOLERANCE };

/** Runs the transformer on the case's feeds: by default a graph built here from the case's weights. */
export type TransformerRun = (feeds: Record<string, ort.Tensor>) => Promise<Record<string, Float32Array>>;

/**
 * Runs one build of the case's graph; `weights` replaces the case's own (e.g. dequantized copies),
 * `run` replaces the graph (e.g. the transformer.onnx of a converted model folder).
 */
export async function runCase(dir: string, variant: TransformerVariant = FP32_VARIANT, weights?: WeightSource, run?: TransformerRun, provider: Provider = 'cpu') {
  const c = readCase(dir);
  const layout = caseLayout(c, join(dir, 'case.json'));
  validateLayout(layout);
  const config = parseTransformerConfig(readJson(join(dir, 'config.json')), join(dir, 'config.json'));
  const inputsFile = join(dir, 'inputs.safetensors');
  const outputsFile = join(dir, 'outputs.safetensors');
  const inputs = readFloats(inputsFile);
  const outputs = readFloats(outputsFile);

  const grid = transformerTokens(layout);
  const latents = need(inputs, 'latents', inputsFile);
  const textTokens = need(inputs, 'encoder_hidden_states', inputsFile).shape[1];
  const rope = ropeTables(grid.ids, config.axesDimsRope, textTokens);
  const comparisons: Comparison[] = [
    compareFloat('img_ids', Float32Array.from(grid.ids), need(inputs, 'img_ids', inputsFile).data, 0),
    compareFloat('rope_cos', rope.cos, need(outputs, 'rope_cos', outputsFile).data),
    compareFloat('rope_sin', rope.sin, need(outputs, 'rope_sin', outputsFile).data),
  ];

  const feeds = fluxFeeds(grid, rope, latents.data, inputs, inputsFile, config.guidanceEmbeds, variant.precision);
  const result = run
    ? await run(feeds)
    : await runGraphOnce(buildTransformer(config, weights ?? caseWeights(dir, c).weights, variant.precision, { intermediates: true, quantize: variant.quantize }), feeds, provider);

  const full = new Float32Array(latents.data.length);
  scatterTokens(result.noise_pred, grid, full);
  const mask = scatterTokens(new Float32Array(grid.count * 64).fill(1), grid, new Float32Array(latents.data.length));
  return { comparisons, result, noisePred: full, mask, outputs, outputsFile };
}

/**
 * The feeds of a FLUX-style graph (the transformer, the adapter) from a case's inputs: `latents`
 * the full per-layer latents, cropped here; text, pooled, timestep and guidance as the case holds them.
 */
export function fluxFeeds(grid: TokenGrid, rope: RopeTables, latents: Float32Array, inputs: Map<string, { shape: number[]; data: Float32Array }>, inputsFile: string, guidance: boolean, precision: 'float32' | 'float16' = 'float32'): Record<string, ort.Tensor> {
  const n = grid.count;
  const context = need(inputs, 'encoder_hidden_states', inputsFile);
  const pooled = need(inputs, 'pooled_projections', inputsFile);
  const feeds: Record<string, ort.Tensor> = {
    hidden_states: floatTensor(gatherTokens(latents, grid), [1, n, 64], precision),
    token_layer: new ort.Tensor('int64', BigInt64Array.from(grid.layerOf, (v) => BigInt(v)), [n]),
    encoder_hidden_states: floatTensor(context.data, context.shape, precision),
    pooled_projections: floatTensor(pooled.data, pooled.shape, precision),
    timestep: new ort.Tensor('float32', need(inputs, 'timestep', inputsFile).data, [1]),
    rope_cos: floatTensor(rope.cos, [rope.rows, rope.dim], precision),
    rope_sin: floatTensor(rope.sin, [rope.rows, rope.dim], precision),
  };
  if (guidance) feeds.guidance = new ort.Tensor('float32', need(inputs, 'guidance', inputsFile).data, [1]);
  return feeds;
}

/** The LoRA files a case lists (`loras`, in `order`), as `--lora` would take them. */
export function caseLoras(dir: string, c: CaseJson): LoraSpec[] {
  if (c.loras === undefined) return [];
  const parsed = caseLorasSchema.safeParse(c.loras);
  if (!parsed.success) throw new GoldenError(`${join(dir, 'case.json')}: "loras" must list { order, file, lora_scale } (${parsed.error.issues[0].message})`);
  return [...parsed.data].sort((a, b) => a.order - b.order).map((l) => ({ file: join(dir, l.file), scale: l.lora_scale }));
}
const caseLorasSchema = z.array(z.object({ order: z.number().int(), file: z.string().min(1), lora_scale: z.number() }));

/** The case's base weights with its LoRAs fused, and after each LoRA (to localize a mapping bug). */
export function caseWeights(dir: string, c: CaseJson): { weights: WeightSource; steps: WeightSource[] } {
  const base = checkpointWeights(Checkpoint.open(join(dir, 'weights.safetensors')));
  const { loras } = loadLoras(caseLoras(dir, c), base);
  const steps = loras.map((_, i) => fusedWeights(base, loras.slice(0, i + 1)));
  return { weights: steps[steps.length - 1] ?? base, steps };
}

/** Fused weights against `fused.<key>` / `after_lora_1.<key>` of extra_outputs (float32 sums: 1e-6). */
function fusedWeightComparisons(dir: string, c: CaseJson): Comparison[] {
  const extraFile = join(dir, 'extra_outputs.safetensors');
  if (c.loras === undefined || !existsSync(extraFile)) return [];
  const { steps } = caseWeights(dir, c);
  const out: Comparison[] = [];
  for (const [name, ref] of readFloats(extraFile)) {
    const m = /^(fused|after_lora_1)\.(.+)$/.exec(name);
    if (!m) continue;
    const source = m[1] === 'fused' ? steps[steps.length - 1] : steps[0];
    out.push(compareFloat(name, source.read(m[2]), ref.data, FUSED_WEIGHT_TOLERANCE));
  }
  return out;
}
const FUSED_WEIGHT_TOLERANCE = 1e-6;

export async function check(dir: string, provider: Provider = 'cpu', variant: TransformerVariant = FP32_VARIANT): Promise<GoldenReport> {
  const fused = fusedWeightComparisons(dir, readCase(dir));
  const { comparisons, result, noisePred, mask, outputs, outputsFile } = await runCase(dir, variant, undefined, undefined, provider);
  comparisons.push(...fused);
  const tol = variant.tolerance;
  comparisons.push(compareFloat('temb', result.temb, need(outputs, 'temb', outputsFile).data, tol));
  comparisons.push(compareFloat('packed_hidden_after_crop', result.packed_hidden_after_crop, need(outputs, 'packed_hidden_after_crop', outputsFile).data, tol));

  // noise_pred is compared inside the boxes only: outside, the reference holds proj_out(norm_out(0)).
  comparisons.push(compareFloat('noise_pred (inside boxes)', noisePred, need(outputs, 'noise_pred', outputsFile).data, tol, mask));
  return { kind: 'transformer', dir, comparisons };
}
