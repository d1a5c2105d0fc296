/**
 * Writing a model folder: every graph into `<out>.partial/` (each graph finished is marked, so
 * an interrupted run resumes where it stopped), tokenizers, then `manifest.json` with sizes and
 * checksums, and only then the rename to `<out>`: a folder that looks complete is complete.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { WriteProgress } from '../onnx/onnx-writer.ts';
import type { JobKind } from '../../domain/job-kind.ts';
import type { SchedulerConfig } from '../pipeline/scheduler.ts';
import { graphBuilders, writeGraph, type ModelComponents } from './graphs.ts';
import type { FusedLora } from './lora.ts';
import { adapterSamples } from '../models/adapter.ts';
import { describeFile, folderGraphs, MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION, ModelFolderError, parseManifest, type AnyGraphName, type Manifest, type Precision } from './manifest.ts';

export interface FolderSpec {
  name: string;
  tiny: boolean;
  precision: Precision;
  resolutions: number[];
  maxLayers: number;
  components: ModelComponents;
  /** The jobs the folder runs (default: generation); decomposition needs the adapter component. */
  jobs?: JobKind[];
  scheduler: SchedulerConfig;
  /** LoRAs applied at conversion (recorded in the manifest). */
  loras?: FusedLora[];
  /** Writes the CLIP and T5 tokenizer files into the two folders given (they exist). */
  writeTokenizers: (clipDir: string, t5Dir: string) => void;
}

export interface FolderProgress extends WriteProgress {
  graph: AnyGraphName;
  /** 1-based index of the graph, and the graph count. */
  index: number;
  total: number;
  /** The graph was already written by an earlier, interrupted run. */
  resumed: boolean;
}

export interface WriteFolderOptions {
  onProgress?: (p: FolderProgress) => void;
  /** Bytes the graphs will take; checked against the free space first. */
  requiredBytes?: number;
}

const TOKENIZERS = { clip: 'tokenizer', t5: 'tokenizer_2' } as const;
const doneMarker = (dir: string, name: AnyGraphName) => join(dir, `${name}.done.json`);

interface DoneMarker {
  /** What was built (precision + source name): a marker of another build is not reused. */
  build: string;
  files: Record<string, { bytes: number; sha256: string }>;
}

function readDone(dir: string, name: AnyGraphName, build: string): DoneMarker | null {
  const file = doneMarker(dir, name);
  if (!existsSync(file)) return null;
  try {
    const done = JSON.parse(readFileSync(file, 'utf8')) as DoneMarker;
    if (done.build !== build) return null;
    const intact = Object.entries(done.files).every(([rel, e]) => existsSync(join(dir, rel)) && statSync(join(dir, rel)).size === e.bytes);
    return intact ? done : null;
  } catch {
    return null;
  }
}

/** Free bytes on the file system holding `path` (or its nearest existing parent). */
export function freeBytes(path: string): number {
  let p = resolve(path);
  while (!existsSync(p)) p = dirname(p);
  const s = statfsSync(p);
  return s.bavail * s.bsize;
}

export function writeModelFolder(out: string, spec: FolderSpec, options: WriteFolderOptions = {}): Manifest {
  if (existsSync(join(out, MANIFEST_FILE))) {
    throw new ModelFolderError(`${out} already holds a model folder; delete it or choose another output folder`);
  }
  if (existsSync(out)) throw new ModelFolderError(`${out} exists and is not a model folder; choose another output folder`);
  const partial = `${out}.partial`;
  mkdirSync(partial, { recursive: true });
  if (options.requiredBytes !== undefined) {
    const free = freeBytes(partial);
    // Headroom for the .onnx files and tokenizers.
    const need = Math.ceil(options.requiredBytes * 1.02) + (64 << 20);
    if (free < need) {
      throw new ModelFolderError(`not enough disk space for ${out}: need about ${(need / 2 ** 30).toFixed(1)} GiB, ${(free / 2 ** 30).toFixed(1)} GiB free; free some space or choose another --out`);
    }
  }

  const builders = graphBuilders(spec.components, spec.precision);
  const files: Record<string, { bytes: number; sha256: string }> = {};
  const graphs = {} as Manifest['graphs'];
  const jobs = spec.jobs ?? ['generate'];
  const names = folderGraphs({ jobs });
  // The name says which LoRAs at which scales; their checksums make a marker of other files stale.
  const build = `${spec.precision} ${spec.name} ${jobs.join('+')} ${(spec.loras ?? []).map((l) => l.sha256).join(',')}`;
  names.forEach((name, i) => {
    const report = (p: WriteProgress, resumed: boolean) => options.onProgress?.({ ...p, graph: name, index: i + 1, total: names.length, resumed });
    const done = readDone(partial, name, build);
    let entry: { file: string; data: string[] };
    if (done) {
      entry = { file: `${name}.onnx`, data: Object.keys(done.files).filter((f) => f !== `${name}.onnx`) };
      Object.assign(files, done.files);
      report({ bytesWritten: 1, totalBytes: 1, tensor: '' }, true);
    } else {
      const builder = builders[name];
      if (!builder) throw new ModelFolderError(`no component to build graph ${name} from`);
      entry = writeGraph(partial, name, builder, (p) => report(p, false));
      const marker: DoneMarker = { build, files: {} };
      for (const rel of [entry.file, ...entry.data]) marker.files[rel] = describeFile(partial, rel);
      writeFileSync(doneMarker(partial, name), JSON.stringify(marker));
      Object.assign(files, marker.files);
    }
    graphs[name] = entry;
  });

  const clipDir = join(partial, TOKENIZERS.clip);
  const t5Dir = join(partial, TOKENIZERS.t5);
  mkdirSync(clipDir, { recursive: true });
  mkdirSync(t5Dir, { recursive: true });
  spec.writeTokenizers(clipDir, t5Dir);

  const c = spec.components;
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    formatVersion: MANIFEST_VERSION,
    name: spec.name,
    tiny: spec.tiny,
    precision: spec.precision,
    maxLayers: spec.maxLayers,
    resolutions: spec.resolutions,
    vae: { scalingFactor: c.vae.config.scalingFactor, shiftFactor: c.vae.config.shiftFactor },
    scheduler: spec.scheduler,
    transformer: {
      axesDimsRope: c.transformer.config.axesDimsRope,
      ropeTheta: 10000,
      jointAttentionDim: c.transformer.config.jointAttentionDim,
      pooledProjectionDim: c.transformer.config.pooledProjectionDim,
      guidanceEmbeds: c.transformer.config.guidanceEmbeds,
    },
    transparentDecoder: { axesDimsRope: c.transparentDecoder.config.ropeAxes, ropeTheta: c.transparentDecoder.config.ropeTheta },
    text: { clipTokens: c.clip.config.positions, t5Tokens: c.t5.seqLen },
    graphs,
    jobs,
    ...(c.decompose ? { adapter: (({ double, single }) => ({ doubleSamples: double, singleSamples: single }))(adapterSamples(c.decompose.adapter.config)) } : {}),
    tokenizers: { clip: TOKENIZERS.clip, t5: TOKENIZERS.t5 },
    ...(spec.loras && spec.loras.length > 0 ? { loras: spec.loras } : {}),
    files,
  };
  const text = JSON.stringify(manifest, null, 1);
  parseManifest(text, join(partial, MANIFEST_FILE)); // what we write must load
  for (const name of names) rmSync(doneMarker(partial, name), { force: true });
  writeFileSync(join(partial, MANIFEST_FILE), text);
  renameSync(partial, out);
  return manifest;
}
