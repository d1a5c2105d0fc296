import assert from 'node:assert/strict';
import { test } from 'node:test';
import { measureInsertion } from '../../bench/plugin-traffic.ts';

// The bench's insertion figures come from plugin/main.ts itself: each round must end in main.ts's own
// `inserted` answer for a new frame of all 50 child layers (measureInsertion throws otherwise).
test('the plugin bench inserts a 52-layer job through main.ts, and times what it says', async () => {
  const t = await measureInsertion(1);
  assert.ok(t.totalMs > 0 && t.tailMs > 0 && t.tailMs < t.totalMs, JSON.stringify(t));
});
