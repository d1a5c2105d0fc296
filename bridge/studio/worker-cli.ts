/**
 * `npm run worker`: one GPU worker for a studio's front door. Loads the model, joins the queue,
 * prints what it runs, and on Ctrl-C / SIGTERM stops taking jobs and finishes the running one.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseWorkerCli, WORKER_USAGE } from './worker-args.ts';
import { describeTarget } from './redis-target.ts';
import { startGpuWorker, type GpuWorker } from './gpu-worker.ts';
import { runUntilSignal } from '../run-until-signal.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const DEFAULT_PIPELINE = join(root, 'gpu-server/pipeline/art-pipeline.ts');
const PROGRESS_INTERVAL_MS = 100;

async function main(): Promise<number> {
  const parsed = parseWorkerCli(process.argv.slice(2), process.env);
  if (!parsed.ok) {
    console.error(parsed.error);
    return 2;
  }
  const o = parsed.options;
  if (o.help) {
    console.log(WORKER_USAGE);
    return 0;
  }
  const name = o.name ?? `${hostname().replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 50)}-${process.pid}`;
  const log = (line: string) => console.log(`[worker ${name} ${new Date().toISOString().slice(11, 19)}] ${line}`);
  const factory = o.pipeline ? resolve(o.pipeline) : DEFAULT_PIPELINE;
  if (!existsSync(factory)) {
    console.error(`The pipeline module ${factory} does not exist. Check --pipeline.`);
    return 1;
  }
  if (o.model && !existsSync(o.model)) {
    console.error(`Model folder ${resolve(o.model)} does not exist. Convert one with: npm run convert -- --art <dir> --flux <dir> --out ${o.model}`);
    return 1;
  }
  log(`loading the pipeline${o.model ? ` from ${resolve(o.model)}` : ' (tiny model: random weights, every image is noise)'}...`);
  let worker: GpuWorker;
  try {
    worker = await startGpuWorker({
      target: o.target,
      name,
      pipeline: {
        factory,
        options: {
          ...o.pipelineOptions,
          ...(o.model ? { modelDir: resolve(o.model) } : {}),
          ...(o.provider ? { provider: o.provider } : {}),
          ...(o.memory ? { memory: o.memory } : {}),
        },
      },
      timings: o.timings,
      progressIntervalMs: PROGRESS_INTERVAL_MS,
      log,
    });
  } catch (error) {
    console.error(`The worker could not start: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
  const { info } = worker;
  log(`ready: model ${info.model}${info.tiny ? ' (tiny, random weights: images are noise)' : ''}, provider ${info.provider}, queue ${describeTarget(o.target)}`);
  return runUntilSignal({
    stop: () => worker.close(),
    stopping: 'no new jobs; the running job finishes first (Ctrl-C again to quit now)',
    again: ' (the running job runs again on another worker)',
    log,
  });
}

process.exitCode = await main();
setTimeout(() => process.exit(), 200).unref();
