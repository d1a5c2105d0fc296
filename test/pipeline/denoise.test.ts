import assert from 'node:assert/strict';
import { test } from 'node:test';
import { denoise, trueCfgCombine, type NoisePredictor } from '../../gpu-server/pipeline/denoise.ts';
import { transformerTokens } from '../../gpu-server/pipeline/layout-tokens.ts';
import { gatherTokens } from '../../gpu-server/pipeline/packing.ts';
import { eulerStep, fluxSchedule } from '../../gpu-server/pipeline/scheduler.ts';
import { goldenLayout, goldenTensors } from './golden-data.ts';

test('step 0 of the golden pipeline: true CFG then Euler, bit for bit inside the boxes', () => {
  const grid = transformerTokens(goldenLayout('pipeline'));
  const inputs = goldenTensors('pipeline', 'inputs.safetensors');
  const extra = goldenTensors('pipeline', 'extra_outputs.safetensors');
  const schedule = fluxSchedule(4, grid.count);
  assert.deepEqual(schedule.timesteps, extra.f32('timesteps'));
  assert.deepEqual(schedule.sigmas, extra.f32('sigmas'));
  const cond = gatherTokens(extra.f32('noise_pred_cond_step_0'), grid);
  const uncond = gatherTokens(extra.f32('noise_pred_uncond_step_0'), grid);
  const next = eulerStep(schedule, 0, gatherTokens(inputs.f32('initial_latents'), grid), trueCfgCombine(cond, uncond, 3.5));
  assert.deepEqual(next, gatherTokens(extra.f32('latents_after_step_0'), grid));
});

/** A predictor whose outputs are simple functions of its inputs, recording its calls. */
function fakeModel() {
  const calls: { timestep: number; withUncond: boolean }[] = [];
  const model: NoisePredictor = {
    async predict(latents, timestep, withUncond) {
      calls.push({ timestep, withUncond });
      const cond = latents.map((v) => v + 1);
      return withUncond ? { cond, uncond: latents.map((v) => v - 1) } : { cond };
    },
  };
  return { model, calls };
}

test('denoise calls the model once per step at t/1000, guided, and reports progress', async () => {
  const { model, calls } = fakeModel();
  const schedule = fluxSchedule(3, 100);
  const steps: number[] = [];
  const initial = Float32Array.from([0.5, -0.25]);
  const out = await denoise(initial, model, { schedule, trueCfg: 2, onStep: (done, total) => steps.push(done * 10 + total) });
  assert.deepEqual(steps, [13, 23, 33]);
  assert.deepEqual(calls.map((c) => c.timestep), Array.from(schedule.timesteps, (t) => Math.fround(t / 1000)));
  assert.ok(calls.every((c) => c.withUncond));
  // Replay by hand: guided = uncond + 2 (cond - uncond) = x + 3.
  let x: Float32Array = Float32Array.from(initial);
  for (let i = 0; i < 3; i++) x = eulerStep(schedule, i, x, x.map((v) => Math.fround(v - 1) + Math.fround(2 * 2)));
  assert.deepEqual(out, x);
  assert.deepEqual(Array.from(initial), [0.5, -0.25], 'the input is not modified');
});

test('true CFG scale 1 runs the conditional branch only', async () => {
  const { model, calls } = fakeModel();
  await denoise(new Float32Array(4), model, { schedule: fluxSchedule(2, 100), trueCfg: 1 });
  assert.ok(calls.every((c) => !c.withUncond));
});

test('an aborted signal stops between steps with an AbortError', async () => {
  const { model, calls } = fakeModel();
  const controller = new AbortController();
  const run = denoise(new Float32Array(4), model, {
    schedule: fluxSchedule(5, 100), trueCfg: 3.5, signal: controller.signal,
    onStep: (done) => { if (done === 2) controller.abort(); },
  });
  await assert.rejects(run, (e: unknown) => e instanceof DOMException && e.name === 'AbortError');
  assert.equal(calls.length, 2);
});

test('trueCfgCombine refuses mismatched sizes', () => {
  assert.throws(() => trueCfgCombine(new Float32Array(2), new Float32Array(3), 3.5), /differ/);
});
