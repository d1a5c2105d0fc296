/**
 * The model folder's `manifest.json`: what the converter and the tiny generator write and the
 * runtime loads. Validated once, on load, with errors that name the folder, the field or file,
 * and what to do. Weight checksums are recorded at write time; sizes are checked on every load,
 * the (slow, full-read) sha256 check on request.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join, normalize, sep } from 'node:path';
import { z } from 'zod';
import { JOB_KINDS, type JobKind } from '../../domain/job-kind.ts';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'art-model-folder';
export const MANIFEST_VERSION = 1;

/** The graphs every model folder has. */
export const GRAPH_NAMES = ['transformer', 'vae_encoder', 'vae_decoder', 'transparent_decoder', 'clip_text', 't5_encoder'] as const;
export type GraphName = (typeof GRAPH_NAMES)[number];
/**
 * The graphs a folder has only when it decomposes: CLD's adapter, which reads the flat image.
 * Decomposition's transformer is the folder's one transformer graph (its `job` input switches
 * what differs), so the shared weights are in memory once.
 */
export const DECOMPOSE_GRAPH_NAMES = ['adapter'] as const;
export type DecomposeGraphName = (typeof DECOMPOSE_GRAPH_NAMES)[number];
export type AnyGraphName = GraphName | DecomposeGraphName;

/** The graphs a job runs. */
export const JOB_GRAPHS: Readonly<Record<JobKind, readonly AnyGraphName[]>> = {
  generate: GRAPH_NAMES,
  decompose: [...GRAPH_NAMES, ...DECOMPOSE_GRAPH_NAMES],
};

/** fp32 (CPU, tests), fp16 (GPU), int4 (GPU with 12-16 GB: 4-bit weight-only transformer, fp16 elsewhere). */
export const PRECISIONS = ['fp32', 'fp16', 'int4'] as const;
export type Precision = (typeof PRECISIONS)[number];

export class ModelFolderError extends Error {
  override name = 'ModelFolderError';
}

const positiveInt = z.number().int().positive();
const relPath = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith('/') && !normalize(p).split(sep).includes('..'), 'must be a path inside the model folder');

const graphEntry = z.object({
  /** The `.onnx` file. */
  file: relPath,
  /** Its external data files (relative paths), possibly none. */
  data: z.array(relPath),
});

const fileEntry = z.object({ bytes: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) });

export const manifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  formatVersion: z.number().int(),
  name: z.string().min(1),
  /** Random weights: images are noise, and every output says so. */
  tiny: z.boolean(),
  precision: z.enum(PRECISIONS),
  maxLayers: positiveInt,
  /** Canvas sides (longest side) the folder is meant for. */
  resolutions: z.array(positiveInt).min(1),
  vae: z.object({ scalingFactor: z.number().positive(), shiftFactor: z.number() }),
  scheduler: z.object({
    numTrainTimesteps: positiveInt,
    baseImageSeqLen: positiveInt,
    maxImageSeqLen: positiveInt,
    baseShift: z.number(),
    maxShift: z.number(),
  }),
  transformer: z.object({
    axesDimsRope: z.array(positiveInt).min(1),
    ropeTheta: z.number().positive(),
    jointAttentionDim: positiveInt,
    pooledProjectionDim: positiveInt,
    guidanceEmbeds: z.boolean(),
  }),
  transparentDecoder: z.object({ axesDimsRope: z.array(positiveInt).length(3), ropeTheta: z.number().positive() }),
  text: z.object({ clipTokens: positiveInt, t5Tokens: positiveInt }),
  graphs: z.object({
    ...(Object.fromEntries(GRAPH_NAMES.map((n) => [n, graphEntry])) as Record<GraphName, typeof graphEntry>),
    ...(Object.fromEntries(DECOMPOSE_GRAPH_NAMES.map((n) => [n, graphEntry.optional()])) as Record<DecomposeGraphName, z.ZodOptional<typeof graphEntry>>),
  }),
  /**
   * The jobs the folder runs (absent in folders from before decomposition: generation). A folder
   * for both has one transformer graph taking `job`, and the adapter graph.
   */
  jobs: z.array(z.enum(JOB_KINDS)).min(1).default(['generate']),
  /** CLD's adapter, when the folder decomposes: its residual samples per block kind. */
  adapter: z.object({ doubleSamples: z.number().int().nonnegative(), singleSamples: z.number().int().nonnegative() }).optional(),
  tokenizers: z.object({ clip: relPath, t5: relPath }),
  /** LoRAs applied at conversion, in the order applied (absent: none). */
  loras: z
    .array(
      z.object({
        order: positiveInt,
        file: z.string().min(1),
        sha256: z.string().regex(/^[0-9a-f]{64}$/),
        scale: z.number().finite(),
        format: z.enum(['diffusers_peft', 'kohya_flux']),
        modules: z.number().int().nonnegative(),
        /** The graph it changes. */
        into: z.enum(['transformer', 'adapter']).default('transformer'),
        /** The jobs it applies to: fused when all the folder's jobs, else kept beside the weights and switched per job. */
        jobs: z.array(z.enum(JOB_KINDS)).min(1).optional(),
      }),
    )
    .optional(),
  /** Every graph and weight file with its size and sha256. */
  files: z.record(relPath, fileEntry),
});

export type Manifest = z.infer<typeof manifestSchema>;

/** Parses and validates manifest JSON text; `where` names the file in errors. */
export function parseManifest(text: string, where: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ModelFolderError(`${where} is corrupt (not valid JSON: ${(e as Error).message}); re-run the conversion or \`npm run tiny\``);
  }
  const head = raw as { format?: unknown; formatVersion?: unknown } | null;
  if (head && typeof head === 'object' && head.format === MANIFEST_FORMAT && typeof head.formatVersion === 'number' && head.formatVersion !== MANIFEST_VERSION) {
    throw new ModelFolderError(`${where}: format version ${head.formatVersion}, but this program reads version ${MANIFEST_VERSION}; re-convert the model with this version`);
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue.path.length ? issue.path.join('.') : '(top level)';
    throw new ModelFolderError(`${where}: bad manifest at "${path}": ${issue.message}; re-run the conversion or \`npm run tiny\``);
  }
  const m = parsed.data;
  if (m.formatVersion !== MANIFEST_VERSION) {
    throw new ModelFolderError(`${where}: format version ${m.formatVersion}, but this program reads version ${MANIFEST_VERSION}; re-convert the model with this version`);
  }
  const decomposes = m.jobs.includes('decompose');
  if (decomposes !== (m.graphs.adapter !== undefined) || decomposes !== (m.adapter !== undefined)) {
    throw new ModelFolderError(`${where}: ${decomposes ? 'jobs include decompose but the adapter graph or its "adapter" entry is missing' : 'an adapter but jobs do not include decompose'} (manifest inconsistent); re-run the conversion`);
  }
  for (const name of folderGraphs(m)) {
    const g = graphOf(m, name);
    for (const f of [g.file, ...g.data]) {
      if (!m.files[f]) throw new ModelFolderError(`${where}: graph "${name}" uses ${f}, which "files" does not list (manifest inconsistent); re-run the conversion`);
    }
  }
  return m;
}

/** The graphs of a folder: those of every job it runs. */
export function folderGraphs(m: Pick<Manifest, 'jobs'>): AnyGraphName[] {
  return [...new Set(m.jobs.flatMap((job) => JOB_GRAPHS[job]))];
}

/** A graph's entry; throws when the folder has no such graph (a job it does not run). */
export function graphOf(m: Pick<Manifest, 'graphs' | 'name'>, name: AnyGraphName): { file: string; data: string[] } {
  const g = m.graphs[name];
  if (!g) throw new ModelFolderError(`model "${m.name}" has no ${name} graph: it was converted without decomposition; convert it with --adapter (see README "Decompose an image")`);
  return g;
}

/** The jobs a folder's model can run (its manifest's `jobs`). */
export function manifestJobs(m: Pick<Manifest, 'jobs'>): JobKind[] {
  return m.jobs;
}

/**
 * Reads and checks a model folder: the manifest, then that every listed file is there with its
 * recorded size and that the tokenizer folders exist.
 */
export function loadManifest(dir: string): Manifest {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new ModelFolderError(`no model folder at ${dir}; convert one with \`npm run convert\` or create the tiny one with \`npm run tiny\``);
  }
  const file = join(dir, MANIFEST_FILE);
  if (!existsSync(file)) {
    throw new ModelFolderError(`${dir} has no ${MANIFEST_FILE}: not a model folder, or its conversion did not finish; re-run \`npm run convert\` (it resumes)`);
  }
  const m = parseManifest(readFileSync(file, 'utf8'), file);
  for (const [rel, entry] of Object.entries(m.files)) {
    const path = join(dir, rel);
    if (!existsSync(path)) throw new ModelFolderError(`${dir}: ${rel} is missing (listed in ${MANIFEST_FILE}); re-run the conversion`);
    const size = statSync(path).size;
    if (size !== entry.bytes) {
      throw new ModelFolderError(`${dir}: ${rel} has ${size} bytes but the manifest says ${entry.bytes} (truncated or replaced); re-run the conversion`);
    }
  }
  for (const [which, rel] of Object.entries(m.tokenizers)) {
    if (!existsSync(join(dir, rel))) throw new ModelFolderError(`${dir}: the ${which} tokenizer folder ${rel} is missing; re-run the conversion`);
  }
  return m;
}

/** sha256 of a file, read in chunks (weight files can be tens of GB). */
export function sha256File(path: string): string {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 22);
  const fd = openSync(path, 'r');
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      hash.update(n === buf.length ? buf : buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/** The `files` entry of one file. */
export function describeFile(dir: string, rel: string): { bytes: number; sha256: string } {
  const path = join(dir, rel);
  return { bytes: statSync(path).size, sha256: sha256File(path) };
}

/** Reads every listed file and compares its sha256; returns the files that differ. */
export function verifyChecksums(dir: string, m: Manifest): string[] {
  return Object.entries(m.files)
    .filter(([rel, entry]) => sha256File(join(dir, rel)) !== entry.sha256)
    .map(([rel]) => rel);
}
