/**
 * The layer images of each finished job on their way to the canvas, on the main thread: each
 * `layer-image` becomes a Figma image as it arrives (its hash kept here), and once the job's
 * `insert` has come too and every layer it needs is held, the job is ready to place. The main
 * thread knows when that is, so the UI sends one message per layer and one `insert`, and waits for
 * nothing. Pure: main.ts makes the images and the nodes.
 */
import type { InsertMessage } from './messages.ts';
import type { EditTarget } from './regenerate.ts';
import type { LayerHash } from './result-data.ts';

/** What to do with a job whose images are all held. */
export type Placement =
  /** A regeneration onto the result frame it was made from: only its redrawn layers' images. */
  | { kind: 'replace'; job: InsertMessage; target: EditTarget; images: LayerHash[] }
  /** A new frame with every layer. */
  | { kind: 'insert'; job: InsertMessage; images: LayerHash[] };

/**
 * The layer indices whose images a job needs: a regeneration in place needs only the ones it
 * redrew (kept layers' images are on their nodes already); a new frame needs all of them.
 */
export function neededLayers(job: { layout: { regions: readonly unknown[] }; edit: EditTarget | null; asNew: boolean }): number[] {
  const all = job.layout.regions.map((_, i) => i);
  const edit = job.edit;
  return edit && !job.asNew ? all.filter((i) => !edit.layers[i].kept) : all;
}

interface Arriving {
  hashes: Map<number, string>;
  /** The job's `insert`, until it is placed. */
  insert: InsertMessage | null;
}

/**
 * Per request, the hashes of its layers made so far and its `insert` once it came. A job is let go
 * when it is placed (`placed`) or one of its images is refused (`refused`); after a failed place
 * its images stay, so the designer can try again (another `insert`) without the bridge.
 */
export class JobImages {
  private readonly jobs = new Map<string, Arriving>();

  private arriving(requestId: string): Arriving {
    let job = this.jobs.get(requestId);
    if (!job) this.jobs.set(requestId, (job = { hashes: new Map(), insert: null }));
    return job;
  }

  /** A layer became a Figma image; the job's placement if this was the last one it waited for. */
  stored(requestId: string, index: number, hash: string): Placement | null {
    this.arriving(requestId).hashes.set(index, hash);
    return this.take(requestId);
  }

  /** The UI asked for the job on the canvas; its placement if every image is already held. */
  asked(insert: InsertMessage): Placement | null {
    this.arriving(insert.requestId).insert = insert;
    return this.take(insert.requestId);
  }

  /** Figma refused one of the job's images: it can never be placed, nothing of it is kept. */
  refused(requestId: string): void {
    this.jobs.delete(requestId);
  }

  /** The job is on the canvas: its hashes are no longer needed. */
  placed(requestId: string): void {
    this.jobs.delete(requestId);
  }

  /** Requests with images held (for tests: what is let go). */
  get held(): number {
    return this.jobs.size;
  }

  private take(requestId: string): Placement | null {
    const job = this.jobs.get(requestId)!;
    const insert = job.insert;
    if (!insert) return null;
    const needed = neededLayers(insert);
    if (!needed.every((i) => job.hashes.has(i))) return null;
    // Placed once: another insert (a retry, "as new") asks again.
    job.insert = null;
    const images = needed.map((index) => ({ index, hash: job.hashes.get(index)! }));
    return insert.edit && !insert.asNew
      ? { kind: 'replace', job: insert, target: insert.edit, images }
      : { kind: 'insert', job: insert, images };
  }
}
