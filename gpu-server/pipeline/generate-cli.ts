/**
 * `npm run generate -- --prompt "..." --layout layout.json --out dir [...]`: one generation from
 * the command line (`cli-run.ts`: progress bar, exit codes, outputs).
 */
import { readFileSync } from 'node:fs';
import { runCli } from './cli-run.ts';
import { parseGenerateArgs } from './generate-args.ts';

const parsed = parseGenerateArgs(process.argv.slice(2), (p) => readFileSync(p, 'utf8'));
runCli(parsed.ok ? { ok: true, value: { ...parsed.value, verb: 'generates' } } : parsed, (pipeline, job, options) =>
  pipeline.generate({ prompt: job.prompt, layout: job.layout, steps: job.steps, guidance: job.guidance, trueCfg: job.trueCfg, seed: job.seed }, options),
);
