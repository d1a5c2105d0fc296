/**
 * Crop vs full attention: ART's layer-wise region crop (only each layer's in-box tokens enter the
 * transformer) against the paper's baseline (every layer's whole canvas in the sequence), with the
 * same graph and the same random weights, on a mid-size config on the CPU. The baseline is the
 * same graph fed a layout whose boxes are all the whole canvas, so the only difference is the
 * token count. Run: `npx tsx bench/crop-vs-full.ts [--side 256] [--text 512] [--runs 5] [--budget-ms 6000] [--children 2,5,10,25,50]`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Layout, MAX_CHILD_LAYERS, validateLayout } from '../domain/layout.ts';
import { buildTransformer, innerDim, parseTransformerConfig, type TransformerConfig } from '../gpu-server/models/transformer.ts';
import { writeModel } from '../gpu-server/onnx/onnx-writer.ts';
import { openSession, ort } from '../gpu-server/onnx/session.ts';
import { transformerTokens } from '../gpu-server/pipeline/layout-tokens.ts';
import { ropeTables } from '../gpu-server/pipeline/rope.ts';
import { transformerFlops } from './flops.ts';
import { fixtureLayout, generatedLayout, wholeCanvas, type NamedLayout } from './layouts.ts';
import { randomTransformerWeights } from './random-transformer.ts';
import { fixed, machineLine, median, table, timeWithin } from './stats.ts';

/** Mid-size: FLUX's block structure and head size (64), 2 double + 4 single blocks, width 384. */
export const MID_CONFIG = {
  patch_size: 1,
  in_channels: 64,
  num_layers: 2,
  num_single_layers: 4,
  attention_head_dim: 64,
  num_attention_heads: 6,
  joint_attention_dim: 512,
  pooled_projection_dim: 256,
  guidance_embeds: true,
  axes_dims_rope: [8, 28, 28],
  max_layer_num: 52,
};

export interface CropVsFullOptions {
  /** Canvas side in pixels (square). Full attention is quadratic in layers x canvas: keep it small. */
  side: number;
  /** Text tokens in the joint sequence (T5's 512 in the real pipeline). */
  textTokens: number;
  /** Most timed runs per measurement, and the time one measurement may take after its warm-up. */
  runs: number;
  budgetMs: number;
  /** Child-layer counts to measure (merged and background come on top). */
  children: number[];
}

export const DEFAULT_OPTIONS: CropVsFullOptions = { side: 256, textTokens: 512, runs: 5, budgetMs: 6000, children: [2, 5, 10, 25, 50] };

export const HOW_TO_READ = `How to read: one transformer forward pass (one CFG branch, batch 1) of a random mid-size
ART config on the CPU. "crop" feeds only the tokens inside each layer's box (ART); "full" feeds
every layer's whole canvas (the paper's baseline), same graph and weights. Tokens are image tokens
(+ the text tokens, the same for both). GFLOP is analytic (projections/MLPs + attention). ms is the
median of the timed runs (runs = crop/full) after one warm-up; the baseline depends only on the
layer count, so it is timed once per count. Speedup = full ms / crop ms (medians), measured in this
run; best-run speedup divides the fastest runs (other processes only ever add time). The
FLOP ratio is what a machine with no overheads would give. Other processes on the machine add noise:
see the load average printed above the table.`;

export type Feeds = Record<string, ort.Tensor>;

export function feedsFor(c: TransformerConfig, layout: Layout, textTokens: number): { feeds: Feeds; imageTokens: number } {
  validateLayout(layout);
  const grid = transformerTokens(layout);
  const n = grid.count;
  const rope = ropeTables(grid.ids, c.axesDimsRope, textTokens);
  // Values do not change the cost; a fixed pattern keeps the runs finite and repeatable.
  const pattern = (len: number) => Float32Array.from({ length: len }, (_, i) => Math.sin(i * 0.37) * 0.5);
  const feeds: Feeds = {
    hidden_states: new ort.Tensor('float32', pattern(n * c.inChannels), [1, n, c.inChannels]),
    token_layer: new ort.Tensor('int64', BigInt64Array.from(grid.layerOf, (v) => BigInt(v)), [n]),
    encoder_hidden_states: new ort.Tensor('float32', pattern(textTokens * c.jointAttentionDim), [1, textTokens, c.jointAttentionDim]),
    pooled_projections: new ort.Tensor('float32', pattern(c.pooledProjectionDim), [1, c.pooledProjectionDim]),
    timestep: new ort.Tensor('float32', Float32Array.of(0.5), [1]),
    rope_cos: new ort.Tensor('float32', rope.cos, [rope.rows, rope.dim]),
    rope_sin: new ort.Tensor('float32', rope.sin, [rope.rows, rope.dim]),
  };
  if (c.guidanceEmbeds) feeds.guidance = new ort.Tensor('float32', Float32Array.of(4), [1]);
  return { feeds, imageTokens: n };
}

/**
 * The layouts measured: generated small boxes (1-4 cells a side) at every count, the fixture's
 * layouts where it has that many layers, and larger generated boxes (1-8 cells) at the largest
 * count, to show how the gain shrinks as boxes grow.
 */
export function benchLayouts(side: number, children: number[]): NamedLayout[] {
  const out: NamedLayout[] = [];
  for (const n of children) {
    const fixture = fixtureLayout(side, n);
    if (fixture && fixture.layout.boxes.length - 2 === n) out.push(fixture);
    out.push(generatedLayout(side, n, 4));
  }
  const most = Math.max(...children);
  out.push(generatedLayout(side, most, 8));
  return out;
}

export interface CropVsFullRow {
  children: number;
  source: string;
  cropTokens: number;
  fullTokens: number;
  cropGflop: number;
  fullGflop: number;
  cropMs: number;
  fullMs: number;
  cropRuns: number;
  fullRuns: number;
  /** Fastest run of each: less sensitive to other processes than the median. */
  cropBestMs: number;
  fullBestMs: number;
}

export async function measureCropVsFull(opts: CropVsFullOptions = DEFAULT_OPTIONS, log: (s: string) => void = console.log): Promise<CropVsFullRow[]> {
  const config = parseTransformerConfig(MID_CONFIG, 'bench mid-size config');
  const dir = mkdtempSync(join(tmpdir(), 'art-bench-'));
  try {
    const path = join(dir, 'transformer.onnx');
    writeModel(buildTransformer(config, randomTransformerWeights(config), 'float32'), path);
    const { session } = await openSession(path, 'cpu');
    try {
      const rows: CropVsFullRow[] = [];
      // The baseline depends only on the layer count (every box is the whole canvas): time it once per count.
      const fullTimes = new Map<number, number[]>();
      for (const { source, layout } of benchLayouts(opts.side, opts.children)) {
        const crop = feedsFor(config, layout, opts.textTokens);
        const full = feedsFor(config, wholeCanvas(layout), opts.textTokens);
        const cropTimes = await timeWithin(() => session.run(crop.feeds), opts.budgetMs, opts.runs);
        const fullTimesHere = fullTimes.get(layout.boxes.length) ?? (await timeWithin(() => session.run(full.feeds), opts.budgetMs, opts.runs));
        fullTimes.set(layout.boxes.length, fullTimesHere);
        const cropMs = median(cropTimes);
        const fullMs = median(fullTimesHere);
        const row: CropVsFullRow = {
          children: layout.boxes.length - 2,
          source,
          cropTokens: crop.imageTokens,
          fullTokens: full.imageTokens,
          cropGflop: transformerFlops(config, crop.imageTokens, opts.textTokens).total / 1e9,
          fullGflop: transformerFlops(config, full.imageTokens, opts.textTokens).total / 1e9,
          cropMs,
          fullMs,
          cropRuns: cropTimes.length,
          fullRuns: fullTimesHere.length,
          cropBestMs: Math.min(...cropTimes),
          fullBestMs: Math.min(...fullTimesHere),
        };
        rows.push(row);
        log(`  measured ${row.children} layers (${source}): crop ${fixed(cropMs)} ms, full ${fixed(fullMs)} ms`);
      }
      return rows;
    } finally {
      await session.release();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function cropVsFullTable(rows: CropVsFullRow[]): string {
  return table(
    ['layers', 'layout', 'tokens crop', 'tokens full', 'GFLOP crop', 'GFLOP full', 'FLOP ratio', 'ms crop', 'ms full', 'runs', 'speedup', 'best-run speedup'],
    rows.map((r) => [
      `${r.children}+2`, r.source, r.cropTokens, r.fullTokens, fixed(r.cropGflop), fixed(r.fullGflop),
      `${fixed(r.fullGflop / r.cropGflop)}x`, fixed(r.cropMs), fixed(r.fullMs), `${r.cropRuns}/${r.fullRuns}`, `${fixed(r.fullMs / r.cropMs)}x`, `${fixed(r.fullBestMs / r.cropBestMs)}x`,
    ]),
  );
}

function parseArgs(argv: string[]): CropVsFullOptions {
  const opts = { ...DEFAULT_OPTIONS };
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--children') {
      opts.children = (argv[i + 1] ?? '').split(',').map(Number);
      if (!opts.children.every((n) => Number.isInteger(n) && n > 0 && n <= MAX_CHILD_LAYERS)) throw new Error(`--children needs a comma-separated list of 1..${MAX_CHILD_LAYERS}, got ${argv[i + 1]}`);
      continue;
    }
    const value = Number(argv[i + 1]);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`${argv[i]} needs a positive integer, got ${argv[i + 1]}`);
    if (argv[i] === '--side') opts.side = value;
    else if (argv[i] === '--text') opts.textTokens = value;
    else if (argv[i] === '--runs') opts.runs = value;
    else if (argv[i] === '--budget-ms') opts.budgetMs = value;
    else throw new Error(`unknown option ${argv[i]} (use --side, --text, --runs, --budget-ms, --children)`);
  }
  return opts;
}

export async function main(opts: CropVsFullOptions = DEFAULT_OPTIONS): Promise<CropVsFullRow[]> {
  const c = parseTransformerConfig(MID_CONFIG);
  console.log(`\n== crop vs full attention: ${c.numLayers} double + ${c.numSingleLayers} single blocks, width ${innerDim(c)} (${c.heads} heads of ${c.headDim}), ` +
    `${opts.side}x${opts.side} canvas, ${opts.textTokens} text tokens, CPU ==`);
  console.log(machineLine());
  const rows = await measureCropVsFull(opts);
  console.log(`${machineLine()}\n\n${cropVsFullTable(rows)}\n\n${HOW_TO_READ}`);
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main(parseArgs(process.argv.slice(2)));
