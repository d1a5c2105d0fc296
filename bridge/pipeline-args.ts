/**
 * The command-line options that choose and load a pipeline, shared by the bridge (`cli-args.ts`)
 * and the GPU worker (`studio/worker-args.ts`): their flags, help lines and checks.
 */
import { PROVIDERS, type Provider } from '../gpu-server/constants.ts';
import { MEMORY_MODES, type MemoryMode } from '../gpu-server/pipeline/memory-plan.ts';

/** For node:util parseArgs. */
export const PIPELINE_FLAGS = {
  model: { type: 'string' },
  provider: { type: 'string' },
  memory: { type: 'string' },
  pipeline: { type: 'string' },
} as const;

export const MODEL_USAGE = `  --model <dir>           model folder written by \`npm run convert\` (default: the tiny model, noise)
  --provider <name>       cuda | webgpu | cpu (default: the best one available)
  --memory <plan>         resident | text-on-demand (default: chosen from free device memory)`;
export const PIPELINE_USAGE = '  --pipeline <module>     module exporting createPipeline(options) (development and tests)';

export interface PipelineArgs {
  model?: string;
  provider?: Provider;
  memory?: MemoryMode;
  pipeline?: string;
}

/** Checks --provider and --memory against what exists. */
export function pipelineArgs(values: { model?: string; provider?: string; memory?: string; pipeline?: string }): { ok: true; args: PipelineArgs } | { ok: false; error: string } {
  const { provider, memory } = values;
  if (provider !== undefined && !(PROVIDERS as readonly string[]).includes(provider))
    return { ok: false, error: `--provider must be one of ${PROVIDERS.join(', ')}, got "${provider}"` };
  if (memory !== undefined && !(MEMORY_MODES as readonly string[]).includes(memory))
    return { ok: false, error: `--memory must be one of ${MEMORY_MODES.join(', ')}, got "${memory}"` };
  return { ok: true, args: { model: values.model, provider: provider as Provider | undefined, memory: memory as MemoryMode | undefined, pipeline: values.pipeline } };
}
