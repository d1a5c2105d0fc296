/** The bridge's command line, parsed into plain options (pure: no I/O, no process access). */
import type { Provider } from '../gpu-server/constants.ts';
import type { MemoryMode } from '../gpu-server/pipeline/memory-plan.ts';
import { parseFlags, positiveMs } from './parse-flags.ts';
import { DEFAULT_STUDIO_TIMINGS } from './studio/keys.ts';
import { MODEL_USAGE, PIPELINE_FLAGS, PIPELINE_USAGE, pipelineArgs } from './pipeline-args.ts';
import { parseRedisUrl, REDIS_PASSWORD_ENV, type RedisTarget } from './studio/redis-target.ts';

export const DEFAULT_PORT = 8765;
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_OUTPUTS = 'outputs';
export const DEFAULT_KEEP_JOBS = 100;

export interface CliOptions {
  model?: string;
  port: number;
  host: string;
  provider?: Provider;
  memory?: MemoryMode;
  outputs: string;
  keepJobs: number;
  allowOrigins: string[];
  cancelOnShutdown: boolean;
  configDir?: string;
  /** Module exporting createPipeline (default: the real pipeline); for development and tests. */
  pipeline?: string;
  /** A studio's front door: jobs run on GPU workers behind this Redis, not here. */
  queue?: RedisTarget;
  /** The front door's check for jobs whose worker stopped (BullMQ's stalledInterval). */
  stalledMs: number;
  build: boolean;
  help: boolean;
}

export const USAGE = `Usage: npm start -- [options]

${MODEL_USAGE}
  --port <n>              port to listen on (default ${DEFAULT_PORT}; 0 picks a free one)
  --host <addr>           address to bind (default ${DEFAULT_HOST}; anything else exposes the GPU to your network)
  --outputs <dir>         job archive (default ./${DEFAULT_OUTPUTS})
  --keep-jobs <n>         finished jobs kept in the job archive (default ${DEFAULT_KEEP_JOBS})
  --allow-origin <origin> also accept WebSockets from this web origin (repeatable; Figma's plugin iframe is always allowed)
  --cancel-on-shutdown    on Ctrl-C, cancel the running job instead of letting it finish
  --config-dir <dir>      where the pairing token lives (default $ART_FOR_FIGMA_CONFIG_DIR, else ~/.config/art-for-figma)
${PIPELINE_USAGE}
  --queue <redis url>     studio front door: run no pipeline here; hand jobs to GPU workers
                          (npm run worker) through this Redis, redis://host:port[/db] or rediss://
                          (TLS); a password goes in $${REDIS_PASSWORD_ENV}. --model, --provider,
                          --memory and --pipeline are then the workers' options, not the front door's
  --stalled-ms <n>        with --queue: how often to look for jobs whose worker stopped renewing their lock
                          (default ${DEFAULT_STUDIO_TIMINGS.stalledMs}; give the workers the same)
  --no-build              do not build the plugin and UI first
  --help                  this text`;

export type ParsedCli = { ok: true; options: CliOptions } | { ok: false; error: string };

export function parseCli(argv: string[], env: Record<string, string | undefined> = {}): ParsedCli {
  const flags = parseFlags(
    argv,
    {
      ...PIPELINE_FLAGS,
      port: { type: 'string' },
      host: { type: 'string' },
      outputs: { type: 'string' },
      'keep-jobs': { type: 'string' },
      'allow-origin': { type: 'string', multiple: true },
      'cancel-on-shutdown': { type: 'boolean' },
      'config-dir': { type: 'string' },
      queue: { type: 'string' },
      'stalled-ms': { type: 'string' },
      'no-build': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (!flags.ok) return flags;
  const { values } = flags;
  const port = values.port === undefined ? DEFAULT_PORT : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    return { ok: false, error: `--port must be an integer 0..65535, got "${values.port}"` };
  const keepJobs = values['keep-jobs'] === undefined ? DEFAULT_KEEP_JOBS : Number(values['keep-jobs']);
  if (!Number.isInteger(keepJobs) || keepJobs < 1)
    return { ok: false, error: `--keep-jobs must be a positive integer, got "${values['keep-jobs']}"` };
  const chosen = pipelineArgs(values);
  if (!chosen.ok) return chosen;
  let queue: RedisTarget | undefined;
  if (values.queue !== undefined) {
    const target = parseRedisUrl(values.queue, env);
    if (!target.ok) return target;
    queue = target.target;
    const local = (['model', 'provider', 'memory', 'pipeline'] as const).filter((k) => values[k] !== undefined);
    if (local.length > 0)
      return { ok: false, error: `--${local[0]} is a GPU worker's option: with --queue the bridge runs no pipeline; pass it to npm run worker instead` };
  }
  if (values['stalled-ms'] !== undefined && values.queue === undefined) return { ok: false, error: '--stalled-ms is a studio front door\'s option: it needs --queue' };
  const stalledMs = positiveMs('--stalled-ms', values['stalled-ms'], DEFAULT_STUDIO_TIMINGS.stalledMs);
  if (typeof stalledMs === 'string') return { ok: false, error: stalledMs };
  const origins = values['allow-origin'] ?? [];
  for (const origin of origins)
    if (!/^https?:\/\/[^/\s]+$/.test(origin))
      return { ok: false, error: `--allow-origin takes an origin like https://example.com (scheme and host, no path), got "${origin}"` };
  return {
    ok: true,
    options: {
      ...chosen.args,
      port,
      host: values.host ?? DEFAULT_HOST,
      outputs: values.outputs ?? DEFAULT_OUTPUTS,
      keepJobs,
      allowOrigins: origins,
      cancelOnShutdown: values['cancel-on-shutdown'] ?? false,
      configDir: values['config-dir'],
      queue,
      stalledMs,
      build: !(values['no-build'] ?? false),
      help: values.help ?? false,
    },
  };
}
