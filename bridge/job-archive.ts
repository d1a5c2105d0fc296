/**
 * Finished jobs on disk: `<outputs>/<jobId>/layer-<i>.png`, `latents.f32` (the clean latents a
 * later job can keep layers of), `image.png` (a decomposition's uploaded flat image, as received)
 * and `manifest.json`. A job is written to a temporary folder and
 * renamed, so a folder with a job id is always complete; pruning deletes whole folders, and a
 * read that loses a file to it reports the job as gone, never half of it. Job ids are generated
 * by the bridge and checked against JOB_ID_PATTERN before any path is built from one.
 */
import { mkdir, open, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { type BoxTuple, type Layout, validateLayout } from '../domain/layout.ts';
import { JOB_ID_PATTERN } from './protocol/limits.ts';
import type { JobOutcome, WireBase, WireDecomposeParams, WireGenerateParams } from './protocol/messages.ts';
import { PACKED_CHANNELS } from '../gpu-server/constants.ts';
import { transformerTokens } from '../gpu-server/pipeline/layout-tokens.ts';
import { checkLatents } from '../gpu-server/pipeline/keep.ts';
import type { CleanLatents } from '../gpu-server/pipeline/types.ts';
import type { JobKind } from '../domain/job-kind.ts';

export const MANIFEST_FORMAT = 1;
const TMP_PREFIX = '.tmp-';
const MANIFEST_FILE = 'manifest.json';
/** Raw float32, little-endian (the byte order of every platform onnxruntime-node ships for). */
const LATENTS_FILE = 'latents.f32';
const IMAGE_FILE = 'image.png';

export interface ArchivedLayer {
  index: number;
  box: BoxTuple;
  width: number;
  height: number;
  file: string;
}

export interface JobManifest extends JobOutcome {
  format: typeof MANIFEST_FORMAT;
  jobId: string;
  requestId?: string;
  prompt: string;
  layout: Layout;
  /** A decomposition's carry `conditioningScale` too. */
  params: WireGenerateParams | WireDecomposeParams;
  /** What made the layers. */
  job: JobKind;
  createdAt: string;
  finishedAt: string;
  layers: ArchivedLayer[];
  /** The clean latents: `values` float32 in LATENTS_FILE, the token grid of `layout`. */
  latents: { file: string; values: number };
  /** Lineage: the job this one was made from, and the layers it kept. */
  base?: WireBase;
  /** A decomposition's uploaded flat image: `bytes` bytes of PNG in IMAGE_FILE. */
  image?: { file: string; bytes: number };
}

export interface LayerPng {
  index: number;
  box: BoxTuple;
  width: number;
  height: number;
  png: Uint8Array;
}

/** A stored job's manifest, or why there is none to read. */
export type ManifestRead = { ok: true; manifest: JobManifest } | { ok: false; why: string };

/** Why a job id has no manifest when its folder is not there. */
export const NOT_ARCHIVED = 'it is not in the job archive (never existed, or pruned)';

/** A stored job read as a base: its manifest, clean latents and the PNGs of the layers asked for. */
export type BaseRead =
  | { ok: true; manifest: JobManifest; latents: CleanLatents; layers: Map<number, LayerPng> }
  | { ok: false; why: string };

export const layerFile = (index: number) => `layer-${String(index).padStart(2, '0')}.png`;

export class JobArchive {
  /** @param keep how many finished jobs to keep; older ones are deleted after each save. */
  constructor(
    readonly root: string,
    private readonly keep: number,
  ) {
    if (!Number.isInteger(keep) || keep < 1) throw new Error(`job archive limit must be a positive integer, got ${keep}`);
  }

  /** Creates the folder and removes temporary folders a crash left behind. */
  async open(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    for (const name of await readdir(this.root))
      if (name.startsWith(TMP_PREFIX)) await rm(join(this.root, name), { recursive: true, force: true });
  }

  /** `image`: a decomposition's uploaded PNG, kept with its job (`readImage`). */
  async save(manifest: Omit<JobManifest, 'layers' | 'format' | 'latents' | 'image'>, layers: LayerPng[], latents: CleanLatents, image?: Uint8Array): Promise<JobManifest> {
    const jobId = checkedId(manifest.jobId);
    const tmp = join(this.root, `${TMP_PREFIX}${jobId}-${randomBytes(4).toString('hex')}`);
    await mkdir(tmp);
    try {
      const stored: ArchivedLayer[] = [];
      for (const layer of layers) {
        const file = layerFile(layer.index);
        await writeFile(join(tmp, file), layer.png);
        stored.push({ index: layer.index, box: layer.box, width: layer.width, height: layer.height, file });
      }
      const { tokens } = latents;
      await writeFile(join(tmp, LATENTS_FILE), new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength));
      if (image) await writeFile(join(tmp, IMAGE_FILE), image);
      const full: JobManifest = {
        format: MANIFEST_FORMAT,
        ...manifest,
        layers: stored,
        latents: { file: LATENTS_FILE, values: tokens.length },
        ...(image ? { image: { file: IMAGE_FILE, bytes: image.length } } : {}),
      };
      await writeFile(join(tmp, MANIFEST_FILE), JSON.stringify(full, null, 2));
      await rename(tmp, join(this.root, jobId));
      await this.prune();
      return full;
    } catch (error) {
      await rm(tmp, { recursive: true, force: true });
      throw error;
    }
  }

  /**
   * A stored job's manifest: the one place `manifest.json` is read. No folder (never there, or
   * pruned, even while this reads) and a manifest that is not JSON give `ok: false` with the reason.
   */
  async manifest(jobId: string): Promise<ManifestRead> {
    if (!JOB_ID_PATTERN.test(jobId)) return { ok: false, why: 'it is not a job id' };
    try {
      return { ok: true, manifest: JSON.parse(await readFile(join(this.root, jobId, MANIFEST_FILE), 'utf8')) as JobManifest };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ok: false, why: NOT_ARCHIVED };
      if (error instanceof SyntaxError) return { ok: false, why: `its ${MANIFEST_FILE} is not valid JSON` };
      throw error;
    }
  }

  /**
   * One layer's PNG, read into a new buffer after `reserve` free bytes (where a caller writes a
   * frame header): one allocation per layer, no copy. The file name is rebuilt from the index,
   * never taken from the manifest's text.
   */
  async readLayer(jobId: string, index: number, reserve = 0): Promise<Uint8Array> {
    const file = await open(join(this.root, checkedId(jobId), layerFile(index)), 'r');
    try {
      const { size } = await file.stat();
      const out = new Uint8Array(reserve + size);
      let at = 0;
      while (at < size) {
        const { bytesRead } = await file.read(out, reserve + at, size - at, at);
        if (bytesRead === 0) throw new Error(`layer file ${layerFile(index)} of job ${jobId} shrank while being read`);
        at += bytesRead;
      }
      return out;
    } finally {
      await file.close();
    }
  }

  /**
   * Reads a stored job as the base of a new one: manifest, latents (checked against the size its
   * layout needs) and the PNGs of `layers`. Any file missing (never there, or pruned while this
   * reads) or of the wrong size gives `ok: false` with the reason, never a partial base.
   */
  async loadBase(jobId: string, layers: readonly number[]): Promise<BaseRead> {
    const read = await this.manifest(jobId);
    if (!read.ok) return read;
    const { manifest } = read;
    const dir = join(this.root, jobId);
    try {
      const damaged = problem(() => validateLayout(manifest.layout));
      if (damaged) return { ok: false, why: `its stored layout is damaged (${damaged})` };
      const expected = transformerTokens(manifest.layout).count * PACKED_CHANNELS;
      if (manifest.latents.values !== expected) return { ok: false, why: `its manifest records ${manifest.latents.values} latent values, its layout needs ${expected}` };
      const bytes = await readFile(join(dir, LATENTS_FILE));
      if (bytes.byteLength !== expected * 4) return { ok: false, why: `its latents file has ${bytes.byteLength} bytes, not ${expected * 4}` };
      // A copy into its own buffer: aligned for Float32Array, and transferable to the worker.
      const tokens = new Float32Array(expected);
      new Uint8Array(tokens.buffer).set(bytes);
      const bad = problem(() => checkLatents({ layout: manifest.layout, tokens }));
      if (bad) return { ok: false, why: bad };
      const pngs = new Map<number, LayerPng>();
      for (const index of layers) {
        const l = manifest.layers.find((m) => m.index === index);
        if (!l) return { ok: false, why: `it has no layer ${index}` };
        const png = new Uint8Array(await readFile(join(dir, layerFile(l.index))));
        pngs.set(index, { index: l.index, box: l.box, width: l.width, height: l.height, png });
      }
      return { ok: true, manifest, latents: { layout: manifest.layout, tokens }, layers: pngs };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { ok: false, why: NOT_ARCHIVED };
      throw error;
    }
  }

  /** Deletes the oldest finished jobs beyond the limit; returns their ids. */
  async prune(): Promise<string[]> {
    const jobs: { id: string; finishedAt: string }[] = [];
    for (const name of await readdir(this.root)) {
      if (!JOB_ID_PATTERN.test(name)) continue;
      const read = await this.manifest(name).catch(() => undefined);
      jobs.push({ id: name, finishedAt: read?.ok ? read.manifest.finishedAt : '' }); // unreadable: oldest
    }
    jobs.sort((a, b) => (a.finishedAt < b.finishedAt ? 1 : a.finishedAt > b.finishedAt ? -1 : 0));
    const removed = jobs.slice(this.keep).map((j) => j.id);
    for (const id of removed) await rm(join(this.root, id), { recursive: true, force: true });
    return removed;
  }
}

/** The message of what `check` throws, or undefined. */
function problem(check: () => void): string | undefined {
  try {
    check();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

function checkedId(jobId: string): string {
  if (!JOB_ID_PATTERN.test(jobId)) throw new Error(`refusing to store a job with id "${jobId}" (not a bridge job id)`);
  return jobId;
}
