/**
 * The tiny model: a model folder in the real format with seeded random weights, made in seconds
 * on a CPU, so the whole system runs end to end where no real weights are present. Its images
 * are noise. Architectures and key names are those of the golden cases (the official state_dict
 * names at tiny sizes, `test/fixtures/golden/<case>/`); every weight is drawn anew from the seed
 * with the mean and spread of the golden tensor it stands for, so norms stay near 1 and
 * projections near 0 as a trained model's do. It holds a tiny CLD adapter too (the golden
 * `cld_adapter` architecture), so it decomposes images as well as it generates them: into noise.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { MAX_LAYERS, RESOLUTIONS } from '../../domain/layout.ts';
import { T5_TOKENS } from '../constants.ts';
import { checkAdapterFits, parseAdapterConfig, withLayerPe } from '../models/adapter.ts';
import { parseClipTextConfig } from '../models/clip-text.ts';
import { parseT5Config } from '../models/t5-encoder.ts';
import { parseTransformerConfig } from '../models/transformer.ts';
import { parseTransparentDecoderConfig } from '../models/transparent-decoder.ts';
import { parseVaeConfig } from '../models/vae.ts';
import { memoryWeights, type WeightSource } from '../onnx/graph.ts';
import { Checkpoint } from '../onnx/safetensors.ts';
import { streamNoise } from '../pipeline/noise.ts';
import { FLUX_SCHEDULER } from '../pipeline/scheduler.ts';
import { writeTinyClipTokenizer, writeTinyT5Tokenizer } from '../text/tokenizer-tiny.ts';
import type { ModelComponents } from './graphs.ts';
import { MANIFEST_FILE, type Manifest, loadManifest, manifestJobs } from './manifest.ts';
import { writeModelFolder, type WriteFolderOptions } from './write-folder.ts';

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
/** Where the tiny model lives unless told otherwise (git-ignored). */
export const DEFAULT_TINY_DIR = join(REPO_ROOT, 'models', 'tiny');
const GOLDEN = join(REPO_ROOT, 'test', 'fixtures', 'golden');
export const TINY_SEED = 0;
const TINY_VOCAB = 1000;

const readJson = (file: string): Record<string, unknown> => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;

/**
 * Random weights shaped as a golden case's `weights.safetensors`; `reshape` may change a key's
 * shape (the same statistics are used).
 */
function randomLike(caseName: string, seed: number, reshape: Record<string, number[]> = {}, weightsFile = 'weights.safetensors'): WeightSource {
  const file = join(GOLDEN, caseName, weightsFile);
  if (!existsSync(file)) throw new Error(`the tiny model is made from the key names and shapes of ${file}, which is missing; restore test/fixtures/golden from git`);
  const ckpt = Checkpoint.open(file);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const key of ckpt.keys()) {
    const ref = ckpt.readFloat32(key);
    const shape = reshape[key] ?? ckpt.info(key).shape;
    let mean = 0;
    for (const v of ref) mean += v;
    mean /= ref.length;
    let sq = 0;
    for (const v of ref) sq += (v - mean) ** 2;
    const std = ref.length > 1 ? Math.sqrt(sq / (ref.length - 1)) : 0;
    const count = shape.reduce((a, b) => a * b, 1);
    const stream = weightsFile === 'weights.safetensors' ? `${caseName}/${key}` : `${caseName}/${weightsFile}/${key}`;
    const data = streamNoise(seed, stream, count).map((z) => mean + std * z);
    tensors.set(key, { shape, data });
  }
  return memoryWeights(`tiny ${caseName} (seed ${seed})`, tensors);
}

/** The tiny model's components: golden architectures, random weights from `seed`. */
export function tinyComponents(seed = TINY_SEED): ModelComponents {
  const clipConfig = parseClipTextConfig(readJson(join(GOLDEN, 'clip_text', 'config.json')));
  // The golden transformer takes pooled vectors of 24; the tiny model's CLIP gives its own width.
  const transformerJson = { ...readJson(join(GOLDEN, 'transformer', 'config.json')), pooled_projection_dim: clipConfig.hidden };
  const transformerConfig = parseTransformerConfig(transformerJson, 'tiny transformer config');
  const dim = transformerConfig.heads * transformerConfig.headDim;
  const t5Config = parseT5Config(readJson(join(GOLDEN, 't5_encoder', 'config.json')));
  if (t5Config.dModel !== transformerConfig.jointAttentionDim) throw new Error(`tiny model: T5 width ${t5Config.dModel} != transformer joint_attention_dim ${transformerConfig.jointAttentionDim}`);
  const pooledInto = { 'time_text_embed.text_embedder.linear_1.weight': [dim, clipConfig.hidden] };
  const transformer = { config: transformerConfig, weights: randomLike('transformer', seed, pooledInto) };
  const cldJson = readJson(join(GOLDEN, 'cld_adapter', 'config.json'));
  const adapterConfig = parseAdapterConfig({ ...(cldJson.adapter as Record<string, unknown>), pooled_projection_dim: clipConfig.hidden }, 'tiny adapter config');
  checkAdapterFits(adapterConfig, transformerConfig);
  return {
    transformer,
    // Both jobs on one transformer graph, with the same layer_pe for both (a converted CLD folder
    // switches to CLD's layer_pe and "layer" LoRA by the graph's job input).
    decompose: { adapter: { config: adapterConfig, weights: withLayerPe(randomLike('cld_adapter', seed, pooledInto, 'adapter.safetensors'), transformer.weights) } },
    vae: { config: parseVaeConfig(readJson(join(GOLDEN, 'vae', 'config.json'))), weights: randomLike('vae', seed) },
    transparentDecoder: { config: parseTransparentDecoderConfig(readJson(join(GOLDEN, 'transp_vae', 'config.json'))), weights: randomLike('transp_vae', seed) },
    clip: { config: clipConfig, weights: randomLike('clip_text', seed) },
    t5: { config: t5Config, weights: randomLike('t5_encoder', seed), seqLen: T5_TOKENS },
  };
}

/** Writes the tiny model folder at `out`. */
export function writeTinyModel(out: string, seed = TINY_SEED, options: WriteFolderOptions = {}): Manifest {
  return writeModelFolder(
    out,
    {
      name: `tiny (random weights, seed ${seed})`,
      tiny: true,
      precision: 'fp32',
      resolutions: [...RESOLUTIONS],
      maxLayers: MAX_LAYERS,
      components: tinyComponents(seed),
      jobs: ['generate', 'decompose'],
      scheduler: FLUX_SCHEDULER,
      writeTokenizers: (clipDir, t5Dir) => {
        writeTinyClipTokenizer(clipDir, TINY_VOCAB);
        writeTinyT5Tokenizer(t5Dir, TINY_VOCAB);
      },
    },
    options,
  );
}

/** The tiny model folder, made on first use (and remade when an older version lacks the adapter). */
export function ensureTinyModel(dir = DEFAULT_TINY_DIR): Manifest {
  if (existsSync(join(dir, MANIFEST_FILE))) {
    const m = loadManifest(dir);
    if (!m.tiny || manifestJobs(m).includes('decompose')) return m;
    console.error(`${dir}: this tiny model was made before it had an adapter; remaking it`);
    rmSync(dir, { recursive: true, force: true });
  }
  try {
    writeTinyModel(dir);
  } catch (e) {
    // Another process (the bridge and a CLI started together) may have finished it first.
    if (!existsSync(join(dir, MANIFEST_FILE))) throw e;
  }
  return loadManifest(dir);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((a) => a !== '--'),
    options: { out: { type: 'string' }, seed: { type: 'string' }, force: { type: 'boolean' } },
  });
  const out = resolve(values.out ?? DEFAULT_TINY_DIR);
  const seed = values.seed === undefined ? TINY_SEED : Number(values.seed);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`--seed must be a non-negative integer, got ${values.seed}`);
  if (values.force) rmSync(out, { recursive: true, force: true });
  if (existsSync(join(out, MANIFEST_FILE))) {
    console.log(`${out} already holds a model folder (use --force to remake it)`);
    return;
  }
  const t0 = performance.now();
  const m = writeTinyModel(out, seed);
  const bytes = Object.values(m.files).reduce((a, f) => a + f.bytes, 0);
  console.log(`wrote ${out}: ${m.name}, ${Object.keys(m.files).length} files, ${(bytes / 1e6).toFixed(1)} MB, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  console.log('This model has RANDOM weights: everything it generates or decomposes is noise. Use `npm run convert` for real ART weights.');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: unknown) => {
    console.error((e as Error).message);
    process.exit(1);
  });
}
