import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { reportPasses } from '../../gpu-server/golden/compare.ts';
import { check } from '../../gpu-server/golden/pipeline-case.ts';
import { GOLDEN } from './golden-data.ts';

test('the golden pipeline case passes: every step, decoder latents, merged/background images, RGBA', async () => {
  const report = await check(join(GOLDEN, 'pipeline'));
  const names = report.comparisons.map((c) => c.name);
  for (const required of ['latents_after_step_3 (in boxes)', 'latents_for_decoders', 'images[merged]', 'images[background]', 'rgba']) {
    assert.ok(names.includes(required), `missing comparison ${required}`);
  }
  assert.ok(reportPasses(report), JSON.stringify(report.comparisons.filter((c) => !c.pass)));
});
