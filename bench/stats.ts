import os from 'node:os';

/** Timing and table printing shared by the benchmarks. */

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Runs `fn` `warmup` times untimed, then `runs` times; returns each timed run's milliseconds. */
export async function timeRuns(fn: () => Promise<unknown>, runs: number, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return times;
}

/**
 * Times `fn` once as a warm-up, then as many runs as fit in `budgetMs` (at least 1, at most
 * `maxRuns`), so a 30-second baseline is not repeated five times. Returns the timed runs' ms.
 */
export async function timeWithin(fn: () => Promise<unknown>, budgetMs: number, maxRuns: number): Promise<number[]> {
  const t0 = performance.now();
  await fn();
  const warm = performance.now() - t0;
  const runs = Math.max(1, Math.min(maxRuns, Math.floor(budgetMs / Math.max(warm, 1e-3))));
  return timeRuns(fn, runs, 0);
}

/** The machine, for the record beside every table (load matters: benchmarks share the CPU). */
export function machineLine(): string {
  const cpus = os.cpus();
  const load = os.loadavg().map((l) => l.toFixed(1)).join(' ');
  return `${cpus.length} cores (${cpus[0]?.model ?? 'unknown CPU'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB memory, load average ${load}, Node ${process.version}`;
}

/** A plain-text table: right-aligned columns, a rule under the header. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => c.padStart(widths[i])).join('  ');
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export const fixed = (n: number, digits = 1): string => n.toFixed(digits);
export const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
