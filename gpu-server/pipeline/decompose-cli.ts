/**
 * `npm run decompose -- --image flat.png --boxes boxes.json --out dir [...]`: one decomposition
 * from the command line (`cli-run.ts`: progress bar, exit codes, the outputs `npm run generate`
 * writes); with no arguments, the built-in example poster on the tiny model.
 */
import { readFileSync } from 'node:fs';
import { runCli } from './cli-run.ts';
import { parseDecomposeArgs } from './decompose-args.ts';

const parsed = parseDecomposeArgs(process.argv.slice(2), (p) => readFileSync(p));
runCli(parsed.ok ? { ok: true, value: { ...parsed.value, verb: 'decomposes' } } : parsed, (pipeline, job, options) =>
  pipeline.decompose(
    { image: job.image, prompt: job.prompt, layout: job.layout, steps: job.steps, guidance: job.guidance, trueCfg: job.trueCfg, seed: job.seed, conditioningScale: job.conditioningScale },
    options,
  ),
);
