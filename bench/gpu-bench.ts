/**
 * The bare-machine GPU benchmark (bundled by `npm run bundle:bench`): an ART transformer of a
 * given width with seeded random weights, built by the project's own graph builder, run on each
 * requested provider at each layout and precision. Prints per-step times, the analytic FLOPs per
 * step and the ratio to a given peak. With a block subset (--double/--single), the full model's
 * step is extrapolated per FLOP (the blocks are identical, so time scales with their FLOPs).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROVIDERS, type Provider } from '../gpu-server/constants.ts';
import { buildTransformer, parseTransformerConfig, type TransformerConfig } from '../gpu-server/models/transformer.ts';
import { float32ToHalves } from '../gpu-server/onnx/half.ts';
import { writeModel } from '../gpu-server/onnx/onnx-writer.ts';
import { openSession, ort } from '../gpu-server/onnx/session.ts';
import { feedsFor, type Feeds } from './crop-vs-full.ts';
import { transformerFlops } from './flops.ts';
import { generatedLayout } from './layouts.ts';
import { randomTransformerWeights } from './random-transformer.ts';
import { fixed, machineLine, median, table, timeRuns } from './stats.ts';

/** FLUX.1-dev's transformer: 19 double + 38 single blocks, 24 heads of 128. */
export const FULL = { double: 19, single: 38, width: 3072, headDim: 128 };

export interface GpuBenchOptions {
  providers: Provider[];
  double: number;
  single: number;
  width: number;
  /** `side x layers` pairs, e.g. 512x10. */
  layouts: { side: number; layers: number }[];
  precisions: ('fp16' | 'int4')[];
  steps: number;
  textTokens: number;
  peakTflops: number;
}

export const DEFAULTS: GpuBenchOptions = {
  providers: ['webgpu', 'cpu'], double: FULL.double, single: FULL.single, width: FULL.width,
  layouts: [{ side: 512, layers: 10 }, { side: 1024, layers: 52 }], precisions: ['fp16', 'int4'], steps: 3, textTokens: 512, peakTflops: 790,
};

export function parseArgs(argv: string[]): GpuBenchOptions {
  const o: GpuBenchOptions = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1] ?? ''];
    const int = () => {
      const n = Number(v);
      if (!Number.isInteger(n) || n <= 0) throw new Error(`${k} needs a positive integer, got "${v}"`);
      return n;
    };
    if (k === '--providers') {
      o.providers = v.split(',').map((p) => {
        if (!(PROVIDERS as readonly string[]).includes(p)) throw new Error(`--providers: unknown provider "${p}" (use ${PROVIDERS.join(', ')})`);
        return p as Provider;
      });
    } else if (k === '--layouts') {
      o.layouts = v.split(',').map((s) => {
        const m = /^(\d+)x(\d+)$/.exec(s);
        if (!m || Number(m[2]) < 3 || Number(m[1]) % 16 !== 0) throw new Error(`--layouts: "${s}" is not SIDExLAYERS (side a multiple of 16, at least 3 layers), e.g. 512x10`);
        return { side: Number(m[1]), layers: Number(m[2]) };
      });
    } else if (k === '--precisions') {
      o.precisions = v.split(',').map((p) => {
        if (p !== 'fp16' && p !== 'int4') throw new Error(`--precisions: "${p}" is not fp16 or int4`);
        return p;
      });
    } else if (k === '--double') o.double = int();
    else if (k === '--single') o.single = int();
    else if (k === '--width') o.width = int();
    else if (k === '--steps') o.steps = int();
    else if (k === '--text') o.textTokens = int();
    else if (k === '--peak-tflops') o.peakTflops = int();
    else throw new Error(`unknown option ${k} (use --providers, --double, --single, --width, --layouts, --precisions, --steps, --text, --peak-tflops)`);
  }
  if (o.width % 64 !== 0) throw new Error(`--width must be a multiple of 64 (heads of ${Math.min(FULL.headDim, o.width)}), got ${o.width}`);
  return o;
}

export function configOf(o: Pick<GpuBenchOptions, 'width' | 'double' | 'single'>): TransformerConfig {
  const headDim = o.width >= FULL.headDim ? FULL.headDim : 64;
  // FLUX.1-dev's rope axes split of the head (16, 56, 56 of 128), scaled to the head size.
  const axes = headDim === 128 ? [16, 56, 56] : [8, 28, 28];
  return parseTransformerConfig({
    patch_size: 1, in_channels: 64, num_layers: o.double, num_single_layers: o.single, attention_head_dim: headDim,
    num_attention_heads: o.width / headDim, joint_attention_dim: 4096, pooled_projection_dim: 768, guidance_embeds: true,
    axes_dims_rope: axes, max_layer_num: 52,
  }, 'gpu bench config');
}

function half(feeds: Feeds): Feeds {
  return Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, t.type === 'float32' && k !== 'timestep' && k !== 'guidance' ? new ort.Tensor('float16', float32ToHalves(t.data as Float32Array), t.dims) : t]));
}

export async function main(o: GpuBenchOptions): Promise<void> {
  const c = configOf(o);
  const full = configOf({ width: FULL.width, double: FULL.double, single: FULL.single });
  const subset = o.double !== FULL.double || o.single !== FULL.single || o.width !== FULL.width;
  console.log(`== ART transformer, random weights: width ${o.width}, ${o.double} double + ${o.single} single blocks; peak ${o.peakTflops} TFLOP/s ==\n${machineLine()}`);
  const weights = randomTransformerWeights(c);
  const rows: (string | number)[][] = [];
  const dir = mkdtempSync(join(tmpdir(), 'art-gpu-bench-'));
  try {
    for (const precision of o.precisions) {
      const path = join(dir, `${precision}.onnx`);
      writeModel(buildTransformer(c, weights, 'float16', { quantize: precision === 'int4' ? 'int4' : 'none' }), path);
      for (const provider of o.providers) {
        let session: ort.InferenceSession;
        try {
          session = (await openSession(path, provider)).session;
        } catch (e) {
          console.log(`${precision} on ${provider}: no session (${(e as Error).message.split('\n')[0]})`);
          continue;
        }
        try {
          for (const { side, layers } of o.layouts) {
            const { feeds, imageTokens } = feedsFor(c, generatedLayout(side, layers - 2, Math.min(8, side / 16)).layout, o.textTokens);
            const times = await timeRuns(() => session.run(half(feeds)), o.steps);
            const ms = median(times);
            const flops = transformerFlops(c, imageTokens, o.textTokens).total;
            const fullFlops = transformerFlops(full, imageTokens, o.textTokens).total;
            const tflops = flops / (ms / 1000) / 1e12;
            const line = `per-step ${precision} ${provider} ${side}x${side} ${layers} layers: ${times.map((t) => fixed(t)).join(', ')} ms; ${(flops / 1e9).toFixed(4)} GFLOP/step`;
            console.log(line);
            rows.push([precision, provider, `${side}x${layers}`, imageTokens, fixed(ms), fixed(flops / 1e9), fixed(tflops, 2), `${fixed((100 * tflops) / o.peakTflops, 2)}%`,
              subset ? fixed((ms * fullFlops) / flops) : '']);
          }
        } finally {
          await session.release();
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\n${table(['precision', 'provider', 'layout', 'image tokens', 'ms/step (median)', 'GFLOP/step', 'TFLOP/s', 'of peak', 'full model ms/step (extrapolated)'], rows)}`);
  console.log(`\nHow to read: one transformer step (one CFG branch, batch 1), median of ${o.steps} timed runs after one warm-up; GFLOP is analytic
(bench/flops.ts). "of peak" divides by --peak-tflops. ${subset ? `A subset was run: the full model (19+38 blocks, width 3072) is extrapolated as ms x (full FLOPs / measured FLOPs), since its blocks are identical in kind.` : 'All 19+38 blocks at width 3072 were run.'} Weights are random: speed only.`);
}

// In the bundle every module shares one import.meta.url, so the bundler defines ART_GPU_BENCH_BUNDLE instead.
if (process.env.ART_GPU_BENCH_BUNDLE === '1' || /gpu-bench\.ts$/.test(process.argv[1] ?? '')) await main(parseArgs(process.argv.slice(2)));
