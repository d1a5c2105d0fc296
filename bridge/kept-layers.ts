/**
 * Kept layers, on the bridge: the one owner of a job's base (`generate.base`) from the request to
 * the pipeline. Checks a request's base against the stored job when it arrives, reads the base
 * (latents and the kept layers' PNGs) when the job runs, says which layers a executor need not encode,
 * and puts the base's PNG bytes, byte for byte, among the job's layers in index order. The keep
 * list's own rules are domain/keep.ts; how the pipeline holds kept tokens, gpu-server/pipeline/keep.ts.
 */
import { checkKeep, KeepError } from '../domain/keep.ts';
import type { BaseJob } from '../gpu-server/pipeline/types.ts';
import { NOT_ARCHIVED, type JobArchive, type LayerPng } from './job-archive.ts';
import type { ErrorCode, WireBase } from './protocol/messages.ts';
import { JobRefused } from './executor.ts';
import type { Layout } from '../domain/layout.ts';

export type Refusal = { code: ErrorCode; message: string };

/**
 * Why a request's base cannot be used, or undefined: still waiting or running (`activeState`),
 * not stored, another model or canvas, a bad keep list.
 */
export async function baseRefusal(
  archive: JobArchive,
  request: { layout: Layout; base: WireBase },
  model: string,
  activeState: 'waiting' | 'running' | undefined,
  keepJobs: number,
): Promise<Refusal | undefined> {
  const { jobId, keep } = request.base;
  if (activeState) return { code: 'base_running', message: `base job ${jobId} is still ${activeState}; wait for its done, then regenerate from it` };
  const read = await archive.manifest(jobId);
  if (!read.ok)
    return {
      code: 'base_not_found',
      message: `base job ${jobId} cannot be used: ${read.why}${read.why === NOT_ARCHIVED ? `; the bridge keeps the last ${keepJobs} jobs (see --keep-jobs)` : ''}; generate anew`,
    };
  const { manifest } = read;
  try {
    checkKeep(request.layout, { model: manifest.model, layout: manifest.layout }, keep, model);
  } catch (error) {
    if (!(error instanceof KeepError)) throw error;
    return { code: error.code === 'base_latents' ? 'base_not_found' : error.code, message: error.message };
  }
  return undefined;
}

/** A running job's base: what the pipeline needs, and the kept layers' PNGs by their new index. */
export interface ReadBase {
  base: BaseJob;
  kept: KeptLayers;
}

/**
 * Reads a job's base from the archive as the job starts (it may have been pruned since it was
 * queued); rejects with a JobRefused (`base_not_found`) when it can no longer be read.
 */
export async function readBase(archive: JobArchive, base: WireBase): Promise<ReadBase> {
  const read = await archive.loadBase(base.jobId, base.keep.map((k) => k.from));
  if (!read.ok) throw new JobRefused('base_not_found', `base job ${base.jobId} can no longer be read: ${read.why}; generate anew`);
  const pngs = new Map(
    base.keep.map(({ from, to }): [number, LayerPng] => {
      const png = read.layers.get(from) as LayerPng;
      return [to, { ...png, index: to }];
    }),
  );
  return { base: { model: read.manifest.model, latents: read.latents, keep: base.keep }, kept: new KeptLayers(pngs) };
}

/** The layers of a job that keeps `base`'s: the executor need not encode nor send them. */
export function keptIndices(base: { keep: readonly { to: number }[] } | undefined): Set<number> {
  return new Set(base?.keep.map((k) => k.to));
}

/** The base's PNGs of the kept layers, placed among the job's own layers in index order. */
export class KeptLayers {
  private readonly order: number[];

  constructor(private readonly pngs: ReadonlyMap<number, LayerPng> = new Map()) {
    this.order = [...pngs.keys()].sort((a, b) => a - b);
  }

  get size(): number {
    return this.pngs.size;
  }

  /**
   * The layers to send for a streamed `layer`: the kept ones below it not sent yet (`sent`), then
   * the layer itself, or the kept PNG in its place.
   */
  before(layer: LayerPng, sent: (index: number) => boolean): LayerPng[] {
    const out = this.order.filter((k) => k < layer.index && !sent(k)).map((k) => this.pngs.get(k) as LayerPng);
    out.push(this.pngs.get(layer.index) ?? layer);
    return out;
  }

  /** A result's layers with the kept PNGs in place, in index order. */
  merge(layers: readonly LayerPng[]): LayerPng[] {
    const byIndex = new Map(layers.map((l) => [l.index, l]));
    for (const [index, png] of this.pngs) byIndex.set(index, png);
    return [...byIndex.values()].sort((a, b) => a.index - b.index);
  }
}
