/**
 * Golden check of the scheduler: every schedule of `schedules.json` (mu, timesteps, sigmas) and
 * one Euler step of `step.safetensors`, against diffusers v0.31 as ART drives it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAll, toFloat32 } from '../onnx/safetensors.ts';
import { eulerStep, fluxSchedule, indexForTimestep, schedulerConfigFromDiffusers } from '../pipeline/scheduler.ts';
import { compareFloat, type Comparison, type GoldenReport } from './compare.ts';

interface ScheduleCase {
  steps: number;
  image_seq_len: number;
  mu: number;
  timesteps: number[];
  sigmas: number[];
}

export async function check(dir: string): Promise<GoldenReport> {
  const cfg = schedulerConfigFromDiffusers(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
  const caseJson = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as { step_timestep: number };
  const cases = JSON.parse(readFileSync(join(dir, 'schedules.json'), 'utf8')) as ScheduleCase[];
  const comparisons: Comparison[] = [];
  for (const c of cases) {
    const s = fluxSchedule(c.steps, c.image_seq_len, cfg);
    const tag = `N=${c.steps} seq=${c.image_seq_len}`;
    comparisons.push(compareFloat(`mu ${tag}`, [s.mu], [c.mu], 1e-12));
    comparisons.push(compareFloat(`timesteps ${tag}`, s.timesteps, c.timesteps));
    comparisons.push(compareFloat(`sigmas ${tag}`, s.sigmas, c.sigmas));
  }
  const t = loadAll(join(dir, 'step.safetensors'));
  const f32 = (name: string) => {
    const e = t.get(name);
    if (!e) throw new Error(`${dir}/step.safetensors: tensor "${name}" is missing`);
    return toFloat32(e.info, e.bytes);
  };
  // As the case was made: a fresh 4-step schedule over 256 tokens, stepped at one of its timesteps.
  const schedule = fluxSchedule(4, 256, cfg);
  const index = indexForTimestep(schedule, caseJson.step_timestep);
  comparisons.push(compareFloat('step prev_sample', eulerStep(schedule, index, f32('sample'), f32('model_output')), f32('prev_sample')));
  return { kind: 'scheduler', dir, comparisons };
}
