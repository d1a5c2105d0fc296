/** Whether a request the schema accepted fits a model: its job kind, resolution and layer count. */
import type { PipelineInfo } from '../gpu-server/pipeline/types.ts';
import type { ErrorCode, JobMessage } from './protocol/messages.ts';

/** Why a request the schema accepted still does not fit the model it names, if it does not. */
export function modelMisfit(info: PipelineInfo, message: JobMessage): { code: ErrorCode; message: string } | undefined {
  if (!info.jobs.includes(message.type)) {
    const why = message.type === 'decompose' ? ' (its folder has no adapter; convert one with --adapter)' : '';
    return { code: 'job_unsupported', message: `model "${info.model}" cannot ${message.type}${why}; it runs ${info.jobs.join(' and ')} (welcome.models[].jobs)` };
  }
  const { resolution } = message.params;
  if (info.resolutions.length > 0 && !info.resolutions.includes(resolution))
    return {
      code: 'invalid_params',
      message: `params.resolution: model "${info.model}" generates at ${info.resolutions.join(' or ')} pixels, not ${resolution}`,
    };
  if (message.layout.boxes.length > info.maxLayers)
    return { code: 'invalid_layout', message: `layout has ${message.layout.boxes.length} layers; model "${info.model}" takes at most ${info.maxLayers}` };
  return undefined;
}
