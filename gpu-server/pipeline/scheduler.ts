/**
 * Flow-matching Euler with FLUX dynamic shifting, as ART drives diffusers v0.31's
 * `FlowMatchEulerDiscreteScheduler`: sigmas `linspace(1, 1/N, N)`, shifted in float64 with `mu`
 * from the token count, cast to float32; timesteps `sigma * 1000` in float32; a final sigma 0;
 * the Euler step `x + (sigma_next - sigma) * v` in float32.
 */

export interface SchedulerConfig {
  numTrainTimesteps: number;
  baseImageSeqLen: number;
  maxImageSeqLen: number;
  baseShift: number;
  maxShift: number;
}

/** FLUX.1-dev's `scheduler/scheduler_config.json`, as the golden case uses it. */
export const FLUX_SCHEDULER: SchedulerConfig = {
  numTrainTimesteps: 1000,
  baseImageSeqLen: 256,
  maxImageSeqLen: 4096,
  baseShift: 0.5,
  maxShift: 1.15,
};

/** Reads the diffusers config keys (snake_case), falling back to FLUX's values for missing ones. */
export function schedulerConfigFromDiffusers(json: Record<string, unknown>): SchedulerConfig {
  const num = (key: string, fallback: number): number => {
    const v = json[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`scheduler config: "${key}" must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  if (json.use_dynamic_shifting === false) throw new TypeError('scheduler config: use_dynamic_shifting is false, but ART needs FLUX dynamic shifting');
  return {
    numTrainTimesteps: num('num_train_timesteps', FLUX_SCHEDULER.numTrainTimesteps),
    baseImageSeqLen: num('base_image_seq_len', FLUX_SCHEDULER.baseImageSeqLen),
    maxImageSeqLen: num('max_image_seq_len', FLUX_SCHEDULER.maxImageSeqLen),
    baseShift: num('base_shift', FLUX_SCHEDULER.baseShift),
    maxShift: num('max_shift', FLUX_SCHEDULER.maxShift),
  };
}

/** The pipeline's `calculate_shift`: linear in the token count, float64. */
export function calculateShift(imageSeqLen: number, cfg: SchedulerConfig = FLUX_SCHEDULER): number {
  const m = (cfg.maxShift - cfg.baseShift) / (cfg.maxImageSeqLen - cfg.baseImageSeqLen);
  const b = cfg.baseShift - m * cfg.baseImageSeqLen;
  return imageSeqLen * m + b;
}

/** numpy.linspace(start, stop, num) in float64, element for element. */
export function linspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  const div = num - 1;
  const step = (stop - start) / div;
  for (let i = 0; i < num; i++) out[i] = i * step + start;
  if (num > 1) out[num - 1] = stop;
  else if (num === 1) out[0] = start;
  return out;
}

export interface Schedule {
  /** [steps] float32. */
  timesteps: Float32Array;
  /** [steps + 1] float32, ending in 0. */
  sigmas: Float32Array;
  mu: number;
}

/** Timesteps and sigmas for `steps` steps over `imageSeqLen` (all cropped) tokens. */
export function fluxSchedule(steps: number, imageSeqLen: number, cfg: SchedulerConfig = FLUX_SCHEDULER): Schedule {
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`steps must be a positive integer, got ${steps}`);
  const mu = calculateShift(imageSeqLen, cfg);
  const em = Math.exp(mu);
  const base = linspace(1, 1 / steps, steps);
  const sigmas = new Float32Array(steps + 1);
  const timesteps = new Float32Array(steps);
  for (let i = 0; i < steps; i++) {
    // time_shift(mu, 1, t) = e^mu / (e^mu + (1/t - 1)^1), float64, then the float32 cast.
    sigmas[i] = em / (em + (1 / base[i] - 1));
    timesteps[i] = sigmas[i] * cfg.numTrainTimesteps;
  }
  sigmas[steps] = 0;
  return { timesteps, sigmas, mu };
}

/** The scheduler's `index_for_timestep`: the second match when a timestep repeats, as diffusers does. */
export function indexForTimestep(schedule: Schedule, timestep: number): number {
  const hits: number[] = [];
  schedule.timesteps.forEach((t, i) => { if (t === Math.fround(timestep)) hits.push(i); });
  if (hits.length === 0) throw new RangeError(`timestep ${timestep} is not in the schedule`);
  return hits.length > 1 ? hits[1] : hits[0];
}

/**
 * One Euler step `sample + (sigma[i+1] - sigma[i]) * modelOutput`, each operation rounded to
 * float32 as torch does. Writes into `out` (may be `sample` itself).
 */
export function eulerStep(schedule: Schedule, index: number, sample: Float32Array, modelOutput: Float32Array, out: Float32Array = new Float32Array(sample.length)): Float32Array {
  if (index < 0 || index >= schedule.timesteps.length) throw new RangeError(`step index ${index} outside 0..${schedule.timesteps.length - 1}`);
  if (modelOutput.length !== sample.length || out.length !== sample.length) {
    throw new RangeError(`euler step: sample ${sample.length}, model output ${modelOutput.length} and out ${out.length} values differ`);
  }
  const dt = Math.fround(schedule.sigmas[index + 1] - schedule.sigmas[index]);
  // float64 products and sums of float32 values, rounded once, equal float32 arithmetic.
  for (let i = 0; i < sample.length; i++) out[i] = sample[i] + Math.fround(dt * modelOutput[i]);
  return out;
}
