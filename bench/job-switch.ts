/**
 * What generation pays for sharing its transformer with decomposition: a generation step of the
 * one transformer graph built for both jobs (job 0: the "layer" LoRA kept beside the weights is
 * cut to rank 0, the adapter's residual inputs fed as one-token zeros) against the generation-only
 * graph, same weights, same inputs, interleaved in one run. The model is a narrow FLUX (width 768,
 * 2 double + 4 single blocks, 1024 image + 64 text tokens) with CLD's LoRA rank scaled to keep its
 * ratio to the width (64 / 3072 = 16 / 768) on CLD's targets. Decomposition's step (job 1, the
 * LoRA on) is shown beside for scale. Ratios only; CPU, fp32.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTransformer, innerDim, type TransformerConfig } from '../gpu-server/models/transformer.ts';
import type { LowRankUpdate } from '../gpu-server/onnx/lora-branch.ts';
import { writeModel } from '../gpu-server/onnx/onnx-writer.ts';
import { openSession, ort } from '../gpu-server/onnx/session.ts';
import { randomTransformerWeights } from './random-transformer.ts';
import { fixed, median, table, timeRuns } from './stats.ts';

const CONFIG: TransformerConfig = { inChannels: 64, numLayers: 2, numSingleLayers: 4, headDim: 128, heads: 6, jointAttentionDim: 512, pooledProjectionDim: 128, guidanceEmbeds: true, axesDimsRope: [16, 56, 56], maxLayerNum: 52 };
const RANK = 16;
const IMAGE_TOKENS = 1024;
const TEXT_TOKENS = 64;
const ADAPTER_BLOCKS = 2;

function lowRank(rows: number, inFeatures: number, seed: number): LowRankUpdate {
  const fill = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 0.37) * 0.01);
  return { rank: RANK, inFeatures, rows, down: fill(RANK * inFeatures), up: fill(rows * RANK), scale: 1 };
}

/** CLD's targets: every attention projection of the double blocks, q/k/v and proj_out of the single ones. */
function layerLora(c: TransformerConfig): Map<string, LowRankUpdate[]> {
  const d = innerDim(c);
  const out = new Map<string, LowRankUpdate[]>();
  let seed = 1;
  for (let i = 0; i < c.numLayers; i++) for (const m of ['to_q', 'to_k', 'to_v', 'to_out.0', 'add_q_proj', 'add_k_proj', 'add_v_proj', 'to_add_out']) out.set(`transformer_blocks.${i}.attn.${m}.weight`, [lowRank(d, d, seed++)]);
  for (let i = 0; i < c.numSingleLayers; i++) {
    for (const m of ['attn.to_q', 'attn.to_k', 'attn.to_v']) out.set(`single_transformer_blocks.${i}.${m}.weight`, [lowRank(d, d, seed++)]);
    out.set(`single_transformer_blocks.${i}.proj_out.weight`, [lowRank(d, 5 * d, seed++)]);
  }
  return out;
}

export async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-job-switch-'));
  try {
    const c = CONFIG;
    const d = innerDim(c);
    const base = randomTransformerWeights(c);
    const weights = { ...base, shape: (k: string) => (k === 'decompose.layer_pe' ? base.shape('layer_pe') : base.shape(k)), read: (k: string) => base.read(k === 'decompose.layer_pe' ? 'layer_pe' : k) };
    writeModel(buildTransformer(c, base), join(dir, 'plain.onnx'));
    writeModel(buildTransformer(c, weights, 'float32', { residuals: { double: ADAPTER_BLOCKS, single: 0 }, jobs: { layerPe: 'decompose.layer_pe', layerLora: layerLora(c) } }), join(dir, 'both.onnx'));
    const plain = (await openSession(join(dir, 'plain.onnx'), 'cpu')).session;
    const both = (await openSession(join(dir, 'both.onnx'), 'cpu')).session;

    const n = IMAGE_TOKENS;
    const f32 = (dims: number[], v = 0.1) => new ort.Tensor('float32', Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * v)), dims);
    const feeds = {
      hidden_states: f32([1, n, 64]),
      token_layer: new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(i % 4)), [n]),
      encoder_hidden_states: f32([1, TEXT_TOKENS, c.jointAttentionDim]),
      pooled_projections: f32([1, c.pooledProjectionDim]),
      timestep: new ort.Tensor('float32', Float32Array.of(0.5), [1]),
      guidance: new ort.Tensor('float32', Float32Array.of(4), [1]),
      rope_cos: f32([TEXT_TOKENS + n, c.headDim], 0.01),
      rope_sin: f32([TEXT_TOKENS + n, c.headDim], 0.02),
    };
    const job = (i: number) => new ort.Tensor('int64', BigInt64Array.of(BigInt(i)), [1]);
    const zero = Object.fromEntries(Array.from({ length: ADAPTER_BLOCKS }, (_, j) => [`adapter_block_sample_${j}`, new ort.Tensor('float32', new Float32Array(d), [1, 1, d])]));
    const samples = Object.fromEntries(Array.from({ length: ADAPTER_BLOCKS }, (_, j) => [`adapter_block_sample_${j}`, f32([1, n, d], 0.003)]));
    const runs = { plain: [] as number[], generate: [] as number[], decompose: [] as number[] };
    // Interleaved rounds: the machine's drift hits all three alike.
    for (let round = 0; round < 5; round++) {
      runs.plain.push(...(await timeRuns(() => plain.run(feeds), 2, round === 0 ? 1 : 0)));
      runs.generate.push(...(await timeRuns(() => both.run({ ...feeds, ...zero, job: job(0) }), 2, round === 0 ? 1 : 0)));
      runs.decompose.push(...(await timeRuns(() => both.run({ ...feeds, ...samples, job: job(1) }), 2, round === 0 ? 1 : 0)));
    }
    const p = median(runs.plain);
    console.log(`\njob switch: a generation step on the transformer shared with decomposition vs the generation-only graph (CPU fp32, width ${d}, rank ${RANK}, ${n} + ${TEXT_TOKENS} tokens, 10 runs each, medians)`);
    console.log(table(['graph', 'ms', 'ratio'], [
      ['generation only', fixed(p), '1.00'],
      ['both jobs, job 0 (generate)', fixed(median(runs.generate)), fixed(median(runs.generate) / p, 3)],
      ['both jobs, job 1 (decompose: LoRA on, samples added)', fixed(median(runs.decompose)), fixed(median(runs.decompose) / p, 3)],
    ]));
    await plain.release();
    await both.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
