/**
 * `npm run convert -- --art <ART_v1.0 dir> --flux <FLUX.1-dev dir> --out <model dir>
 * [--precision fp32|fp16|int4]`: reads the Hugging Face layouts (ART: `transformer/`, `transp_vae/`;
 * FLUX.1-dev: `text_encoder/`, `text_encoder_2/`, `tokenizer/`, `tokenizer_2/`, `vae/`,
 * `scheduler/`), checks that the parts fit together and that the disk has room, and writes a
 * model folder (resumable; complete only once renamed into place).
 *
 * Other sources (see USAGE): `--transformer-base <FLUX.1-dev>` + `--layer-pe` builds ART's
 * transformer from FLUX.1-dev's (the ART+ / thuteam/CLD recipe, with their `--lora` files),
 * `--transp-vae` takes the transparent decoder from a folder or a PyTorch checkpoint, `--lora`
 * fuses LoRAs (lora.ts), `--check` verifies everything and writes nothing. `--adapter`,
 * `--adapter-lora`, `--layer-lora` and `--decompose-layer-pe` add decomposition (CLD, see
 * planTransformer and adapter-source.ts).
 */
import { copyFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { RESOLUTIONS } from '../../domain/layout.ts';
import { LATENT_CHANNELS, T5_TOKENS } from '../constants.ts';
import type { JobKind } from '../../domain/job-kind.ts';
import { parseClipTextConfig } from '../models/clip-text.ts';
import { parseT5Config } from '../models/t5-encoder.ts';
import { parseTransformerConfig, type JobSwitch } from '../models/transformer.ts';
import { parseTransparentDecoderConfig } from '../models/transparent-decoder.ts';
import { parseVaeConfig } from '../models/vae.ts';
import { checkpointWeights, type WeightSource } from '../onnx/graph.ts';
import { schedulerConfigFromDiffusers } from '../pipeline/scheduler.ts';
import { CLIP_TOKENIZER_FILES, T5_TOKENIZER_FILES } from '../text/tokenizer-files.ts';
import { graphBuilders, type ModelComponents } from './graphs.ts';
import { fusedWeights, loadLora, loadLoras, loraFileIn, parseLoraArg, recordOf, type FusedLora, type LoadedLora, type LoraSpec, type LoraUpdate } from './lora.ts';
import { folderGraphs, ModelFolderError, PRECISIONS, type Manifest, type Precision } from './manifest.ts';
import { planAdapter } from './adapter-source.ts';
import { elementsOf, openTensorFile, type TensorFile } from './weight-files.ts';
import { freeBytes, writeModelFolder, type FolderProgress } from './write-folder.ts';

/** Where each part of a conversion comes from (the CLI's flags). */
export interface ConvertSources {
  /** ART_v1.0 in its original layout: `transformer/` (with `layer_pe`) and `transp_vae/`. */
  art?: string;
  /** FLUX.1-dev: text encoders, tokenizers, VAE, scheduler. */
  flux: string;
  /** Builds ART's transformer from FLUX.1-dev's (`<dir>/transformer/` or the folder itself) instead of --art. */
  transformerBase?: string;
  /** ART's `layer_pe` (`[1, layers, 1, 1, dim]`), safetensors or PyTorch; needed with --transformer-base. */
  layerPe?: string;
  /** The transparent decoder: a folder or one file (safetensors or PyTorch); replaces --art's transp_vae/. */
  transpVae?: string;
  /** LoRAs fused into the transformer, in order. */
  loras?: LoraSpec[];
  /** Decomposition (thuteam/CLD): the FLUX.1-dev-Controlnet-Inpainting-Alpha folder, the adapter's base. */
  adapter?: string;
  /** CLD's `decouple_LoRA/adapter` LoRA (file or folder), fused into the adapter. */
  adapterLora?: string;
  /** CLD's `decouple_LoRA/transformer` LoRA (file or folder): the transformer's "layer" LoRA for decomposition. */
  layerLora?: string;
  /** CLD's `decouple_LoRA/layer_pe.pth`: the transformer's (and adapter's) layer_pe for decomposition. */
  decomposeLayerPe?: string;
}

/** The four CLD downloads decomposition needs, all or none. */
interface DecomposeSources {
  adapter: string;
  adapterLora: string;
  layerLora: string;
  layerPe: string;
}

function decomposeSources(src: ConvertSources): DecomposeSources | undefined {
  const given: Array<[string, string | undefined]> = [['--adapter', src.adapter], ['--adapter-lora', src.adapterLora], ['--layer-lora', src.layerLora], ['--decompose-layer-pe', src.decomposeLayerPe]];
  const missing = given.filter(([, v]) => !v).map(([flag]) => flag);
  if (missing.length === given.length) return undefined;
  if (missing.length > 0) {
    throw new ModelFolderError(
      `decomposition needs ${given.map(([f]) => f).join(', ')} together (FLUX.1-dev-Controlnet-Inpainting-Alpha and thuteam/CLD's decouple_LoRA/adapter, decouple_LoRA/transformer, decouple_LoRA/layer_pe.pth); missing ${missing.join(', ')}`,
    );
  }
  return { adapter: src.adapter!, adapterLora: loraFileIn(src.adapterLora!), layerLora: loraFileIn(src.layerLora!), layerPe: src.decomposeLayerPe! };
}

export interface ConvertOptions extends ConvertSources {
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

/** One input part, as `--check` prints it. */
export interface PartSummary {
  what: string;
  source: string;
  tensors: number;
  parameters: number;
  dtypes: string[];
}

export interface ConvertPlan {
  name: string;
  /** What the folder will run. */
  jobs: JobKind[];
  components: ModelComponents;
  scheduler: ReturnType<typeof schedulerConfigFromDiffusers>;
  /** Weight bytes of the graphs at the chosen precision. */
  bytes: number;
  tokenizerDirs: { clip: string; t5: string };
  /** The LoRAs applied, as the manifest records them. */
  loras: FusedLora[];
  /** Tensors of the adapter's folder it does not use (none in the real one). */
  unusedAdapterTensors: string[];
  parts: PartSummary[];
}

function summary(what: string, f: { source: string; tensors: Map<string, { shape: number[]; dtype: string }> }, extra: Array<{ shape: number[]; dtype: string }> = []): PartSummary {
  const all = [...f.tensors.values(), ...extra];
  return { what, source: f.source, tensors: all.length, parameters: all.reduce((n, t) => n + elementsOf(t.shape), 0), dtypes: [...new Set(all.map((t) => t.dtype))].sort() };
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

/** Every weight must be a float tensor (int tensors in a weights file mean the wrong file). */
function checkFloat(part: PartSummary, f: TensorFile): void {
  for (const [name, t] of f.tensors) {
    if (!FLOAT_DTYPES.has(t.dtype)) throw new ModelFolderError(`${part.what} (${f.source}): tensor "${name}" is ${t.dtype}, not a float weight; is this the right file?`);
  }
}

export interface LayerPe {
  shape: number[];
  dtype: string;
  data: () => Float32Array;
  source: string;
}

/** A layer_pe from its own file (`flag` names it in errors): the tensor named `layer_pe`, or the file's only tensor. */
export function readLayerPe(spec: string, inner: number, flag = '--layer-pe'): LayerPe {
  const f = openTensorFile(spec, `the layer_pe (${flag})`);
  const name = f.tensors.has('layer_pe') ? 'layer_pe' : f.tensors.size === 1 ? [...f.tensors.keys()][0] : undefined;
  if (name === undefined) throw new ModelFolderError(`${flag} ${spec}: no tensor named layer_pe among ${[...f.tensors.keys()].slice(0, 5).join(', ')}; select it with file#key`);
  const t = f.tensors.get(name)!;
  const [one, layers, h, w, dim] = t.shape;
  if (t.shape.length !== 5 || one !== 1 || h !== 1 || w !== 1 || dim !== inner || !(layers > 0)) {
    throw new ModelFolderError(`${flag} ${spec}: layer_pe is [${t.shape}] but this transformer needs [1, layers, 1, 1, ${inner}] (ART's is [1, 52, 1, 1, 3072])`);
  }
  if (!FLOAT_DTYPES.has(t.dtype)) throw new ModelFolderError(`${flag} ${spec}: layer_pe is ${t.dtype}, not a float tensor; is this the right file?`);
  return { shape: t.shape, dtype: t.dtype, data: () => f.readFloat32(name), source: f.source };
}

/** The weight key of the decomposition's layer_pe in a transformer built for both jobs. */
const DECOMPOSE_LAYER_PE = 'decompose.layer_pe';

/** LoRA updates by the weight they change. */
function byTarget(lora: LoadedLora): Map<string, LoraUpdate[]> {
  const out = new Map<string, LoraUpdate[]>();
  for (const u of lora.updates) out.set(u.target, [...(out.get(u.target) ?? []), u]);
  return out;
}

/**
 * The transformer part: ART's own, or FLUX.1-dev's plus a layer_pe; LoRAs fused on read. With
 * CLD's downloads it also decomposes: alone, the "layer" LoRA is fused and CLD's layer_pe is the
 * layer_pe; beside generation, both stay apart from the shared weights and the graph switches them
 * per job (one copy of the 12 B weights for both jobs).
 */
function planTransformer(src: ConvertSources, decompose: DecomposeSources | undefined) {
  const dir = src.transformerBase
    ? existsSync(join(src.transformerBase, 'transformer')) ? join(src.transformerBase, 'transformer') : src.transformerBase
    : src.art ? join(src.art, 'transformer') : undefined;
  if (!dir) throw new ModelFolderError('no transformer: give --art <ART_v1.0 dir>, or --transformer-base <FLUX.1-dev dir> with --layer-pe <file> (and --lora files)');
  const what = src.transformerBase ? 'the base transformer (--transformer-base)' : 'ART transformer/ (ART_v1.0)';
  need(dir, what);
  const ckpt = openTensorFile(dir, what);
  const configFile = join(dir, 'config.json');
  let config = parseTransformerConfig(readJsonFile(configFile, `the transformer config (${what})`), configFile);
  const inner = config.heads * config.headDim;
  const extra: Array<{ shape: number[]; dtype: string }> = [];
  // Generation's layer_pe: --layer-pe, else the checkpoint's own (ART's); none: the folder only decomposes.
  const generatePe: LayerPe | undefined = src.layerPe
    ? readLayerPe(src.layerPe, inner, '--layer-pe')
    : ckpt.tensors.has('layer_pe') ? { ...ckpt.tensors.get('layer_pe')!, data: () => ckpt.readFloat32('layer_pe'), source: ckpt.source } : undefined;
  if (!generatePe && !decompose) throw new ModelFolderError(`${what} has no layer_pe (FLUX.1-dev's transformer does not): give --layer-pe <file> (ART's layer_pe.pth or .safetensors)`);
  if (generatePe && src.layerPe) extra.push(generatePe);
  const decomposePe = decompose && readLayerPe(decompose.layerPe, inner, '--decompose-layer-pe');
  if (decomposePe) extra.push(decomposePe);
  if (generatePe && decomposePe && generatePe.shape[1] !== decomposePe.shape[1]) {
    throw new ModelFolderError(`the two layer_pe differ in layers: generation's has ${generatePe.shape[1]}, decomposition's ${decomposePe.shape[1]} (${decomposePe.source}); both jobs share the transformer's max_layer_num`);
  }
  const jobs: JobKind[] = [...(generatePe ? ['generate' as const] : []), ...(decomposePe ? ['decompose' as const] : [])];
  const layerPe = (generatePe ?? decomposePe)!;
  config = { ...config, maxLayerNum: layerPe.shape[1] };
  const plain = checkpointWeights(ckpt);
  const both = generatePe && decomposePe;
  const base: WeightSource = {
    describe: [plain.describe, ...(src.layerPe || !generatePe ? [layerPe.source] : []), ...(both ? [decomposePe.source] : [])].join(' + '),
    shape: (k) => (k === 'layer_pe' ? layerPe.shape : both && k === DECOMPOSE_LAYER_PE ? decomposePe.shape : plain.shape(k)),
    read: (k) => (k === 'layer_pe' ? layerPe.data() : both && k === DECOMPOSE_LAYER_PE ? decomposePe.data() : plain.read(k)),
  };
  const { loras, record } = loadLoras(src.loras ?? [], base);
  const layerLora = decompose && loadLora({ file: decompose.layerLora, scale: 1 }, (k) => base.shape(k));
  let weights = fusedWeights(base, loras);
  let jobSwitch: JobSwitch | undefined;
  if (layerLora && both) {
    jobSwitch = { layerPe: DECOMPOSE_LAYER_PE, layerLora: byTarget(layerLora) };
    record.push(recordOf(layerLora, record.length + 1, 'transformer', ['decompose']));
  } else if (layerLora) {
    weights = fusedWeights(base, [...loras, layerLora]);
    record.push(recordOf(layerLora, record.length + 1, 'transformer'));
  }
  const part = summary(src.transformerBase ? `transformer (FLUX.1-dev base + layer_pe${both ? 's' : ''})` : 'transformer (ART_v1.0)', ckpt, extra);
  checkFloat(part, ckpt);
  // Kept beside the weights: A and B of every module the "layer" LoRA changes.
  const branchParameters = jobSwitch && layerLora ? layerLora.updates.reduce((n, u) => n + u.rank * (u.inFeatures + u.rows), 0) : 0;
  return { config, weights, jobSwitch, jobs, record, part, branchParameters, decomposePe, source: ckpt };
}

/** The transparent decoder: --transp-vae (folder or file), else ART's transp_vae/. */
function planTransparentDecoder(src: ConvertSources) {
  const spec = src.transpVae ?? (src.art ? join(src.art, 'transp_vae') : undefined);
  if (!spec) throw new ModelFolderError('no transparent decoder: give --transp-vae <folder or file> (or --art with transp_vae/)');
  const what = src.transpVae ? 'the transparent decoder (--transp-vae)' : 'ART transp_vae/ (the transparent decoder)';
  const ckpt = openTensorFile(spec, what);
  const path = spec.split('#')[0];
  // The official transp_vae ships no config: ART's ViT-B/32 then.
  const configFile = existsSync(path) && statSync(path).isDirectory() ? join(path, 'config.json') : join(dirname(path), 'config.json');
  const config = parseTransparentDecoderConfig(existsSync(configFile) ? readJsonFile(configFile, '') : {});
  const part = summary('transparent decoder', ckpt);
  checkFloat(part, ckpt);
  return { config, weights: checkpointWeights(ckpt), part, source: ckpt };
}

/** Reads and cross-checks every part; nothing is written. */
export function planConversion(src: ConvertSources, precision: Precision): ConvertPlan {
  const flux = resolve(src.flux);
  if (src.art) need(resolve(src.art), 'the ART checkpoint folder (--art) with transformer/ and transp_vae/');
  need(flux, 'the FLUX.1-dev folder (--flux) with text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/, vae/, scheduler/');

  const decompose = decomposeSources(src);
  const transformer = planTransformer(src, decompose);
  const adapter = decompose && transformer.decomposePe ? planAdapter(decompose.adapter, decompose.adapterLora, transformer.decomposePe, transformer.config, readJsonFile) : undefined;
  const transp = planTransparentDecoder(src);
  const clipCkpt = openTensorFile(join(flux, 'text_encoder'), 'FLUX.1-dev text_encoder/ (CLIP-L)');
  const clip = parseClipTextConfig(readJsonFile(join(flux, 'text_encoder', 'config.json'), 'the CLIP text encoder config'), join(flux, 'text_encoder', 'config.json'));
  const t5Ckpt = openTensorFile(join(flux, 'text_encoder_2'), 'FLUX.1-dev text_encoder_2/ (T5-XXL)');
  const t5 = parseT5Config(readJsonFile(join(flux, 'text_encoder_2', 'config.json'), 'the T5 encoder config'), join(flux, 'text_encoder_2', 'config.json'));
  const vaeCkpt = openTensorFile(join(flux, 'vae'), 'FLUX.1-dev vae/');
  const vae = parseVaeConfig(readJsonFile(join(flux, 'vae', 'config.json'), 'the VAE config'));
  const scheduler = schedulerConfigFromDiffusers(readJsonFile(join(flux, 'scheduler', 'scheduler_config.json'), 'the FLUX.1-dev scheduler config') as Record<string, unknown>);
  const tokenizerDirs = { clip: need(join(flux, 'tokenizer'), 'the CLIP tokenizer of FLUX.1-dev'), t5: need(join(flux, 'tokenizer_2'), 'the T5 tokenizer of FLUX.1-dev') };
  need(join(tokenizerDirs.clip, 'vocab.json'), 'CLIP tokenizer vocabulary');
  need(join(tokenizerDirs.clip, 'merges.txt'), 'CLIP tokenizer merges');
  need(join(tokenizerDirs.t5, 'tokenizer.json'), 'the fast T5 tokenizer (tokenizer.json)');

  const mismatch = (what: string) => {
    throw new ModelFolderError(`these checkpoints do not fit together: ${what}`);
  };
  if (transformer.config.jointAttentionDim !== t5.dModel) mismatch(`the transformer takes text of width ${transformer.config.jointAttentionDim} but T5 gives ${t5.dModel}`);
  if (transformer.config.pooledProjectionDim !== clip.hidden) mismatch(`the transformer takes pooled vectors of ${transformer.config.pooledProjectionDim} but CLIP gives ${clip.hidden}`);
  if (vae.latentChannels !== LATENT_CHANNELS) mismatch(`the VAE has ${vae.latentChannels} latent channels, ART needs ${LATENT_CHANNELS}`);

  const parts = [transformer.part, transp.part, summary('CLIP-L text encoder', clipCkpt), summary('T5-XXL encoder', t5Ckpt), summary('VAE', vaeCkpt)];
  for (const [part, f] of [[parts[2], clipCkpt], [parts[3], t5Ckpt], [parts[4], vaeCkpt]] as const) checkFloat(part, f);
  const branch: PartSummary | undefined = transformer.branchParameters > 0 ? { what: 'layer LoRA, kept beside the shared weights (decompose only)', source: transformer.record[transformer.record.length - 1].file, tensors: 0, parameters: transformer.branchParameters, dtypes: [] } : undefined;
  if (branch) parts.push(branch);
  if (adapter) {
    const part = summary(`adapter (FLUX.1-dev-Controlnet-Inpainting-Alpha, ${adapter.config.numLayers} + ${adapter.config.numSingleLayers} blocks)`, adapter.source);
    checkFloat(part, adapter.source);
    parts.push(part);
  }
  // Bytes per weight: int4 stores the transformer in 4 bits plus a scale and zero point per 32.
  const perValue = (p: PartSummary) => (precision === 'fp32' ? 4 : precision === 'int4' && p === transformer.part ? 0.6 : 2);
  const bytes = parts.reduce((n, p) => n + p.parameters * perValue(p), 0);
  const origin = src.transformerBase ? `FLUX.1-dev + ${transformer.jobs.includes('generate') ? 'ART layer_pe' : 'CLD layer_pe'}` : 'ART_v1.0 + FLUX.1-dev';
  const loras = [...transformer.record, ...(adapter ? [recordOf(adapter.lora, transformer.record.length + 1, 'adapter')] : [])];
  const loraNames = transformer.record.map((l) => `${l.file}@${l.scale}${l.jobs ? ` (${l.jobs.join(', ')})` : ''}`).join(', ');
  return {
    name: `${origin}${adapter ? ' + CLD adapter' : ''}${loraNames ? ` + LoRA ${loraNames}` : ''} (${precision})`,
    jobs: transformer.jobs,
    components: {
      transformer: { config: transformer.config, weights: transformer.weights, ...(transformer.jobSwitch ? { jobs: transformer.jobSwitch } : {}) },
      ...(adapter ? { decompose: { adapter: { config: adapter.config, weights: adapter.weights } } } : {}),
      vae: { config: vae, weights: checkpointWeights(vaeCkpt) },
      transparentDecoder: { config: transp.config, weights: transp.weights },
      clip: { config: clip, weights: checkpointWeights(clipCkpt) },
      t5: { config: t5, weights: checkpointWeights(t5Ckpt), seqLen: T5_TOKENS },
    },
    scheduler,
    bytes,
    tokenizerDirs,
    loras,
    unusedAdapterTensors: adapter?.unused ?? [],
    parts,
  };
}

/**
 * `--check`: everything `convert` would verify before writing, and more, in seconds: every part
 * planned (configs, indexes, shard headers, LoRAs), every graph built as structure only (each
 * weight's name and shape checked against its config; no data read), the disk space at `out`.
 * Returns the plan's lines; throws the first problem.
 */
export function checkConversion(src: ConvertSources, precision: Precision, out?: string): string[] {
  const plan = planConversion(src, precision);
  const lines: string[] = [`plan: ${plan.name}`, `  jobs: ${plan.jobs.join(', ')}${plan.jobs.length > 1 ? ' (one transformer graph for both: the job picks its layer_pe and switches the layer LoRA)' : ''}`];
  for (const p of plan.parts) lines.push(`  ${p.what}: ${p.tensors ? `${p.tensors} tensors, ` : ''}${(p.parameters / 1e9).toFixed(3)} B parameters${p.dtypes.length ? ` (${p.dtypes.join(', ')})` : ''} from ${p.source}`);
  for (const l of plan.loras) lines.push(`  LoRA ${l.order}: ${l.file} (${l.format}) into the ${l.into}, scale ${l.scale}, ${l.modules} weights changed, ${l.jobs ? `applied in-graph for ${l.jobs.join(', ')} only` : 'fused'}, sha256 ${l.sha256.slice(0, 16)}...`);
  if (plan.unusedAdapterTensors.length > 0) lines.push(`  adapter: ${plan.unusedAdapterTensors.length} tensors of its folder are not used (${plan.unusedAdapterTensors.slice(0, 3).join(', ')})`);
  const builders = graphBuilders(plan.components, precision);
  for (const name of folderGraphs(plan)) {
    const build = builders[name];
    if (!build) throw new ModelFolderError(`no component to build graph ${name} from`);
    let graph;
    try {
      graph = build();
    } catch (e) {
      throw new ModelFolderError(`graph ${name}: ${(e as Error).message}`);
    }
    lines.push(`  graph ${name}: ${graph.nodes.length} nodes, ${graph.initializers.size} weights`);
  }
  lines.push(`  output: ${(plan.bytes / 2 ** 30).toFixed(2)} GiB of weights at ${precision}`);
  if (out) {
    const free = freeBytes(resolve(out));
    const needBytes = Math.ceil(plan.bytes * 1.02) + (64 << 20);
    if (free < needBytes) throw new ModelFolderError(`not enough disk space for ${resolve(out)}: need about ${(needBytes / 2 ** 30).toFixed(1)} GiB, ${(free / 2 ** 30).toFixed(1)} GiB free; free some space or choose another --out`);
    lines.push(`  disk: ${(free / 2 ** 30).toFixed(1)} GiB free at ${resolve(out)}`);
  }
  return lines;
}

function copyTokenizer(from: string, to: string, names: readonly string[]): void {
  for (const name of names) if (existsSync(join(from, name))) copyFileSync(join(from, name), join(to, name));
}

export function convert(options: ConvertOptions): Manifest {
  const plan = planConversion(options, options.precision);
  return writeModelFolder(
    resolve(options.out),
    {
      name: plan.name,
      tiny: false,
      precision: options.precision,
      resolutions: [...RESOLUTIONS],
      maxLayers: plan.components.transformer.config.maxLayerNum,
      components: plan.components,
      jobs: plan.jobs,
      scheduler: plan.scheduler,
      loras: plan.loras,
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

const USAGE = `usage: npm run convert -- --flux <FLUX.1-dev dir> --out <model dir> [--precision fp32|fp16|int4]
         (--art <ART_v1.0 dir> | --transformer-base <FLUX.1-dev dir> [--layer-pe <file>])
         [--transp-vae <dir or file>] [--lora <file or folder>[:scale] ...] [--check]
         [--adapter <FLUX.1-dev-Controlnet-Inpainting-Alpha dir> --adapter-lora <decouple_LoRA/adapter>
          --layer-lora <decouple_LoRA/transformer> --decompose-layer-pe <decouple_LoRA/layer_pe.pth>]
  the four decomposition flags (thuteam/CLD) add Decompose; with a generation layer_pe (--layer-pe or ART's own)
  the folder runs both jobs over one copy of the transformer, without one it only decomposes
  --check reads and checks everything and prints the plan; it writes nothing (--out optional: its disk space is checked)`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((a) => a !== '--'),
    options: {
      art: { type: 'string' }, flux: { type: 'string' }, out: { type: 'string' }, precision: { type: 'string' },
      'transformer-base': { type: 'string' }, 'layer-pe': { type: 'string' }, 'transp-vae': { type: 'string' },
      lora: { type: 'string', multiple: true }, check: { type: 'boolean' },
      adapter: { type: 'string' }, 'adapter-lora': { type: 'string' }, 'layer-lora': { type: 'string' }, 'decompose-layer-pe': { type: 'string' },
    },
  });
  if (!values.flux || (!values.out && !values.check) || (!values.art && !values['transformer-base'])) {
    console.error(USAGE);
    return 2;
  }
  const precision = (values.precision ?? 'fp16') as Precision;
  if (!PRECISIONS.includes(precision)) {
    console.error(`--precision must be ${PRECISIONS.join(', ')}, got "${precision}"`);
    return 2;
  }
  const sources: ConvertSources = {
    art: values.art, flux: values.flux, transformerBase: values['transformer-base'], layerPe: values['layer-pe'], transpVae: values['transp-vae'],
    loras: (values.lora ?? []).map(parseLoraArg),
    adapter: values.adapter, adapterLora: values['adapter-lora'], layerLora: values['layer-lora'], decomposeLayerPe: values['decompose-layer-pe'],
  };
  const t0 = performance.now();
  if (values.check) {
    for (const line of checkConversion(sources, precision, values.out)) console.log(line);
    console.log(`check passed in ${((performance.now() - t0) / 1000).toFixed(1)} s; nothing was written`);
    return 0;
  }
  const out = values.out as string;
  if (existsSync(`${resolve(out)}.partial`) && statSync(`${resolve(out)}.partial`).isDirectory()) {
    console.error(`resuming the interrupted conversion in ${resolve(out)}.partial`);
  }
  const m = convert({ ...sources, out, precision, onProgress: progressBar() });
  const bytes = Object.values(m.files).reduce((a, f) => a + f.bytes, 0);
  console.error(`\nwrote ${resolve(out)}: ${m.name}, ${(bytes / 2 ** 30).toFixed(2)} GiB in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
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
