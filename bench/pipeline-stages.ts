/**
 * Pipeline stages: where one generation's time goes, stage by stage, on the CPU. The pipeline is
 * assembled from its own parts (as gpu-server/pipeline/art-pipeline.ts does) with every graph
 * timed, for two model folders written here: the tiny model, and a mid-size one (the
 * crop-vs-full transformer, 2 double + 4 single blocks of width 384; text encoders, VAE and
 * transparent decoder stay tiny). Run: `npx tsx bench/pipeline-stages.ts [--steps 4]`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BACKGROUND_LAYER, type Layout, MAX_LAYERS, MERGED_LAYER, RESOLUTIONS } from '../domain/layout.ts';
import { DEFAULT_GUIDANCE, DEFAULT_STEPS, DEFAULT_TRUE_CFG } from '../domain/params.ts';
import { encodePng } from '../gpu-server/pipeline/png.ts';
import { GRAPH_NAMES, loadManifest, type GraphName, type Manifest } from '../gpu-server/model-folder/manifest.ts';
import { tinyComponents, TINY_SEED, writeTinyModel } from '../gpu-server/model-folder/tiny.ts';
import { writeModelFolder } from '../gpu-server/model-folder/write-folder.ts';
import { parseTransformerConfig } from '../gpu-server/models/transformer.ts';
import { openSession } from '../gpu-server/onnx/session.ts';
import { Denoiser } from '../gpu-server/pipeline/denoiser.ts';
import { patchesToLayerImages } from '../gpu-server/models/transparent-decoder.ts';
import { GraphSession, type Feed } from '../gpu-server/pipeline/graph-session.ts';
import { transformerTokens } from '../gpu-server/pipeline/layout-tokens.ts';
import { tokenNoise } from '../gpu-server/pipeline/noise.ts';
import { FLUX_SCHEDULER } from '../gpu-server/pipeline/scheduler.ts';
import { TextEncoder } from '../gpu-server/pipeline/text-encoder.ts';
import { loadClipTokenizer } from '../gpu-server/text/clip-tokenizer.ts';
import { loadT5Tokenizer } from '../gpu-server/text/t5-tokenizer.ts';
import { writeTinyClipTokenizer, writeTinyT5Tokenizer } from '../gpu-server/text/tokenizer-tiny.ts';
import { MID_CONFIG } from './crop-vs-full.ts';
import { fixtureLayout } from './layouts.ts';
import { randomTransformerWeights } from './random-transformer.ts';
import { fixed, machineLine, median, table } from './stats.ts';

const PROMPT = 'A poster with a pastel gradient background, floral elements and the quote "You\'re free to be different."';

/** A graph session that adds up the time of its runs. */
class TimedGraph extends GraphSession {
  ms = 0;
  runs = 0;
  override async run(feeds: Record<string, Feed>, outputs: readonly string[]) {
    const t0 = performance.now();
    try {
      return await super.run(feeds, outputs);
    } finally {
      this.ms += performance.now() - t0;
      this.runs++;
    }
  }
}

/** The tiny model with the transformer swapped for the mid-size one (text widths follow the tiny encoders). */
function writeMidModel(out: string): Manifest {
  const tiny = tinyComponents(TINY_SEED);
  const config = parseTransformerConfig({ ...MID_CONFIG, joint_attention_dim: tiny.t5.config.dModel, pooled_projection_dim: tiny.clip.config.hidden }, 'bench mid-size config');
  return writeModelFolder(out, {
    name: 'bench mid-size transformer (random weights)',
    tiny: true,
    precision: 'fp32',
    resolutions: [...RESOLUTIONS],
    maxLayers: MAX_LAYERS,
    components: { ...tiny, transformer: { config, weights: randomTransformerWeights(config) } },
    scheduler: FLUX_SCHEDULER,
    writeTokenizers: (clipDir, t5Dir) => {
      writeTinyClipTokenizer(clipDir, 1000);
      writeTinyT5Tokenizer(t5Dir, 1000);
    },
  });
}

export interface StageTimes {
  model: string;
  layout: Layout;
  tokens: number;
  steps: number;
  /** Stage name -> ms, in pipeline order. */
  stages: [string, number][];
  stepMs: number[];
}

async function measureFolder(dir: string, layout: Layout, steps: number): Promise<StageTimes> {
  const manifest = loadManifest(dir);
  const graphs = {} as Record<GraphName, TimedGraph>;
  for (const name of GRAPH_NAMES) graphs[name] = new TimedGraph(name, (await openSession(join(dir, manifest.graphs[name].file), 'cpu')).session);
  try {
    const clip = loadClipTokenizer(join(dir, manifest.tokenizers.clip), manifest.text.clipTokens);
    const t5 = loadT5Tokenizer(join(dir, manifest.tokenizers.t5), manifest.text.t5Tokens);
    const settings = { vae: manifest.vae, scheduler: manifest.scheduler, transformer: manifest.transformer, transparentDecoder: manifest.transparentDecoder };
    const decoders = { transformer: graphs.transformer, vaeEncoder: graphs.vae_encoder, vaeDecoder: graphs.vae_decoder, transparentDecoder: graphs.transparent_decoder };
    const grid = transformerTokens(layout);

    /** One generation; fresh text cache and grey-latent cache, so nothing is skipped. */
    const generate = async (): Promise<StageTimes> => {
      const text = new TextEncoder({ graph: graphs.clip_text, tokenizer: clip }, { graph: graphs.t5_encoder, tokenizer: t5 });
      const denoiser = new Denoiser(decoders, settings);
      const stages: [string, number][] = [];
      const timed = async <T>(name: string, fn: () => Promise<T> | T): Promise<T> => {
        const t0 = performance.now();
        const out = await fn();
        stages.push([name, performance.now() - t0]);
        return out;
      };
      const [positive, negative] = await timed('text (CLIP + T5, prompt and empty negative)', () => Promise.all([text.encode(PROMPT), text.encode('')]));
      const initial = await timed('noise', () => tokenNoise(1, grid));
      const stepMs: number[] = [];
      let last = performance.now();
      const tokens = await timed(`denoise (${steps} steps, CFG batch of 2)`, () =>
        denoiser.denoise({
          grid, initial, positive, negative, steps, guidance: DEFAULT_GUIDANCE, trueCfg: DEFAULT_TRUE_CFG,
          onStep: () => {
            const now = performance.now();
            stepMs.push(now - last);
            last = now;
          },
        }),
      );
      await timed('grey latent (VAE encoder, once per size)', () => denoiser.greyLatent(layout.width, layout.height));
      const latents = await timed('decoder latents (grey outside boxes)', () => denoiser.decoderLatents(layout, grid, tokens));
      const patches = await timed('transparent decoder (all layers)', () => denoiser.transparentPatches(layout, latents));
      await timed('VAE decoder (merged + background)', () => denoiser.vaeImages(layout, latents, [MERGED_LAYER, BACKGROUND_LAYER]));
      const layers = await timed('RGBA per layer, cropped to its box', () => patchesToLayerImages(patches, layout));
      await timed(`PNG encoding (${layers.length} layers)`, () => layers.map((l) => encodePng(l.width, l.height, l.rgba)));
      return { model: manifest.name, layout, tokens: grid.count, steps, stages, stepMs };
    };
    await generate(); // warm-up: first runs of each shape allocate
    return await generate();
  } finally {
    for (const g of Object.values(graphs)) await g.release();
  }
}

export interface StagesOptions {
  steps: number;
}

export const HOW_TO_READ = `How to read: one generation after a warm-up one, every stage timed on its own (text and
grey-latent caches cleared). "%" is the share of this run's total; "% at ${DEFAULT_STEPS} steps" projects the
denoising stage to the default ${DEFAULT_STEPS} steps with the median step (the other stages do not depend on
the step count). Both models have random weights, so only the times mean anything; at full size
the transformer and the text encoders are far larger and denoising dominates even more.`;

export async function measureStages(opts: StagesOptions = { steps: 4 }): Promise<StageTimes[]> {
  const root = mkdtempSync(join(tmpdir(), 'art-bench-stages-'));
  try {
    const tinyDir = join(root, 'tiny');
    const midDir = join(root, 'mid');
    writeTinyModel(tinyDir);
    writeMidModel(midDir);
    const at = (side: number) => {
      const l = fixtureLayout(side, 8);
      if (!l) throw new Error('gpu-server/examples/art-validation-layouts.json has no layout with 8 child layers');
      return l.layout;
    };
    return [await measureFolder(tinyDir, at(512), opts.steps), await measureFolder(midDir, at(256), opts.steps)];
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

export function stagesTable(r: StageTimes): string {
  const total = r.stages.reduce((a, [, ms]) => a + ms, 0);
  const step = median(r.stepMs);
  const projectedTotal = total - r.stepMs.reduce((a, b) => a + b, 0) + step * DEFAULT_STEPS;
  const rows = r.stages.map(([name, ms]) => {
    const projected = name.startsWith('denoise') ? step * DEFAULT_STEPS : ms;
    return [name, fixed(ms), `${fixed((ms / total) * 100)}%`, `${fixed((projected / projectedTotal) * 100)}%`];
  });
  rows.push(['one denoising step (median; each: ' + r.stepMs.map((s) => fixed(s, 0)).join(', ') + ')', fixed(step), '', '']);
  rows.push(['total', fixed(total), '100%', `${fixed(projectedTotal)} ms`]);
  return `${r.model}: ${r.layout.width}x${r.layout.height}, ${r.layout.boxes.length} layers, ${r.tokens} image tokens\n\n` +
    table(['stage', 'ms', '%', `% at ${DEFAULT_STEPS} steps`], rows);
}

export async function main(opts: StagesOptions = { steps: 4 }): Promise<StageTimes[]> {
  console.log(`\n== pipeline stages: tiny and mid-size model folders, CPU ==\n${machineLine()}`);
  const results = await measureStages(opts);
  for (const r of results) console.log(`\n${stagesTable(r)}`);
  console.log(`\n${HOW_TO_READ}`);
  return results;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const i = args.indexOf('--steps');
  const steps = i >= 0 ? Number(args[i + 1]) : 4;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps needs a positive integer, got ${args[i + 1]}`);
  await main({ steps });
}
