/**
 * Bridge errors, connection states and times in words a designer can act on. The bridge's own
 * message is kept where it says something specific (which field, which limit).
 */
import type { Stage } from '../domain/stage.ts';
import type { ErrorCode, ErrorMessage } from '../bridge/protocol/messages.ts';

export const START_COMMAND = 'npm start';

const ADVICE: Partial<Record<ErrorCode, string>> = {
  unauthorized: 'The token does not match this bridge. Copy the token the bridge printed when it started.',
  rate_limited: 'Too many tries in a short time. Wait a minute, check the token, then connect again.',
  protocol_version: 'The plugin and the bridge are from different versions. Update both (git pull, npm run build) and restart the bridge.',
  queue_full: 'The bridge already has as many jobs as it takes. Wait for one to finish, then generate again.',
  invalid_prompt: 'The prompt cannot be used:',
  invalid_layout: 'This frame’s layout cannot be generated:',
  invalid_params: 'A setting is out of range:',
  generation_failed: 'The bridge failed while generating; the terminal running it says more:',
  cancelled: 'Cancelled.',
  shutting_down: `The bridge is shutting down. Start it again with ${START_COMMAND}.`,
  unknown_job: 'The bridge no longer has this job (it was restarted or pruned). Generate again.',
};

export function errorText(error: Pick<ErrorMessage, 'code' | 'message'>): string {
  const advice = ADVICE[error.code];
  if (!advice) return error.message;
  return advice.endsWith(':') ? `${advice} ${error.message}` : advice;
}

const STAGES: Record<Stage, string> = {
  text: 'Reading the prompt',
  denoise: 'Generating',
  decode: 'Decoding layers',
  encode: 'Preparing images',
};

export function stageText(stage: Stage): string {
  return STAGES[stage] ?? stage;
}

export function seconds(ms: number): string {
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** Remaining time of the denoising stage from the pace so far, or null before there is a pace. */
export function remainingMs(
  first: { step: number; elapsedMs: number },
  now: { step: number; total: number; elapsedMs: number },
): number | null {
  const steps = now.step - first.step;
  if (steps <= 0) return null;
  return ((now.elapsedMs - first.elapsedMs) / steps) * (now.total - now.step);
}
