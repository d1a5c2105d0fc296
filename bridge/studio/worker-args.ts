/** `npm run worker`'s command line, parsed into plain options (pure: no I/O, no process access). */
import { parseFlags, positiveMs } from '../parse-flags.ts';
import { MODEL_USAGE, PIPELINE_FLAGS, PIPELINE_USAGE, pipelineArgs, type PipelineArgs } from '../pipeline-args.ts';
import { parseRedisUrl, REDIS_PASSWORD_ENV, type RedisTarget } from './redis-target.ts';
import { DEFAULT_STUDIO_TIMINGS, type StudioTimings } from './keys.ts';

export interface WorkerCliOptions extends PipelineArgs {
  target: RedisTarget;
  name?: string;
  /** Extra options for the --pipeline module (development and tests). */
  pipelineOptions: Record<string, unknown>;
  timings: StudioTimings;
  help: boolean;
}

export const WORKER_USAGE = `Usage: npm run worker -- --queue redis://host:port[/db] [options]

Runs the pipeline on one GPU and takes jobs for its model from the studio's queue (one worker
process per GPU). The front door (npm start -- --queue <same url>) hands out the jobs.

  --queue <url>           redis:// or rediss:// (TLS) address of the studio's Redis (required);
                          a password goes in $${REDIS_PASSWORD_ENV} rather than the URL
${MODEL_USAGE}
  --name <name>           this worker's name in /health (default: host name and process id; unique per Redis)
  --lock-ms <n>           a job whose worker stops renewing its lock for this long runs again elsewhere (default ${DEFAULT_STUDIO_TIMINGS.lockMs};
                          renewed every half of it by this process's main thread, which the pipeline never holds)
  --stalled-ms <n>        how often to look for such jobs (default ${DEFAULT_STUDIO_TIMINGS.stalledMs}; the same on the front door:
                          a killed worker's job runs again within about --lock-ms + --stalled-ms)
  --heartbeat-ms <n>      how often to tell the front door this worker is there (default ${DEFAULT_STUDIO_TIMINGS.heartbeatMs})
${PIPELINE_USAGE}
  --pipeline-options <json>  extra options for that module, a JSON object (development and tests)
  --help                  this text`;

export type ParsedWorkerCli = { ok: true; options: WorkerCliOptions } | { ok: false; error: string };

export function parseWorkerCli(argv: string[], env: Record<string, string | undefined>): ParsedWorkerCli {
  const flags = parseFlags(
    argv,
    {
      queue: { type: 'string' },
      ...PIPELINE_FLAGS,
      name: { type: 'string' },
      'lock-ms': { type: 'string' },
      'stalled-ms': { type: 'string' },
      'heartbeat-ms': { type: 'string' },
      'pipeline-options': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    WORKER_USAGE,
  );
  if (!flags.ok) return flags;
  const { values } = flags;
  if (values.help) return { ok: true, options: { target: { host: '', port: 0, db: 0, tls: false }, pipelineOptions: {}, timings: DEFAULT_STUDIO_TIMINGS, help: true } };
  let pipelineOptions: Record<string, unknown> = {};
  if (values['pipeline-options'] !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(values['pipeline-options']);
    } catch {
      parsed = undefined;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { ok: false, error: '--pipeline-options takes a JSON object, e.g. {"stepMs":20}' };
    pipelineOptions = parsed as Record<string, unknown>;
  }
  if (values.queue === undefined) return { ok: false, error: `--queue <redis url> is required: the Redis the front door uses\n\n${WORKER_USAGE}` };
  const target = parseRedisUrl(values.queue, env);
  if (!target.ok) return target;
  const chosen = pipelineArgs(values);
  if (!chosen.ok) return chosen;
  if (values.name !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(values.name))
    return { ok: false, error: `--name takes 1..64 characters of A-Z a-z 0-9 . _ -, got "${values.name}"` };
  const lockMs = positiveMs('--lock-ms', values['lock-ms'], DEFAULT_STUDIO_TIMINGS.lockMs);
  const stalledMs = positiveMs('--stalled-ms', values['stalled-ms'], DEFAULT_STUDIO_TIMINGS.stalledMs);
  const heartbeatMs = positiveMs('--heartbeat-ms', values['heartbeat-ms'], DEFAULT_STUDIO_TIMINGS.heartbeatMs);
  for (const v of [lockMs, stalledMs, heartbeatMs]) if (typeof v === 'string') return { ok: false, error: v };
  return {
    ok: true,
    options: {
      target: target.target,
      ...chosen.args,
      name: values.name,
      pipelineOptions,
      timings: { heartbeatMs: heartbeatMs as number, lockMs: lockMs as number, stalledMs: stalledMs as number, maxStalls: DEFAULT_STUDIO_TIMINGS.maxStalls },
      help: false,
    },
  };
}
