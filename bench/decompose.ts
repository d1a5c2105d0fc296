/**
 * Decomposition against generation, one denoising step each, on the CPU and on the same layout:
 *
 * - the generation step (the generation transformer graph, CFG batch of 2);
 * - the same step through the builder as it was before the transformer took residuals (the
 *   source of `BEFORE_RESIDUALS`, read from git): residual support must not slow generation;
 * - the same step on a folder for both jobs: the one transformer graph with residual inputs, fed
 *   one-token zeros (`job-switch.ts`), as a generation runs on a folder that also decomposes;
 * - the decomposition step: the adapter once (batch 1) plus that same transformer (batch 2) with
 *   the adapter's residuals, as the pipeline runs it (`noise-predictor.ts`); its excess over the
 *   row before is the adapter's share.
 *
 * Models: the mid-size transformer of crop-vs-full (2 double + 4 single blocks, width 384) and an
 * adapter of 1 double block, the same proportion as alimama's Inpainting-Alpha (6 double, 0 single)
 * to FLUX.1-dev (19 + 38). Random weights: only the times mean anything. All four variants run
 * interleaved, round after round in a turning order, each round's ratios taken against its own
 * baseline, so drift on a shared machine hits them alike.
 * Run: `npx tsx bench/decompose.ts [--rounds 5]`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DEFAULT_GUIDANCE } from '../domain/params.ts';
import { adapterSamples, buildAdapter, parseAdapterConfig, withLayerPe } from '../gpu-server/models/adapter.ts';
import { buildTransformer, innerDim, parseTransformerConfig, type TransformerConfig } from '../gpu-server/models/transformer.ts';
import { type GraphBuilder, memoryWeights, type WeightSource } from '../gpu-server/onnx/graph.ts';
import { writeModel } from '../gpu-server/onnx/onnx-writer.ts';
import { openSession } from '../gpu-server/onnx/session.ts';
import { PACKED_CONDITION } from '../gpu-server/pipeline/condition.ts';
import { GraphSession } from '../gpu-server/pipeline/graph-session.ts';
import { transformerTokens } from '../gpu-server/pipeline/layout-tokens.ts';
import { adapterResiduals, transformerPredictor, type TextEmbeddings } from '../gpu-server/pipeline/noise-predictor.ts';
import { streamNoise, tokenNoise } from '../gpu-server/pipeline/noise.ts';
import { MID_CONFIG } from './crop-vs-full.ts';
import { fixtureLayout } from './layouts.ts';
import { randomTransformerWeights } from './random-transformer.ts';
import { fixed, machineLine, median, table } from './stats.ts';

/** The last transformer builder without residual support (i23's, on the current attention helpers). */
const BEFORE_RESIDUALS = '05eb5c1';
const REPO = resolve(import.meta.dirname, '..');

/** The adapter's own weights (the transformer's keys it has, plus the ControlNet Linears). */
function randomAdapterWeights(config: TransformerConfig, extraChannels: number): WeightSource {
  const base = randomTransformerWeights(config, 2);
  const d = innerDim(config);
  const own = new Map<string, { shape: number[]; data: Float32Array }>();
  const linear = (prefix: string, inDim: number) => {
    own.set(`${prefix}.weight`, { shape: [d, inDim], data: streamNoise(3, prefix, d * inDim).map((v) => v / Math.sqrt(inDim)) });
    own.set(`${prefix}.bias`, { shape: [d], data: new Float32Array(d) });
  };
  for (let i = 0; i < config.numLayers; i++) linear(`controlnet_blocks.${i}`, d);
  for (let i = 0; i < config.numSingleLayers; i++) linear(`controlnet_single_blocks.${i}`, d);
  linear('controlnet_x_embedder', config.inChannels + extraChannels);
  const extra = memoryWeights('random ControlNet Linears', own);
  return { describe: 'random adapter weights', shape: (k) => extra.shape(k) ?? base.shape(k), read: (k) => (own.has(k) ? extra.read(k) : base.read(k)) };
}

/** The transformer builder of `BEFORE_RESIDUALS`, from git, or undefined where there is no history. */
async function builderBeforeResiduals(scratch: string): Promise<typeof buildTransformer | undefined> {
  let source: string;
  try {
    source = execFileSync('git', ['show', `${BEFORE_RESIDUALS}:gpu-server/models/transformer.ts`], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
  const abs = (rel: string) => pathToFileURL(join(REPO, 'gpu-server', rel)).href;
  const file = join(scratch, 'transformer-before.ts');
  writeFileSync(file, source.replace(/from '\.\.\/([^']+)'/g, (_, rel: string) => `from '${abs(rel)}'`));
  return ((await import(pathToFileURL(file).href)) as { buildTransformer: typeof buildTransformer }).buildTransformer;
}

export interface DecomposeBenchRow {
  name: string;
  ms: number;
  ratio: number;
}

export async function measureDecompose(rounds = 5): Promise<{ rows: DecomposeBenchRow[]; tokens: number; layers: number; adapterShare: number }> {
  const scratch = mkdtempSync(join(tmpdir(), 'art-bench-decompose-'));
  const sessions: GraphSession[] = [];
  try {
    const config = parseTransformerConfig(MID_CONFIG, 'bench mid-size config');
    const adapterConfig = parseAdapterConfig({ ...MID_CONFIG, num_layers: 1, num_single_layers: 0, extra_condition_channels: 4 }, 'bench adapter config');
    const weights = randomTransformerWeights(config);
    const open = async (name: string, graph: GraphBuilder) => {
      const path = join(scratch, `${name}.onnx`);
      writeModel(graph, path);
      const s = new GraphSession(name, (await openSession(path, 'cpu')).session);
      sessions.push(s);
      return s;
    };
    const counts = adapterSamples(adapterConfig);
    const generation = await open('transformer', buildTransformer(config, weights));
    const before = await builderBeforeResiduals(scratch);
    let generationBefore: GraphSession | undefined;
    try {
      generationBefore = before && (await open('transformer_before', before(config, weights)));
    } catch (e) {
      console.log(`(the builder of ${BEFORE_RESIDUALS} no longer builds against today's helpers: ${(e as Error).message}; its row is left out)`);
    }
    const shared = await open('transformer_both', buildTransformer(config, weights, 'float32', { residuals: counts }));
    const adapter = await open('adapter', buildAdapter(adapterConfig, withLayerPe(randomAdapterWeights(config, adapterConfig.extraConditionChannels), weights), config.maxLayerNum));

    const named = fixtureLayout(256, 8);
    if (!named) throw new Error('gpu-server/examples/art-validation-layouts.json has no layout with 8 child layers');
    const grid = transformerTokens(named.layout);
    const text = (stream: string): TextEmbeddings => ({
      hidden: streamNoise(4, `${stream}/t5`, 16 * config.jointAttentionDim),
      tokens: 16,
      width: config.jointAttentionDim,
      pooled: streamNoise(4, `${stream}/clip`, config.pooledProjectionDim),
    });
    const job = { grid, positive: text('pos'), negative: text('neg'), guidance: DEFAULT_GUIDANCE, axesDimsRope: config.axesDimsRope, ropeTheta: 10000 };
    const condition = streamNoise(5, 'condition', grid.count * PACKED_CONDITION);
    const variants: [string, ReturnType<typeof transformerPredictor>][] = [
      ['generation step (generation graph)', transformerPredictor(generation, job)],
      ...(generationBefore ? [[`generation step, builder before residual support (${BEFORE_RESIDUALS})`, transformerPredictor(generationBefore, job)] as [string, ReturnType<typeof transformerPredictor>]] : []),
      ['generation step on a folder for both jobs (one-token zero residuals)', transformerPredictor(shared, job)],
      ['decomposition step (adapter once + the same transformer with residuals)', transformerPredictor(shared, { ...job, residuals: adapterResiduals(adapter, job, { condition, conditioningScale: 0.9 }) })],
    ];
    const latents = tokenNoise(1, grid);
    const times = variants.map(() => [] as number[]);
    for (let round = -1; round < rounds; round++) {
      // The order turns each round, so no variant always runs first (after the previous round's last).
      for (let k = 0; k < variants.length; k++) {
        const i = (k + Math.max(round, 0)) % variants.length;
        const t0 = performance.now();
        await variants[i][1].predict(latents, 0.7, true);
        if (round >= 0) times[i].push(performance.now() - t0);
      }
    }
    // Each round's ratio to the same round's baseline, then the median: drift between rounds cancels.
    const ratio = (i: number, to = 0) => median(times[i].map((t, r) => t / times[to][r]));
    const rows = variants.map(([name], i) => ({ name, ms: median(times[i]), ratio: ratio(i) }));
    const last = variants.length - 1;
    return { rows, tokens: grid.count, layers: named.layout.boxes.length, adapterShare: 1 - 1 / ratio(last, last - 1) };
  } finally {
    for (const s of sessions) await s.release();
    rmSync(scratch, { recursive: true, force: true });
  }
}

export async function main(rounds = 5): Promise<void> {
  console.log(`\n== decomposition vs generation, one denoising step, CPU ==\n${machineLine()}`);
  const r = await measureDecompose(rounds);
  console.log(`mid-size transformer (2 double + 4 single, width 384), adapter 1 double block; 256x256, ${r.layers} layers, ${r.tokens} image tokens; median of ${rounds} interleaved rounds, ratios taken within each round\n`);
  console.log(table(['step', 'ms', 'x generation'], r.rows.map((row) => [row.name, fixed(row.ms), fixed(row.ratio, 2)])));
  console.log(`\nthe adapter's share of a decomposition step: ${fixed(r.adapterShare * 100)}%`);
  console.log(`How to read: the first row is the baseline measured in this run; the second is the same step
built by the transformer builder before residual support (same graph: expect 1.00 within noise);
the third is generation on a folder for both jobs (one transformer graph, zero residuals); the last
is a decomposition step on that graph. Random weights; at full size the ratio follows the blocks (adapter 6 double,
batch 1, against 19 double + 38 single, batch 2).`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const i = args.indexOf('--rounds');
  const rounds = i >= 0 ? Number(args[i + 1]) : 5;
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds needs a positive integer, got ${args[i + 1]}`);
  await main(rounds);
}
