import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { reportPasses } from '../../gpu-server/golden/compare.ts';
import { check } from '../../gpu-server/golden/scheduler-case.ts';
import { calculateShift, eulerStep, fluxSchedule, indexForTimestep, linspace } from '../../gpu-server/pipeline/scheduler.ts';
import { GOLDEN, goldenTensors } from './golden-data.ts';

interface ScheduleCase { steps: number; image_seq_len: number; mu: number; timesteps: number[]; sigmas: number[] }
const cases = JSON.parse(readFileSync(join(GOLDEN, 'scheduler', 'schedules.json'), 'utf8')) as ScheduleCase[];

test('every golden schedule is reproduced bit for bit (diffusers v0.31: float64 shift, then float32)', () => {
  for (const c of cases) {
    const s = fluxSchedule(c.steps, c.image_seq_len);
    assert.ok(Math.abs(s.mu - c.mu) <= 1e-15, `mu for seq ${c.image_seq_len}`);
    assert.deepEqual(Array.from(s.timesteps), c.timesteps, `timesteps N=${c.steps} seq=${c.image_seq_len}`);
    assert.deepEqual(Array.from(s.sigmas), c.sigmas, `sigmas N=${c.steps} seq=${c.image_seq_len}`);
  }
});

test('the golden Euler step is reproduced bit for bit', () => {
  const t = goldenTensors('scheduler', 'step.safetensors');
  const caseJson = JSON.parse(readFileSync(join(GOLDEN, 'scheduler', 'case.json'), 'utf8')) as { step_timestep: number };
  const s = fluxSchedule(4, 256);
  const index = indexForTimestep(s, caseJson.step_timestep);
  assert.equal(index, 1);
  assert.deepEqual(eulerStep(s, index, t.f32('sample'), t.f32('model_output')), t.f32('prev_sample'));
});

test('the golden scheduler case passes through its check()', async () => {
  const report = await check(join(GOLDEN, 'scheduler'));
  assert.ok(reportPasses(report), JSON.stringify(report.comparisons.filter((c) => !c.pass)));
});

test('linspace follows numpy (exact end points, one value for num 1)', () => {
  assert.deepEqual(Array.from(linspace(1, 0.25, 4)), [1, 0.75, 0.5, 0.25]);
  assert.deepEqual(Array.from(linspace(1, 1, 1)), [1]);
});

test('shift grows with the token count and the schedule decreases to 0', () => {
  assert.ok(calculateShift(4096) > calculateShift(256));
  const s = fluxSchedule(28, 1000);
  for (let i = 1; i < s.sigmas.length; i++) assert.ok(s.sigmas[i] < s.sigmas[i - 1]);
  assert.equal(s.sigmas[28], 0);
  assert.throws(() => fluxSchedule(0, 100), /positive integer/);
  assert.throws(() => indexForTimestep(s, 1234.5), /not in the schedule/);
});
