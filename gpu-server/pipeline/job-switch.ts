/**
 * The inputs that pick the job on a transformer built for both (a folder whose manifest lists
 * generate and decompose keeps one transformer graph, so the shared weights are in memory once):
 * `job` (0 generate, 1 decompose: the layer_pe table and the "layer" LoRA), and for generation the
 * adapter's residual inputs as zeros of one token, which the graph's Add broadcasts over every
 * token (nothing of the size of the sequence is made or copied). A graph without these inputs
 * gets nothing.
 */
import type { JobKind } from '../../domain/job-kind.ts';
import { JOB_INDEX } from '../models/transformer.ts';
import type { Feed, GraphSession } from './graph-session.ts';

const RESIDUAL_INPUT = /^adapter_(single_)?block_sample_\d+$/;

export function jobSwitchFeeds(graph: Pick<GraphSession, 'inputs'>, kind: JobKind): Record<string, Feed> {
  const feeds: Record<string, Feed> = {};
  for (const input of graph.inputs()) {
    if (input.name === 'job') feeds.job = { data: BigInt64Array.of(BigInt(JOB_INDEX[kind])), dims: [1], constant: true };
    else if (kind === 'generate' && RESIDUAL_INPUT.test(input.name)) {
      const width = input.dims[input.dims.length - 1];
      if (typeof width !== 'number') throw new Error(`the transformer's ${input.name} has no fixed width; re-convert the model folder`);
      feeds[input.name] = { data: new Float32Array(width), dims: [1, 1, width], constant: true };
    }
  }
  return feeds;
}
