/**
 * What `npm run generate` and `npm run decompose` share: the model and knobs line, the tiny
 * model's banner (its output is noise), a progress bar on stderr, Ctrl-C as cancel, writing the
 * outputs, and the exit codes: 0 done, 2 bad arguments, layout or image, 1 anything else.
 */
import { resolve } from 'node:path';
import { createPipeline } from './art-pipeline.ts';
import type { Knobs, Parsed } from './generate-args.ts';
import { writeGenerateOutputs, type RunDescription } from './generate-output.ts';
import type { ArtPipeline, GenerateOptions, GenerateResult, Progress } from './types.ts';

const tinyBanner = (verb: string): string => {
  const line = (text: string) => `  #  ${text.padEnd(73)}#`;
  return [
    '',
    `  ${'#'.repeat(77)}`,
    line(`TINY MODEL: random weights. Everything this run ${verb} is NOISE.`),
    line('For real images: npm run convert -- --art <ART dir> --flux <FLUX dir>'),
    line('                 --out <model dir>, then pass --model <model dir>.'),
    `  ${'#'.repeat(77)}`,
    '',
  ].join('\n');
};

function progressLine(p: Progress): string {
  const width = 30;
  const filled = p.total > 0 ? Math.round((p.step / p.total) * width) : 0;
  return `\r${p.stage.padEnd(8)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.step}/${p.total}  ${(p.elapsedMs / 1000).toFixed(1)} s `;
}

export interface CliJob extends Knobs, RunDescription {
  /** What the job does, for the banner ("generates", "decomposes"). */
  verb: string;
}

/** Parses, opens the pipeline, runs `start` with progress and cancel, writes the outputs; exits. */
export function runCli<J extends CliJob>(parsed: Parsed<J>, start: (pipeline: ArtPipeline, job: J, options: GenerateOptions) => Promise<GenerateResult>): void {
  const main = async (): Promise<number> => {
    if (!parsed.ok) {
      console.error(parsed.error);
      return 2;
    }
    const job = parsed.value;
    const pipeline = await createPipeline({ modelDir: job.model ? resolve(job.model) : undefined, provider: job.provider, memory: job.memory });
    const banner = tinyBanner(job.verb);
    if (pipeline.info.tiny) console.error(banner);
    console.error(`model: ${pipeline.info.model}   provider: ${pipeline.info.provider}   canvas ${job.layout.width}x${job.layout.height}, ${job.layout.boxes.length} layers, ${job.steps} steps, seed ${job.seed}`);
    if (pipeline.info.memoryPlan) console.error(pipeline.info.memoryPlan);
    const controller = new AbortController();
    process.once('SIGINT', () => controller.abort());
    try {
      const result = await start(pipeline, job, { signal: controller.signal, onProgress: (p) => process.stderr.write(progressLine(p)) });
      process.stderr.write('\n');
      const files = writeGenerateOutputs(job.out, result, job);
      console.log(`wrote ${files.length + 1} files to ${resolve(job.out)}`);
      if (result.promptTruncated) console.error('note: the prompt was longer than the text encoders take and was cut');
      if (result.tiny) console.error(banner);
      return 0;
    } finally {
      await pipeline.dispose();
    }
  };
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      const err = e as Error;
      console.error(`\n${err.name === 'AbortError' ? 'cancelled' : err.message}`);
      process.exit(err.name === 'LayoutError' || err.name === 'ParamsError' ? 2 : 1);
    },
  );
}
