/**
 * How close the transformer step is to this machine's limit: the dense float32 MatMul throughput
 * of onnxruntime on this CPU (large square matrices, the provider's default threads), measured in
 * the same run as one transformer pass of the mid-size config (crop-vs-full's, random weights,
 * one CFG branch, its analytic FLOPs), and the pass's share of it. Run: `npm run bench -- ceiling`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTransformer, parseTransformerConfig } from '../gpu-server/models/transformer.ts';
import { GraphBuilder, shapeOnlyWeights } from '../gpu-server/onnx/graph.ts';
import { writeModel } from '../gpu-server/onnx/onnx-writer.ts';
import { openSession, ort } from '../gpu-server/onnx/session.ts';
import { feedsFor, MID_CONFIG } from './crop-vs-full.ts';
import { transformerFlops } from './flops.ts';
import { generatedLayout } from './layouts.ts';
import { randomTransformerWeights } from './random-transformer.ts';
import { fixed, machineLine, median, table, timeWithin } from './stats.ts';

export interface CeilingResult {
  matmulSide: number;
  matmulGflops: number;
  stepTokens: number;
  stepGflop: number;
  stepMs: number;
  stepGflops: number;
}

/** A graph of one MatMul `[n, n] x [n, n]` with both operands as inputs (nothing folded away). */
function matmulGraph(n: number): GraphBuilder {
  const g = new GraphBuilder('matmul', 'float32', shapeOnlyWeights('none', {}));
  const a = g.input('a', 'float', [n, n]);
  const b = g.input('b', 'float', [n, n]);
  g.output(g.op('MatMul', [a, b]), 'y', 'float', [n, n]);
  return g;
}

async function timedSession(path: string, feeds: Record<string, ort.Tensor>, budgetMs: number): Promise<number> {
  const { session } = await openSession(path, 'cpu');
  try {
    return median(await timeWithin(() => session.run(feeds), budgetMs, 5));
  } finally {
    await session.release();
  }
}

export async function measureCeiling(side = 2048, budgetMs = 4000): Promise<CeilingResult> {
  const dir = mkdtempSync(join(tmpdir(), 'art-bench-ceiling-'));
  try {
    const mm = join(dir, 'matmul.onnx');
    writeModel(matmulGraph(side), mm);
    const x = new ort.Tensor('float32', Float32Array.from({ length: side * side }, (_, i) => Math.sin(i) * 0.5), [side, side]);
    const mmMs = await timedSession(mm, { a: x, b: x }, budgetMs);

    const c = parseTransformerConfig(MID_CONFIG, 'mid-size config');
    const t = join(dir, 'transformer.onnx');
    writeModel(buildTransformer(c, randomTransformerWeights(c), 'float32'), t);
    const textTokens = 512;
    const { feeds, imageTokens } = feedsFor(c, generatedLayout(256, 10, 4).layout, textTokens);
    const stepMs = await timedSession(t, feeds, budgetMs);
    const stepGflop = transformerFlops(c, imageTokens, textTokens).total / 1e9;
    return {
      matmulSide: side,
      matmulGflops: (2 * side ** 3) / 1e9 / (mmMs / 1000),
      stepTokens: imageTokens + textTokens,
      stepGflop,
      stepMs,
      stepGflops: stepGflop / (stepMs / 1000),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function ceilingTable(r: CeilingResult): string {
  return table(['measure', 'value'], [
    [`dense MatMul ${r.matmulSide}x${r.matmulSide} float32 (onnxruntime CPU)`, `${fixed(r.matmulGflops)} GFLOP/s`],
    [`transformer pass, mid-size config, ${r.stepTokens} tokens (${fixed(r.stepGflop)} GFLOP)`, `${fixed(r.stepMs)} ms = ${fixed(r.stepGflops)} GFLOP/s`],
    ['the pass as a share of the MatMul ceiling', `${fixed((r.stepGflops / r.matmulGflops) * 100)}%`],
  ]);
}

export const HOW_TO_READ = `How to read: the ceiling is onnxruntime's own float32 MatMul on this CPU (median of the runs
that fit in the budget, after a warm-up), the limit any graph of dense layers can reach here; the
pass's GFLOP are analytic (bench/flops.ts: projections, MLPs and attention). Both in the same run,
so the share holds even on a loaded machine. One CFG branch (batch 1).`;

export async function main(): Promise<CeilingResult> {
  console.log(`\n== CPU ceiling: dense MatMul vs the transformer pass ==\n${machineLine()}`);
  const r = await measureCeiling();
  console.log(`\n${ceilingTable(r)}\n\n${HOW_TO_READ}`);
  return r;
}
