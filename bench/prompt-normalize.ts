/**
 * `npm run bench -- normalize`: T5's charsmap normalization on FLUX.1-dev's real tokenizer.json,
 * prompt lengths 10 k and 100 k characters. Read the ratio: linear work gives about 10x for 10x
 * the text; the whole-text Intl.Segmenter pass it replaced gave about 40x (0.1 s -> 4.2 s).
 */
import { readFileSync } from 'node:fs';
import { parseCharsmap, applyCharsmap } from '../gpu-server/text/tokenizer-charsmap.ts';
import { fixed, median, table } from './stats.ts';

export async function main(): Promise<void> {
  const json = JSON.parse(readFileSync(new URL('../test/fixtures/flux-dev/tokenizer_2/tokenizer.json', import.meta.url), 'utf8')) as { normalizer: { normalizers: Array<{ type: string; precompiled_charsmap?: string }> } };
  const blob = json.normalizer.normalizers.find((n) => n.type === 'Precompiled')?.precompiled_charsmap ?? '';
  const map = parseCharsmap(Buffer.from(blob, 'base64'));
  const sample = 'A vintage poster, “SUMMER SALE” in bold red letters — café au lait, ﬁne print, 50% off! ';
  const time = (n: number) => {
    const text = sample.repeat(Math.ceil(n / sample.length)).slice(0, n);
    const runs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      applyCharsmap(map, text);
      runs.push(performance.now() - t0);
    }
    return median(runs);
  };
  time(1000); // warm-up
  const small = time(10_000);
  const large = time(100_000);
  console.log('\nT5 charsmap normalization (real nmt_nfkc map)');
  console.log(table(['characters', 'median ms', 'vs 10 k'], [[10_000, fixed(small), '1.0x'], [100_000, fixed(large), `${fixed(large / small)}x`]]));
}
