/**
 * Kept layers (keep.ts and the pipeline's use of it). With the tiny random model the images are
 * noise: whether an edit "fits" cannot be seen, so everything here is checked numerically, on the
 * latents and the decoded bytes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { KeepError, type KeepProblem, checkKeep } from '../../domain/keep.ts';
import type { BoxTuple, Layout } from '../../domain/layout.ts';
import { PACKED_CHANNELS } from '../../gpu-server/constants.ts';
import { writeTinyModel } from '../../gpu-server/model-folder/tiny.ts';
import { createPipeline } from '../../gpu-server/pipeline/art-pipeline.ts';
import { denoise, type NoisePredictor } from '../../gpu-server/pipeline/denoise.ts';
import { checkLatents, holdKept, keptTokens } from '../../gpu-server/pipeline/keep.ts';
import { transformerTokens } from '../../gpu-server/pipeline/layout-tokens.ts';
import { fluxSchedule } from '../../gpu-server/pipeline/scheduler.ts';
import type { ArtPipeline, CleanLatents, GenerateParams, GenerateResult } from '../../gpu-server/pipeline/types.ts';

const W = 128, H = 96;
const whole: BoxTuple = [0, 0, W, H];
const A: BoxTuple = [16, 16, 80, 64];
const B: BoxTuple = [64, 48, 128, 96];
const C: BoxTuple = [0, 64, 48, 96];
const D: BoxTuple = [96, 0, 128, 32];
const layout = (...children: BoxTuple[]): Layout => ({ width: W, height: H, boxes: [whole, whole, ...children] });

/** Values of layer `index`'s tokens in packed latents of `l`. */
function layerTokens(latents: CleanLatents, index: number): Float32Array {
  const cells = transformerTokens(latents.layout).layers[index];
  return latents.tokens.subarray(cells.offset * PACKED_CHANNELS, (cells.offset + cells.count) * PACKED_CHANNELS);
}

/** Bitwise equality (distinguishes -0 from 0 and compares NaN patterns), with the first difference. */
function assertBitEqual(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== e[i]) assert.fail(`${what}: value ${i} is ${actual[i]}, expected ${expected[i]} bit for bit`);
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

// ---- pure parts -----------------------------------------------------------------------------------

test('holdKept: the forward process in float32 at every sigma, exactly x0 at sigma 0 (-0 included), only inside the kept spans', () => {
  const grid = transformerTokens(layout(A, B));
  const n = grid.count * PACKED_CHANNELS;
  const base: CleanLatents = { layout: layout(A, B), tokens: new Float32Array(n).map((_, i) => Math.sin(i) * 2) };
  base.tokens[grid.layers[2].offset * PACKED_CHANNELS] = -0;
  const kept = keptTokens(grid, base, [{ from: 2, to: 2 }]);
  const eps = new Float32Array(n).map((_, i) => Math.cos(i * 0.7));
  const start = grid.layers[2].offset * PACKED_CHANNELS, end = start + grid.layers[2].count * PACKED_CHANNELS;
  eps[start] = 0.5; // (1 - 0) * -0 + 0 * 0.5 is +0: the formula alone would lose x0's sign
  for (const sigma of [1, 0.8125, Math.fround(0.3333), 0]) {
    const latents = new Float32Array(n).fill(7);
    holdKept(latents, kept, eps, sigma);
    const s = Math.fround(sigma);
    for (let j = 0; j < n; j++) {
      const want = j < start || j >= end ? 7 : s === 0 ? base.tokens[j] : Math.fround(Math.fround(Math.fround(1 - s) * base.tokens[j]) + Math.fround(s * eps[j]));
      assert.ok(Object.is(latents[j], want), `sigma ${sigma}, value ${j}: ${latents[j]} != ${want}`);
    }
  }
  assert.throws(() => holdKept(new Float32Array(3), kept, eps, 0.5), /differ/);
});

test('keptTokens places each kept base layer at its new index (reordered), token for token', () => {
  const baseLayout = layout(A, B, C);
  const baseGrid = transformerTokens(baseLayout);
  const base: CleanLatents = { layout: baseLayout, tokens: new Float32Array(baseGrid.count * PACKED_CHANNELS).map((_, i) => i) };
  const next = layout(C, B, D, A); // C 2, B 3, D 4 (new), A 5
  const grid = transformerTokens(next);
  const kept = keptTokens(grid, base, [{ from: 4, to: 2 }, { from: 2, to: 5 }, { from: 1, to: 1 }]);
  assert.deepEqual(kept.spans.map((s) => s.start / PACKED_CHANNELS), [grid.layers[1].offset, grid.layers[2].offset, grid.layers[5].offset]);
  const slice = (t: Float32Array, g: typeof grid, l: number) => t.subarray(g.layers[l].offset * PACKED_CHANNELS, (g.layers[l].offset + g.layers[l].count) * PACKED_CHANNELS);
  assert.deepEqual(slice(kept.x0, grid, 2), slice(base.tokens, baseGrid, 4));
  assert.deepEqual(slice(kept.x0, grid, 5), slice(base.tokens, baseGrid, 2));
  assert.deepEqual(slice(kept.x0, grid, 1), slice(base.tokens, baseGrid, 1));
});

test('checkKeep names each problem with its code', () => {
  const base = { model: 'tiny', layout: layout(A, B) };
  const refuse = (code: KeepProblem, pattern: RegExp, fn: () => void) =>
    assert.throws(fn, (e: unknown) => e instanceof KeepError && e.code === code && pattern.test(e.message), `${code} ${pattern}`);
  checkKeep(layout(A, B, C), base, [{ from: 1, to: 1 }, { from: 3, to: 3 }], 'tiny');
  refuse('base_mismatch', /model "tiny".*runs "other"/, () => checkKeep(layout(A, B), base, [], 'other'));
  refuse('base_mismatch', /canvas is 128x96.*128x128/, () => checkKeep({ width: W, height: 128, boxes: [[0, 0, W, 128], [0, 0, W, 128]] }, base, [], 'tiny'));
  refuse('invalid_keep', /layer 0 is the merged image/, () => checkKeep(layout(A, B), base, [{ from: 0, to: 2 }], 'tiny'));
  refuse('invalid_keep', /layer 0 is the merged image/, () => checkKeep(layout(A, B), base, [{ from: 2, to: 0 }], 'tiny'));
  refuse('invalid_keep', /base job has layers 1\.\.3/, () => checkKeep(layout(A, B), base, [{ from: 4, to: 2 }], 'tiny'));
  refuse('invalid_keep', /new layout has layers 1\.\.2/, () => checkKeep(layout(A), base, [{ from: 3, to: 3 }], 'tiny'));
  refuse('invalid_keep', /kept twice/, () => checkKeep(layout(A, A), base, [{ from: 2, to: 2 }, { from: 2, to: 3 }], 'tiny'));
  refuse('invalid_keep', /filled twice/, () => checkKeep(layout(A, B), base, [{ from: 2, to: 2 }, { from: 3, to: 2 }], 'tiny'));
  refuse('invalid_keep', /integers/, () => checkKeep(layout(A, B), base, [{ from: 2.5, to: 2 }], 'tiny'));
  refuse('keep_box_mismatch', /layer 2's box \[16,32,80,80\] differs from base layer 2's box \[16,16,80,64\]/, () =>
    checkKeep(layout([16, 32, 80, 80], B), base, [{ from: 2, to: 2 }], 'tiny'));
});

test('checkLatents refuses latents that do not fit their layout or are not finite', () => {
  const l = layout(A);
  const n = transformerTokens(l).count * PACKED_CHANNELS;
  checkLatents({ layout: l, tokens: new Float32Array(n) });
  assert.throws(() => checkLatents({ layout: l, tokens: new Float32Array(n - 64) }), (e: unknown) => e instanceof KeepError && e.code === 'base_latents');
  const nan = new Float32Array(n);
  nan[5] = Number.NaN;
  assert.throws(() => checkLatents({ layout: l, tokens: nan }), (e: unknown) => e instanceof KeepError && /non-finite value at 5/.test(e.message));
});

test('denoise with hold: called with sigma[0] first and sigma[i+1] after each step; the model sees held tokens; ends at x0 bit for bit', async () => {
  const schedule = fluxSchedule(4, 50);
  const x0 = Float32Array.from([0.3, -0.7, 1.25, -0]);
  const eps = Float32Array.from([0.9, 0.1, -1.1, 0.4]);
  const kept = { spans: [{ start: 0, end: 2 }], x0 };
  const sigmas: number[] = [];
  const seen: number[][] = [];
  const model: NoisePredictor = {
    async predict(latents) {
      seen.push([...latents]);
      return { cond: latents.map((v) => v * 0.5 + 1) };
    },
  };
  const out = await denoise(eps, model, { schedule, trueCfg: 1, hold: (l, s) => { sigmas.push(s); holdKept(l, kept, eps, s); } });
  assert.deepEqual(sigmas, [...schedule.sigmas]);
  for (let i = 0; i < 4; i++) {
    const s = schedule.sigmas[i];
    assert.equal(seen[i][1], Math.fround(Math.fround(Math.fround(1 - s) * x0[1]) + Math.fround(s * eps[1])), `step ${i}`);
  }
  assert.ok(Object.is(out[0], x0[0]) && Object.is(out[1], x0[1]));
  // The free tokens moved with the model, not held.
  assert.notEqual(out[2], x0[2]);
});

// ---- the pipeline on the tiny model ---------------------------------------------------------------

let root: string;
let pipeline: ArtPipeline;
let base: GenerateResult;
const baseLayout = layout(A, B, C);
const params = (over: Partial<GenerateParams> = {}): GenerateParams => ({
  prompt: 'a poster with a title and a photo',
  layout: baseLayout,
  steps: 3,
  guidance: 4,
  trueCfg: 3.5,
  seed: 41,
  ...over,
});

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'art-keep-'));
  writeTinyModel(join(root, 'tiny'));
  pipeline = await createPipeline({ modelDir: join(root, 'tiny'), provider: 'cpu' });
  base = await pipeline.generate(params());
});
after(async () => {
  await pipeline?.dispose();
  rmSync(root, { recursive: true, force: true });
});

const onBase = (keep: { from: number; to: number }[], latents = base.latents) => ({ model: pipeline.info.model, latents, keep });

test('the result carries its clean latents: the token grid of its layout', () => {
  assert.deepEqual(base.latents.layout, baseLayout);
  assert.equal(base.latents.tokens.length, transformerTokens(baseLayout).count * PACKED_CHANNELS);
  checkLatents(base.latents);
});

test('an empty keep set is exactly a plain generation (latents and every image byte)', async () => {
  const plain = await pipeline.generate(params({ seed: 7 }));
  const withBase = await pipeline.generate(params({ seed: 7, base: onBase([]) }));
  assertBitEqual(withBase.latents.tokens, plain.latents.tokens, 'latents');
  withBase.layers.forEach((l, i) => assert.deepEqual(l.rgba, plain.layers[i].rgba, `layer ${i}`));
  assert.deepEqual(withBase.merged.rgb, plain.merged.rgb);
});

test('kept layers end bit for bit at the stored latents; regenerated ones differ from the base; deterministic', async () => {
  const p = params({ seed: 99, base: onBase([{ from: 1, to: 1 }, { from: 2, to: 2 }, { from: 4, to: 4 }]) });
  const r = await pipeline.generate(p);
  for (const l of [1, 2, 4]) assertBitEqual(layerTokens(r.latents, l), layerTokens(base.latents, l), `kept layer ${l}`);
  assert.ok(maxAbsDiff(layerTokens(r.latents, 3), layerTokens(base.latents, 3)) > 1e-3, 'regenerated layer 3 differs from the base');
  assert.ok(maxAbsDiff(layerTokens(r.latents, 0), layerTokens(base.latents, 0)) > 1e-3, 'the merged layer is regenerated');
  const again = await pipeline.generate(p);
  assertBitEqual(again.latents.tokens, r.latents.tokens, 'same base, keep, layout, prompt and seed');
  again.layers.forEach((l, i) => assert.deepEqual(l.rgba, r.layers[i].rgba, `layer ${i} again`));
});

test('the regenerated layers depend on the kept context: same seed with and without the base differ there', async () => {
  const keep = [{ from: 1, to: 1 }, { from: 2, to: 2 }, { from: 4, to: 4 }];
  const plain = await pipeline.generate(params({ seed: 5 }));
  const kept = await pipeline.generate(params({ seed: 5, base: onBase(keep) }));
  const d = maxAbsDiff(layerTokens(kept.latents, 3), layerTokens(plain.latents, 3));
  assert.ok(d > 1e-4, `regenerated layer 3 moved by ${d} with the kept context`);
  // Another kept context (the base's latents scaled) moves it again: the new layer attends to what is kept.
  const other = { layout: base.latents.layout, tokens: base.latents.tokens.map((v) => v * -0.5) };
  const kept2 = await pipeline.generate(params({ seed: 5, base: onBase(keep, other) }));
  assert.ok(maxAbsDiff(layerTokens(kept2.latents, 3), layerTokens(kept.latents, 3)) > 1e-4);
});

test('a moved box, an added layer and a reordered design: kept layers at their new indices, exact', async () => {
  // Layer 3 (B) moved, a new layer D on top, C moved below A: new order C, A, B', D.
  const movedB: BoxTuple = [48, 32, 112, 80];
  const next = layout(C, A, movedB, D);
  const keep = [{ from: 1, to: 1 }, { from: 4, to: 2 }, { from: 2, to: 3 }];
  const r = await pipeline.generate(params({ seed: 12, layout: next, base: onBase(keep) }));
  assert.deepEqual(r.latents.layout, next);
  for (const { from, to } of keep) assertBitEqual(layerTokens(r.latents, to), layerTokens(base.latents, from), `base ${from} -> ${to}`);
  assert.deepEqual(r.layers.map((l) => l.box), next.boxes);
  // Keeping the moved layer is refused: its tokens are the stored ones, at the old box.
  await assert.rejects(pipeline.generate(params({ layout: next, base: onBase([{ from: 3, to: 4 }]) })), (e: unknown) => e instanceof KeepError && e.code === 'keep_box_mismatch');
});

test('the pipeline refuses a base of another model, canvas, or damaged latents, before running', async () => {
  const reject = (p: GenerateParams, code: KeepProblem) => assert.rejects(pipeline.generate(p), (e: unknown) => e instanceof KeepError && e.code === code);
  await reject(params({ base: { ...onBase([]), model: 'another' } }), 'base_mismatch');
  await reject(params({ base: onBase([], { layout: baseLayout, tokens: base.latents.tokens.subarray(64) }) }), 'base_latents');
  await reject(params({ base: onBase([{ from: 0, to: 1 }]) }), 'invalid_keep');
  const tall: Layout = { width: W, height: 128, boxes: [[0, 0, W, 128], [0, 0, W, 128], A] };
  await reject(params({ layout: tall, base: onBase([{ from: 2, to: 2 }]) }), 'base_mismatch');
});
