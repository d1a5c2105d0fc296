/**
 * `npm start`: builds the plugin and UI if needed, loads the model, starts the bridge, prints what
 * the designer needs (model, provider actually used, address, pairing token), and shuts down
 * gracefully on Ctrl-C / SIGTERM.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCli, USAGE, type CliOptions } from './cli-args.ts';
import { needsBuild, runBuild } from './build-if-needed.ts';
import { configDir, loadOrCreateToken } from './pairing-token.ts';
import { startBridge, type Bridge } from './server.ts';
import { runUntilSignal } from './run-until-signal.ts';
import { describeTarget } from './studio/redis-target.ts';
import type { PipelineInfo } from '../gpu-server/pipeline/types.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_PIPELINE = join(root, 'gpu-server/pipeline/art-pipeline.ts');
/** How often a front door reads the worker list and checks its jobs in Redis. */
const QUEUE_CHECK_MS = 1000;
const log = (line: string) => console.log(`[bridge ${new Date().toISOString().slice(11, 19)}] ${line}`);

function tinyWarning(): string {
  const bar = '!'.repeat(78);
  return [
    bar,
    '!!  TINY MODEL: random weights. Every image it makes is NOISE.',
    '!!  The whole system works end to end, but for real images convert the real weights:',
    '!!    npm run convert -- --art <ART dir> --flux <FLUX.1-dev dir> --out <model dir>',
    '!!  then start the bridge with:  npm start -- --model <model dir>',
    bar,
  ].join('\n');
}

function banner(o: CliOptions, bridge: Bridge, info: PipelineInfo | undefined, version: string, token: string, tokenPath: string, created: boolean): string {
  const hostForUrl = bridge.host.includes(':') ? `[${bridge.host}]` : bridge.host;
  const local = bridge.host === '127.0.0.1' || bridge.host === '::1';
  const pluginUrl = local ? `ws://localhost:${bridge.port}` : `ws://${hostForUrl}:${bridge.port}`;
  const here = info && [
    `  model:    ${info.model}${info.tiny && !/random/i.test(info.model) ? ' (tiny, random weights)' : ''}${o.model ? `  [${resolve(o.model)}]` : ''}`,
    `  provider: ${info.provider}${o.provider && o.provider !== info.provider ? `  (asked for ${o.provider})` : ''}`,
  ];
  const studio = o.queue && [
    `  studio front door: jobs run on GPU workers behind ${describeTarget(o.queue)} (see /health for the workers)`,
    info
      ? `  default model: ${info.model}${info.tiny ? ' (tiny, random weights)' : ''}`
      : '  default model: none yet: no GPU worker has announced one; plugins pair and jobs wait for the first (see /health)',
  ];
  const lines = [
    `ART for Figma bridge ${version}`,
    ...(studio || here || []),
    `  address:  ${pluginUrl}   (health: http://${hostForUrl}:${bridge.port}/health)`,
    ...(info?.memoryPlan ? [`  ${info.memoryPlan}`] : []),
    `  outputs:  ${resolve(o.outputs)}`,
    `  pairing token: ${token}`,
    `    paste it into the plugin's connection settings${created ? ' (new token, created now)' : ''}; kept in ${tokenPath}`,
  ];
  if (!local)
    lines.push(`  NOTE: listening on ${bridge.host}: anyone on your network who has the token can use this GPU.`);
  if (o.allowOrigins.length) lines.push(`  also allowing WebSockets from: ${o.allowOrigins.join(', ')}`);
  lines.push('  Ctrl-C stops the bridge' + (o.cancelOnShutdown ? ' (cancelling a running job).' : ' (a running job finishes first).'));
  return lines.join('\n');
}

async function main(): Promise<number> {
  const parsed = parseCli(process.argv.slice(2), process.env);
  if (!parsed.ok) {
    console.error(parsed.error);
    return 2;
  }
  const o = parsed.options;
  if (o.help) {
    console.log(USAGE);
    return 0;
  }
  const version = (JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string }).version;

  if (o.build) {
    const decision = await needsBuild(root);
    if (decision.build) {
      log(`building the plugin and UI (${decision.why})`);
      runBuild(root);
    }
  }

  const factory = o.pipeline ? resolve(o.pipeline) : DEFAULT_PIPELINE;
  if (!o.queue && !existsSync(factory)) {
    console.error(`The pipeline module ${factory} does not exist. ${o.pipeline ? 'Check --pipeline.' : 'This checkout lacks gpu-server/pipeline/art-pipeline.ts; update it.'}`);
    return 1;
  }
  if (o.model && !existsSync(o.model)) {
    console.error(`Model folder ${resolve(o.model)} does not exist. Convert one with: npm run convert -- --art <dir> --flux <dir> --out ${o.model}`);
    return 1;
  }

  const pairing = await loadOrCreateToken(o.configDir ?? configDir());
  if (o.queue) log(`studio front door: jobs run on GPU workers behind ${describeTarget(o.queue)}`);
  else log(`loading the pipeline${o.model ? ` from ${resolve(o.model)}` : ' (tiny model)'}...`);
  let bridge: Bridge;
  try {
    bridge = await startBridge({
      host: o.host,
      port: o.port,
      token: pairing.token,
      allowOrigins: o.allowOrigins,
      outputs: resolve(o.outputs),
      keepJobs: o.keepJobs,
      executor: o.queue
        ? { kind: 'queue', target: o.queue, checkMs: QUEUE_CHECK_MS, stalledMs: o.stalledMs }
        : {
            kind: 'local',
            pipeline: {
              factory,
              options: {
                ...(o.model ? { modelDir: resolve(o.model) } : {}),
                ...(o.provider ? { provider: o.provider } : {}),
                ...(o.memory ? { memory: o.memory } : {}),
              },
            },
          },
      cancelOnShutdown: o.cancelOnShutdown,
      version,
      log,
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const hint = /EADDRINUSE/.test(message) ? ` Port ${o.port} is taken: is a bridge already running? Or pick another with --port.` : '';
    console.error(`The bridge could not start: ${message}.${hint}`);
    return 1;
  }
  const info = bridge.info;
  if (info?.tiny) console.log(tinyWarning());
  console.log(banner(o, bridge, info, version, pairing.token, pairing.path, pairing.created));
  if (info?.tiny) console.log(tinyWarning());

  return runUntilSignal({
    stop: () => bridge.close(),
    stopping: `shutting down${o.cancelOnShutdown ? ', cancelling the running job' : '; a running job finishes first (Ctrl-C again to quit now)'}`,
    stopped: 'stopped',
    log,
  });
}

process.exitCode = await main();
// Exit even if a stray handle (a worker that ignored terminate) would keep the process alive.
setTimeout(() => process.exit(), 200).unref();
