/**
 * The checkers every golden and precision test relies on: each tolerance is tried just inside
 * and just outside, so a checker that always passed (or always failed) is caught here.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareFloat, compareLevels, FP32_TOLERANCE, formatReport, reportPasses } from '../../gpu-server/golden/compare.ts';

// Reference with max |ref| = 2 (at index 1): relative error = max |diff| / 2.
const REF = Float32Array.from([0.5, -2, 1, 0]);
const shifted = (at: number, by: number) => REF.map((v, i) => (i === at ? v + by : v));

test('compareFloat: relative to the largest magnitude of the reference, pass just inside each tolerance, fail just outside', () => {
  for (const tol of [FP32_TOLERANCE, 5e-3, 0.1]) {
    // The difference sits where the reference is 0: elementwise ratios would be infinite.
    const inside = compareFloat('in', shifted(3, 2 * tol * 0.98), REF, tol);
    assert.ok(inside.pass, JSON.stringify(inside));
    assert.ok(Math.abs(inside.maxRel - tol * 0.98) < tol * 1e-3, `maxRel ${inside.maxRel}`);
    assert.ok(Math.abs(inside.maxAbs - 2 * tol * 0.98) < tol * 1e-3);
    const outside = compareFloat('out', shifted(3, 2 * tol * 1.02), REF, tol);
    assert.equal(outside.pass, false, JSON.stringify(outside));
    assert.equal(outside.metric, 'relative');
    assert.equal(outside.count, 4);
  }
  assert.equal(compareFloat('default bar', shifted(0, 2 * FP32_TOLERANCE * 1.02), REF).pass, false);
  assert.equal(compareFloat('default bar', shifted(0, 2 * FP32_TOLERANCE * 0.98), REF).pass, true);
  assert.equal(compareFloat('negative diff counts too', shifted(2, -2 * 0.011), REF, 1e-2).pass, false);
});

test('compareFloat: a mask hides differences outside it, and counts only what it compares', () => {
  const actual = shifted(3, 1);
  const mask = [1, 1, 1, 0];
  const c = compareFloat('masked', actual, REF, FP32_TOLERANCE, mask);
  assert.ok(c.pass);
  assert.equal(c.count, 3);
  assert.equal(compareFloat('unmasked', actual, REF, FP32_TOLERANCE, [1, 1, 1, 1]).pass, false);
  // Nothing compared is no evidence: fail.
  assert.equal(compareFloat('all masked', REF, REF, FP32_TOLERANCE, [0, 0, 0, 0]).pass, false);
});

test('compareFloat: NaN, length mismatch and an all-zero reference never pass', () => {
  const nan = compareFloat('nan', shifted(1, NaN), REF, 1);
  assert.equal(nan.pass, false);
  assert.equal(nan.maxAbs, Infinity);
  // NaN first, then a small difference: the NaN still decides.
  assert.equal(compareFloat('nan first', Float32Array.from([NaN, -2, 1, 0.5]), REF, 1).pass, false);
  const short = compareFloat('short', REF.subarray(0, 3), REF);
  assert.equal(short.pass, false);
  assert.match(short.note ?? '', /length 3 != reference 4/);
  // All-zero reference: the absolute difference is the measure.
  const zeros = new Float32Array(4);
  assert.equal(compareFloat('zeros', Float32Array.from([0, 0, 0, 0.99e-4]), zeros).pass, true);
  assert.equal(compareFloat('zeros', Float32Array.from([0, 0, 0, 1.01e-4]), zeros).pass, false);
  assert.equal(compareFloat('identical', REF, REF).maxAbs, 0);
});

const ref8 = new Uint8Array(1000).map((_, i) => (i * 37) % 256);
const withDiffs = (count: number, by: number) => ref8.map((v, i) => (i < count ? (v + by <= 255 ? v + by : v - by) : v));

test('compareLevels: at most the allowed share off by one level, none beyond maxLevels', () => {
  // Default: 99.9% within 1 level (here: at most 1 of 1000 values off by 2), none beyond 2.
  assert.ok(compareLevels('exact', ref8, ref8).pass);
  assert.ok(compareLevels('all off by one', withDiffs(1000, 1), ref8).pass);
  const oneOff2 = compareLevels('one off by 2', withDiffs(1, 2), ref8);
  assert.ok(oneOff2.pass, JSON.stringify(oneOff2));
  assert.equal(oneOff2.maxAbs, 2);
  assert.equal(oneOff2.note, '99.900% within 1 level');
  assert.equal(compareLevels('two off by 2', withDiffs(2, 2), ref8).pass, false);
  assert.equal(compareLevels('one off by 3', withDiffs(1, 3), ref8).pass, false);
  // Explicit bars: maxLevels 1 with 99.5%.
  assert.ok(compareLevels('5 off by one', withDiffs(5, 1), ref8, 1, 0.995).pass);
  assert.equal(compareLevels('one off by 2, bar 1', withDiffs(1, 2), ref8, 1, 0.995).pass, false);
  assert.ok(compareLevels('5 off by 2', withDiffs(5, 2), ref8, 2, 0.995).pass);
  assert.equal(compareLevels('6 off by 2', withDiffs(6, 2), ref8, 2, 0.995).pass, false);
  assert.equal(compareLevels('exact bar', withDiffs(1, 1), ref8, 0, 1).pass, false);
  const short = compareLevels('short', ref8.subarray(1), ref8);
  assert.equal(short.pass, false);
  assert.equal(short.metric, 'levels');
});

test('a report passes only when it has comparisons and all pass; the text says which failed', () => {
  const ok = compareFloat('good', REF, REF);
  const bad = compareFloat('bad', shifted(0, 1), REF);
  assert.equal(reportPasses({ kind: 'x', dir: 'd', comparisons: [] }), false);
  assert.equal(reportPasses({ kind: 'x', dir: 'd', comparisons: [ok] }), true);
  assert.equal(reportPasses({ kind: 'x', dir: 'd', comparisons: [ok, bad] }), false);
  const text = formatReport({ kind: 'x', dir: 'd', comparisons: [ok, bad] });
  assert.match(text, /ok {3}good/);
  assert.match(text, /FAIL bad/);
});

// Found by the mutation run (docs/testing.md): the exact boundary, the fields of a refused
// comparison, and the text `npm run golden` prints.
test('exactly at the bar passes; a length mismatch says so in every field', () => {
  // 0.5 / 2 = 0.25 exactly in binary floating point.
  const at = compareFloat('at the bar', shifted(3, 0.5), REF, 0.25);
  assert.equal(at.maxRel, 0.25);
  assert.equal(at.pass, true);
  const short = compareFloat('short', REF.subarray(0, 3), REF);
  assert.deepEqual([short.metric, short.maxAbs, short.count], ['relative', Infinity, 0]);
  const shortLevels = compareLevels('short', ref8.subarray(1), ref8);
  assert.deepEqual([shortLevels.maxAbs, shortLevels.count, shortLevels.tolerance], [Infinity, 0, 2]);
  assert.match(shortLevels.note ?? '', /length 999 != reference 1000/);
  const two = compareLevels('two', withDiffs(1, 2), ref8);
  assert.equal(two.metric, 'levels');
  assert.equal(two.maxRel, 2 / 255);
});

test('formatReport prints the case, then one line per comparison with its bar, counts and note', () => {
  const text = formatReport({
    kind: 'vae',
    dir: 'cases/vae',
    comparisons: [compareFloat('decoded', REF, REF), compareLevels('rgba', withDiffs(2, 2), ref8)],
  });
  assert.deepEqual(text.split('\n'), [
    'vae  cases/vae',
    `  ok   ${'decoded'.padEnd(28)} max abs 0.000e+0  max rel 0.000e+0  (rel <= 1e-4, 4 values)`,
    `  FAIL ${'rgba'.padEnd(28)} max abs 2.000e+0  max rel 7.843e-3  (<= 2 levels, 1000 values)  99.800% within 1 level`,
  ]);
});
