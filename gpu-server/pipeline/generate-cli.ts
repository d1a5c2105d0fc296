/**
 * `npm run generate -- --prompt "..." --layout layout.json --out dir [...]`: one generation from
 * the command line, with a progress bar on stderr. Exit codes: 0 done, 2 bad arguments or
 * layout, 1 anything else (missing model folder, ...), each with a message saying what to do.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createPipeline } from './art-pipeline.ts';
import { parseGenerateArgs } from './generate-args.ts';
import { writeGenerateOutputs } from './generate-output.ts';
import type { Progress } from './types.ts';

const TINY_BANNER = [
  '',
  '  ############################################################################',
  '  #  TINY MODEL: random weights. Everything this run generates is NOISE.     #',
  '  #  For real images: npm run convert -- --art <ART dir> --flux <FLUX dir>    #',
  '  #                   --out <model dir>, then pass --model <model dir>.       #',
  '  ############################################################################',
  '',
].join('\n');

function progressLine(p: Progress): string {
  const width = 30;
  const filled = p.total > 0 ? Math.round((p.step / p.total) * width) : 0;
  return `\r${p.stage.padEnd(8)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.step}/${p.total}  ${(p.elapsedMs / 1000).toFixed(1)} s `;
}

async function main(): Promise<number> {
  const parsed = parseGenerateArgs(process.argv.slice(2), (p) => readFileSync(p, 'utf8'));
  if (!parsed.ok) {
    console.error(parsed.error);
    return 2;
  }
  const job = parsed.value;
  const pipeline = await createPipeline({ modelDir: job.model ? resolve(job.model) : undefined, provider: job.provider, memory: job.memory });
  if (pipeline.info.tiny) console.error(TINY_BANNER);
  console.error(`model: ${pipeline.info.model}   provider: ${pipeline.info.provider}   canvas ${job.layout.width}x${job.layout.height}, ${job.layout.boxes.length} layers, ${job.steps} steps, seed ${job.seed}`);
  if (pipeline.info.memoryPlan) console.error(pipeline.info.memoryPlan);
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  try {
    const result = await pipeline.generate(
      { prompt: job.prompt, layout: job.layout, steps: job.steps, guidance: job.guidance, trueCfg: job.trueCfg, seed: job.seed },
      { signal: controller.signal, onProgress: (p) => process.stderr.write(progressLine(p)) },
    );
    process.stderr.write('\n');
    const files = writeGenerateOutputs(job.out, result, { ...job });
    console.log(`wrote ${files.length + 1} files to ${resolve(job.out)}`);
    if (result.promptTruncated) console.error('note: the prompt was longer than the text encoders take and was cut');
    if (result.tiny) console.error(TINY_BANNER);
    return 0;
  } finally {
    await pipeline.dispose();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    const err = e as Error;
    console.error(`\n${err.name === 'AbortError' ? 'cancelled' : err.message}`);
    process.exit(err.name === 'LayoutError' || err.name === 'ParamsError' ? 2 : 1);
  },
);
