/**
 * The denoising loop of `CustomFluxPipelineCfg` over packed in-box tokens: at each step one
 * model call gives the conditional and unconditional predictions (batched by the predictor),
 * true classifier-free guidance combines them, and the Euler step moves the latents. Cancellable
 * between steps.
 */
import { eulerStep, type Schedule } from './scheduler.ts';

export interface Prediction {
  cond: Float32Array;
  /** Absent when no guidance is applied (true CFG scale 1). */
  uncond?: Float32Array;
}

/** Runs the transformer on the packed tokens at `timestep` (the pipeline's t/1000). */
export interface NoisePredictor {
  predict(latents: Float32Array, timestep: number, withUncond: boolean): Promise<Prediction>;
}

export interface DenoiseOptions {
  schedule: Schedule;
  /** True CFG scale: `uncond + trueCfg * (cond - uncond)`; 1 skips the unconditional branch. */
  trueCfg: number;
  signal?: AbortSignal;
  /**
   * Sets some tokens (in place) to where they must be at `sigma`: called on the initial latents
   * with sigma[0] and after every step i with sigma[i+1] (0 after the last), before `onStep`.
   * Kept layers use it (keep.ts); absent, the loop is the plain one.
   */
  hold?: (latents: Float32Array, sigma: number) => void;
  /**
   * After each step: steps done (1-based), total, the latents, the model's predictions, and the
   * current estimate of the clean latents `x - sigma * v` (computed only if called; for previews).
   */
  onStep?: (done: number, total: number, latents: Float32Array, prediction: Prediction, denoised: () => Float32Array) => void;
}

export function abortError(): DOMException {
  return new DOMException('generation cancelled', 'AbortError');
}

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw abortError();
}

/** `uncond + scale * (cond - uncond)`, each operation rounded to float32 as torch does. */
export function trueCfgCombine(cond: Float32Array, uncond: Float32Array, scale: number): Float32Array {
  if (cond.length !== uncond.length) throw new RangeError(`cond (${cond.length}) and uncond (${uncond.length}) predictions differ in size`);
  const s = Math.fround(scale);
  const out = new Float32Array(cond.length);
  for (let i = 0; i < cond.length; i++) out[i] = uncond[i] + Math.fround(s * Math.fround(cond[i] - uncond[i]));
  return out;
}

/** Denoises `initial` (packed tokens, noise at sigma 1) through the schedule; returns new latents. */
export async function denoise(initial: Float32Array, model: NoisePredictor, options: DenoiseOptions): Promise<Float32Array> {
  const { schedule, trueCfg, signal } = options;
  const withUncond = trueCfg !== 1;
  const total = schedule.timesteps.length;
  let latents: Float32Array = Float32Array.from(initial);
  options.hold?.(latents, schedule.sigmas[0]);
  for (let i = 0; i < total; i++) {
    throwIfAborted(signal);
    // The pipeline passes t / 1000 in float32; the model scales it back.
    const prediction = await model.predict(latents, Math.fround(schedule.timesteps[i] / 1000), withUncond);
    throwIfAborted(signal);
    const guided = withUncond && prediction.uncond ? trueCfgCombine(prediction.cond, prediction.uncond, trueCfg) : prediction.cond;
    latents = eulerStep(schedule, i, latents, guided);
    const sigma = schedule.sigmas[i + 1];
    options.hold?.(latents, sigma);
    const current = latents;
    options.onStep?.(i + 1, total, latents, prediction, () => current.map((x, k) => x - sigma * guided[k]));
  }
  return latents;
}
