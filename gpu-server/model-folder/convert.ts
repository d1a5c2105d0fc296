/**
 * `npm run convert -- --art <ART_v1.0 dir> --flux <FLUX.1-dev dir> --out <model dir>
 * [--precision fp32|fp16|int4]`: reads the Hugging Face layouts (ART: `transformer/`, `transp_vae/`;
 * FLUX.1-dev: `text_encoder/`, `text_encoder_2/`, `tokenizer/`, `tokenizer_2/`, `vae/`,
 * `scheduler/`), checks that the parts fit together and that the disk has room, and writes a
 * model folder (resumable; complete only once renamed into place).
 */
import { copyFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { LATENT_CHANNELS, RESOLUTIONS, T5_TOKENS } from '../constants.ts';
import { parseClipTextConfig } from '../models/clip-text.ts';
import { parseT5Config } from '../models/t5-encoder.ts';
import { parseTransformerConfig } from '../models/transformer.ts';
import { parseTransparentDecoderConfig } from '../models/transparent-decoder.ts';
import { parseVaeConfig } from '../models/vae.ts';
import { checkpointWeights } from '../onnx/graph.ts';
import { Checkpoint, elementCount } from '../onnx/safetensors.ts';
import { schedulerConfigFromDiffusers } from '../pipeline/scheduler.ts';
import { CLIP_TOKENIZER_FILES, T5_TOKENIZER_FILES } from '../text/tokenizer-files.ts';
import { type ModelComponents, type Precision, PRECISIONS } from './graphs.ts';
import { ModelFolderError, type Manifest } from './manifest.ts';
import { writeModelFolder, type FolderProgress } from './write-folder.ts';

export interface ConvertOptions {
  art: string;
  flux: string;
  out: string;
  precision: Precision;
  onProgress?: (p: FolderProgress) => void;
}

function need(path: string, what: string): string {
  if (!existsSync(path)) throw new ModelFolderError(`${path} is missing: ${what}`);
  return path;
}

function readJsonFile(path: string, what: string): unknown {
  need(path, what);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ModelFolderError(`${path} is not valid JSON (${(e as Error).message})`);
  }
}

function openCheckpoint(dir: string, what: string): Checkpoint {
  need(dir, what);
  try {
    return Checkpoint.open(dir);
  } catch (e) {
    throw new ModelFolderError(`${what}: ${(e as Error).message}`);
  }
}

export interface ConvertPlan {
  components: ModelComponents;
  scheduler: ReturnType<typeof schedulerConfigFromDiffusers>;
  /** Weight bytes of the graphs at the chosen precision. */
  bytes: number;
  tokenizerDirs: { clip: string; t5: string };
}

/** Reads and cross-checks every part; nothing is written. */
export function planConversion(artDir: string, fluxDir: string, precision: Precision): ConvertPlan {
  const art = resolve(artDir);
  const flux = resolve(fluxDir);
  need(art, 'the ART checkpoint folder (--art) with transformer/ and transp_vae/');
  need(flux, 'the FLUX.1-dev folder (--flux) with text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/, vae/, scheduler/');

  const transformerCkpt = openCheckpoint(join(art, 'transformer'), 'ART transformer/ (ART_v1.0)');
  const transformer = parseTransformerConfig(readJsonFile(join(art, 'transformer', 'config.json'), 'the ART transformer config'), join(art, 'transformer', 'config.json'));
  const transpCkpt = openCheckpoint(join(art, 'transp_vae'), 'ART transp_vae/ (the transparent decoder)');
  // The official transp_vae ships no config: ART's ViT-B/32 then.
  const transpConfigFile = join(art, 'transp_vae', 'config.json');
  const transparentDecoder = parseTransparentDecoderConfig(existsSync(transpConfigFile) ? readJsonFile(transpConfigFile, '') : {});
  const clipCkpt = openCheckpoint(join(flux, 'text_encoder'), 'FLUX.1-dev text_encoder/ (CLIP-L)');
  const clip = parseClipTextConfig(readJsonFile(join(flux, 'text_encoder', 'config.json'), 'the CLIP text encoder config'), join(flux, 'text_encoder', 'config.json'));
  const t5Ckpt = openCheckpoint(join(flux, 'text_encoder_2'), 'FLUX.1-dev text_encoder_2/ (T5-XXL)');
  const t5 = parseT5Config(readJsonFile(join(flux, 'text_encoder_2', 'config.json'), 'the T5 encoder config'), join(flux, 'text_encoder_2', 'config.json'));
  const vaeCkpt = openCheckpoint(join(flux, 'vae'), 'FLUX.1-dev vae/');
  const vae = parseVaeConfig(readJsonFile(join(flux, 'vae', 'config.json'), 'the VAE config'));
  const scheduler = schedulerConfigFromDiffusers(readJsonFile(join(flux, 'scheduler', 'scheduler_config.json'), 'the FLUX.1-dev scheduler config') as Record<string, unknown>);
  const tokenizerDirs = { clip: need(join(flux, 'tokenizer'), 'the CLIP tokenizer of FLUX.1-dev'), t5: need(join(flux, 'tokenizer_2'), 'the T5 tokenizer of FLUX.1-dev') };
  need(join(tokenizerDirs.clip, 'vocab.json'), 'CLIP tokenizer vocabulary');
  need(join(tokenizerDirs.clip, 'merges.txt'), 'CLIP tokenizer merges');
  need(join(tokenizerDirs.t5, 'tokenizer.json'), 'the fast T5 tokenizer (tokenizer.json)');

  const mismatch = (what: string) => {
    throw new ModelFolderError(`these checkpoints do not fit together: ${what}`);
  };
  if (transformer.jointAttentionDim !== t5.dModel) mismatch(`the transformer takes text of width ${transformer.jointAttentionDim} but T5 gives ${t5.dModel}`);
  if (transformer.pooledProjectionDim !== clip.hidden) mismatch(`the transformer takes pooled vectors of ${transformer.pooledProjectionDim} but CLIP gives ${clip.hidden}`);
  if (vae.latentChannels !== LATENT_CHANNELS) mismatch(`the VAE has ${vae.latentChannels} latent channels, ART needs ${LATENT_CHANNELS}`);

  // Bytes per weight: int4 stores the transformer in 4 bits plus a scale and zero point per 32.
  const perValue = (ck: Checkpoint) => (precision === 'fp32' ? 4 : precision === 'int4' && ck === transformerCkpt ? 0.6 : 2);
  const bytes = [transformerCkpt, transpCkpt, clipCkpt, t5Ckpt, vaeCkpt]
    .map((ck) => [...ck.tensors.values()].reduce((n, t) => n + elementCount(t.shape) * perValue(ck), 0))
    .reduce((a, b) => a + b, 0);
  return {
    components: {
      transformer: { config: transformer, weights: checkpointWeights(transformerCkpt) },
      vae: { config: vae, weights: checkpointWeights(vaeCkpt) },
      transparentDecoder: { config: transparentDecoder, weights: checkpointWeights(transpCkpt) },
      clip: { config: clip, weights: checkpointWeights(clipCkpt) },
      t5: { config: t5, weights: checkpointWeights(t5Ckpt), seqLen: T5_TOKENS },
    },
    scheduler,
    bytes,
    tokenizerDirs,
  };
}

function copyTokenizer(from: string, to: string, names: readonly string[]): void {
  for (const name of names) if (existsSync(join(from, name))) copyFileSync(join(from, name), join(to, name));
}

export function convert(options: ConvertOptions): Manifest {
  const plan = planConversion(options.art, options.flux, options.precision);
  return writeModelFolder(
    resolve(options.out),
    {
      name: `ART_v1.0 + FLUX.1-dev (${options.precision})`,
      tiny: false,
      precision: options.precision,
      resolutions: [...RESOLUTIONS],
      maxLayers: plan.components.transformer.config.maxLayerNum,
      components: plan.components,
      scheduler: plan.scheduler,
      writeTokenizers: (clipDir, t5Dir) => {
        copyTokenizer(plan.tokenizerDirs.clip, clipDir, CLIP_TOKENIZER_FILES);
        copyTokenizer(plan.tokenizerDirs.t5, t5Dir, T5_TOKENIZER_FILES);
      },
    },
    { onProgress: options.onProgress, requiredBytes: plan.bytes },
  );
}

/** One progress bar per graph on stderr. */
function progressBar(): (p: FolderProgress) => void {
  let last = '';
  let lastDraw = 0;
  return (p) => {
    const done = p.totalBytes > 0 ? p.bytesWritten / p.totalBytes : 1;
    const finished = done >= 1 || p.resumed;
    const now = performance.now();
    if (!finished && now - lastDraw < 200) return;
    lastDraw = now;
    const width = 30;
    const bar = '#'.repeat(Math.round(done * width)).padEnd(width, '.');
    const label = `[${p.index}/${p.total}] ${p.graph.padEnd(20)}`;
    const line = p.resumed ? `${label} done in an earlier run` : `${label} [${bar}] ${(done * 100).toFixed(0).padStart(3)}%  ${(p.bytesWritten / 2 ** 30).toFixed(2)} / ${(p.totalBytes / 2 ** 30).toFixed(2)} GiB`;
    if (p.graph !== last && last) process.stderr.write('\n');
    last = p.graph;
    process.stderr.write(`\r${line}`);
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((a) => a !== '--'),
    options: { art: { type: 'string' }, flux: { type: 'string' }, out: { type: 'string' }, precision: { type: 'string' } },
  });
  if (!values.art || !values.flux || !values.out) {
    console.error('usage: npm run convert -- --art <ART_v1.0 dir> --flux <FLUX.1-dev dir> --out <model dir> [--precision fp32|fp16|int4]');
    return 2;
  }
  const precision = (values.precision ?? 'fp16') as Precision;
  if (!PRECISIONS.includes(precision)) {
    console.error(`--precision must be ${PRECISIONS.join(', ')}, got "${precision}"`);
    return 2;
  }
  if (existsSync(`${resolve(values.out)}.partial`) && statSync(`${resolve(values.out)}.partial`).isDirectory()) {
    console.error(`resuming the interrupted conversion in ${resolve(values.out)}.partial`);
  }
  const t0 = performance.now();
  const m = convert({ art: values.art, flux: values.flux, out: values.out, precision, onProgress: progressBar() });
  const bytes = Object.values(m.files).reduce((a, f) => a + f.bytes, 0);
  console.error(`\nwrote ${resolve(values.out)}: ${m.name}, ${(bytes / 2 ** 30).toFixed(2)} GiB in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(`\n${(e as Error).message}`);
      process.exit(1);
    },
  );
}
