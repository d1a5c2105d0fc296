/**
 * fp16 and int4 against fp32: the same transformer weights built at each precision and run on the
 * same inputs, on the tiny config (the golden case's weights and inputs) and on the mid-size one
 * (random weights). Error is relative to fp32 (max |diff| / max |fp32|). Sizes are the external
 * weight data. On the CPU, fp16 and int4 kernels are slower than fp32 (onnxruntime computes fp16
 * in fp32 there); their speed is a GPU question, so no times are printed here.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FP32_VARIANT, runCase } from '../gpu-server/golden/transformer-case.ts';
import { compareFloat } from '../gpu-server/golden/compare.ts';
import { buildTransformer, parseTransformerConfig, type TransformerConfig } from '../gpu-server/models/transformer.ts';
import type { WeightSource } from '../gpu-server/onnx/graph.ts';
import { float32ToHalves } from '../gpu-server/onnx/half.ts';
import { writeModel } from '../gpu-server/onnx/onnx-writer.ts';
import { floatsOf, openSession, ort } from '../gpu-server/onnx/session.ts';
import { feedsFor, MID_CONFIG, type Feeds } from './crop-vs-full.ts';
import { generatedLayout } from './layouts.ts';
import { randomTransformerWeights } from './random-transformer.ts';
import { machineLine, table } from './stats.ts';

interface Variant {
  name: string;
  precision: 'float32' | 'float16';
  quantize: 'none' | 'int4';
}

const VARIANTS: Variant[] = [
  { name: 'fp32', precision: 'float32', quantize: 'none' },
  { name: 'fp16', precision: 'float16', quantize: 'none' },
  { name: 'int4 (fp32 activations)', precision: 'float32', quantize: 'int4' },
  { name: 'int4 (fp16 activations, the --precision int4 folder)', precision: 'float16', quantize: 'int4' },
];

/** Float inputs in the graph's precision (timestep and guidance stay float32, as the graph declares). */
function feedsAt(feeds: Feeds, precision: Variant['precision']): Feeds {
  if (precision === 'float32') return feeds;
  return Object.fromEntries(
    Object.entries(feeds).map(([k, t]) => [k, t.type === 'float32' && k !== 'timestep' && k !== 'guidance' ? new ort.Tensor('float16', float32ToHalves(t.data as Float32Array), t.dims) : t]),
  );
}

async function runVariant(c: TransformerConfig, weights: WeightSource, v: Variant, feeds: Feeds): Promise<{ out: Float32Array; bytes: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'art-precision-'));
  try {
    const path = join(dir, 't.onnx');
    writeModel(buildTransformer(c, weights, v.precision, { quantize: v.quantize }), path);
    const { session } = await openSession(path, 'cpu');
    try {
      const out = await session.run(feedsAt(feeds, v.precision));
      return { out: floatsOf(out.noise_pred), bytes: statSync(`${path}.data`).size };
    } finally {
      await session.release();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface PrecisionRow {
  config: string;
  variant: string;
  relError: number;
  bytes: number;
}

export async function measurePrecision(): Promise<PrecisionRow[]> {
  const rows: PrecisionRow[] = [];
  // Tiny: the golden case, errors against the official fp32 output (inside the boxes).
  const golden = new URL('../test/fixtures/golden/transformer/', import.meta.url).pathname;
  for (const v of VARIANTS) {
    const r = await runCase(golden, { ...FP32_VARIANT, precision: v.precision, quantize: v.quantize });
    const ref = r.outputs.get('noise_pred')!.data;
    rows.push({ config: 'tiny (golden case, vs the official output)', variant: v.name, relError: compareFloat('', r.noisePred, ref, 1, r.mask).maxRel, bytes: 0 });
  }
  // Mid-size: random weights, a generated 10-layer layout at 256x256, errors against our fp32.
  const c = parseTransformerConfig(MID_CONFIG, 'mid-size config');
  const weights = randomTransformerWeights(c);
  const { feeds } = feedsFor(c, generatedLayout(256, 10, 4).layout, 64);
  let reference: Float32Array | undefined;
  for (const v of VARIANTS) {
    const { out, bytes } = await runVariant(c, weights, v, feeds);
    reference ??= out;
    rows.push({ config: 'mid-size (random weights, vs fp32)', variant: v.name, relError: compareFloat('', out, reference).maxRel, bytes });
  }
  return rows;
}

export function precisionTable(rows: PrecisionRow[]): string {
  return table(
    ['config', 'variant', 'max rel error', 'weight data'],
    rows.map((r) => [r.config, r.variant, r.relError.toExponential(2), r.bytes ? `${(r.bytes / 1024 ** 2).toFixed(1)} MiB` : '']),
  );
}

export const HOW_TO_READ = `How to read: max |diff| / max |reference| of noise_pred for one transformer pass. The tiny rows
compare with the official code's fp32 output (the golden case); the mid-size rows with this project's
fp32 graph on the same random weights. int4 error on random Gaussian weights is the quantization's
own (4-bit min/max blocks of 32 carry about a tenth of the weights' spread as error); trained weights
quantize better. No times: on the CPU fp16 and int4 are emulated; their speed is measured on a GPU.`;

export async function main(): Promise<PrecisionRow[]> {
  console.log(`\n== precision: fp16 and int4 against fp32 ==\n${machineLine()}`);
  const rows = await measurePrecision();
  console.log(`\n${precisionTable(rows)}\n\n${HOW_TO_READ}`);
  return rows;
}

