/**
 * Comparing a result with the official code's output. "Relative error" here is the largest
 * absolute difference divided by the largest magnitude of the reference (elementwise ratios blow
 * up near zero and say nothing).
 */

export interface Comparison {
  name: string;
  maxAbs: number;
  maxRel: number;
  /** The bar this comparison must stay under (relative unless `metric` says otherwise). */
  tolerance: number;
  metric: 'relative' | 'levels';
  pass: boolean;
  /** Values compared (after masking). */
  count: number;
  note?: string;
}

export interface GoldenReport {
  kind: string;
  dir: string;
  comparisons: Comparison[];
}

export const FP32_TOLERANCE = 1e-4;
/**
 * fp16 graphs against fp32 or the official output: fp16 keeps about 3 decimal digits. Worst
 * measured on the golden cases (CPU provider, which computes many fp16 ops in fp32): 2.1e-3.
 */
export const FP16_TOLERANCE = 5e-3;
/**
 * The int4 transformer against the official fp32 output: the error 4-bit min/max blocks of 32
 * inherently give the golden case's random Gaussian weights (measured 0.103).
 */
export const INT4_TOLERANCE = 0.11;

type Numeric = ArrayLike<number>;

/** Compares `actual` with `expected` where `mask` (if given) is non-zero. */
export function compareFloat(name: string, actual: Numeric, expected: Numeric, tolerance = FP32_TOLERANCE, mask?: ArrayLike<number>): Comparison {
  if (actual.length !== expected.length) {
    return { name, maxAbs: Infinity, maxRel: Infinity, tolerance, metric: 'relative', pass: false, count: 0, note: `length ${actual.length} != reference ${expected.length}` };
  }
  let maxAbs = 0;
  let maxRef = 0;
  let count = 0;
  for (let i = 0; i < expected.length; i++) {
    if (mask && !mask[i]) continue;
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? Infinity : d;
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
    count++;
  }
  const maxRel = maxRef > 0 ? maxAbs / maxRef : maxAbs;
  return { name, maxAbs, maxRel, tolerance, metric: 'relative', pass: maxRel <= tolerance && count > 0, count };
}

/**
 * 8-bit images: at most `oneLevelShare` of the values may be off by one level and none by more
 * than `maxLevels` (uint8 conversions truncate, so a 1-ulp float difference can flip a level).
 */
export function compareLevels(name: string, actual: ArrayLike<number>, expected: ArrayLike<number>, maxLevels = 2, minExactOrOneShare = 0.999): Comparison {
  if (actual.length !== expected.length) {
    return { name, maxAbs: Infinity, maxRel: Infinity, tolerance: maxLevels, metric: 'levels', pass: false, count: 0, note: `length ${actual.length} != reference ${expected.length}` };
  }
  let maxAbs = 0;
  let withinOne = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    maxAbs = Math.max(maxAbs, d);
    if (d <= 1) withinOne++;
  }
  const share = withinOne / expected.length;
  return {
    name, maxAbs, maxRel: maxAbs / 255, tolerance: maxLevels, metric: 'levels',
    pass: maxAbs <= maxLevels && share >= minExactOrOneShare, count: expected.length,
    note: `${(share * 100).toFixed(3)}% within 1 level`,
  };
}

export function formatReport(report: GoldenReport, provider = 'cpu'): string {
  const lines = [`${report.kind}  ${report.dir}${provider === 'cpu' ? '' : `  (on ${provider})`}`];
  for (const c of report.comparisons) {
    const bar = c.metric === 'relative' ? `rel <= ${c.tolerance.toExponential(0)}` : `<= ${c.tolerance} levels`;
    lines.push(
      `  ${c.pass ? 'ok  ' : 'FAIL'} ${c.name.padEnd(28)} max abs ${c.maxAbs.toExponential(3)}  max rel ${c.maxRel.toExponential(3)}  (${bar}, ${c.count} values)${c.note ? '  ' + c.note : ''}`,
    );
  }
  return lines.join('\n');
}

export const reportPasses = (r: GoldenReport): boolean => r.comparisons.length > 0 && r.comparisons.every((c) => c.pass);
