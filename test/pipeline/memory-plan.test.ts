import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Layout } from '../../domain/layout.ts';
import { createPipeline } from '../../gpu-server/pipeline/art-pipeline.ts';
import { HEADROOM, planMemory } from '../../gpu-server/pipeline/memory-plan.ts';

const GB = 1024 ** 3;

test('everything stays resident when weights and headroom fit in free memory', () => {
  const plan = planMemory(10 * GB, 24 * GB, 80 * GB, 'cuda');
  assert.equal(plan.mode, 'resident');
  assert.match(plan.summary, /all graphs resident on cuda \(44\.2 GB needed, 80\.0 GB free\)/);
});

test('text encoders load on demand when the whole model does not fit (ART on a 24 GB card)', () => {
  const plan = planMemory(10 * GB, 13 * GB, 22 * GB, 'cuda');
  assert.equal(plan.mode, 'text-on-demand');
  assert.match(plan.summary, /text encoders \(10\.0 GB\) loaded per new prompt/);
  // The boundary is the headroom factor, not the raw sum.
  assert.equal(planMemory(1 * GB, 1 * GB, 2 * GB * HEADROOM, 'cpu').mode, 'resident');
  assert.equal(planMemory(1 * GB, 1 * GB, 2 * GB * HEADROOM - 1, 'cpu').mode, 'text-on-demand');
});

test('small models are stated in MB', () => {
  assert.match(planMemory(2 * 1024 ** 2, 4 * 1024 ** 2, 8 * GB, 'cpu').summary, /\(8 MB needed, 8\.0 GB free\)/);
});

test('unknown free memory keeps everything resident and says why; a forced mode wins', () => {
  assert.match(planMemory(1, 1, undefined, 'webgpu').summary, /free memory of webgpu unknown/);
  assert.equal(planMemory(1, 1, 100 * GB, 'cpu', 'text-on-demand').mode, 'text-on-demand');
});

test('a pipeline with text encoders on demand gives the same image as a resident one', async () => {
  const layout: Layout = { width: 64, height: 64, boxes: [[0, 0, 64, 64], [0, 0, 64, 64], [16, 16, 48, 48]] };
  const params = { prompt: 'a red "sale" badge', layout, steps: 1, guidance: 4, trueCfg: 3.5, seed: 7 };
  const resident = await createPipeline({ provider: 'cpu', memory: 'resident' });
  const onDemand = await createPipeline({ provider: 'cpu', memory: 'text-on-demand' });
  try {
    assert.match(resident.info.memoryPlan ?? '', /all graphs resident/);
    assert.match(onDemand.info.memoryPlan ?? '', /loaded per new prompt/);
    const a = await resident.generate(params);
    const b = await onDemand.generate(params);
    const c = await onDemand.generate({ ...params, prompt: 'another prompt' });
    assert.deepEqual(b.layers[2].rgba, a.layers[2].rgba);
    assert.notDeepEqual(c.layers[2].rgba, a.layers[2].rgba);
  } finally {
    await resident.dispose();
    await onDemand.dispose();
  }
});
