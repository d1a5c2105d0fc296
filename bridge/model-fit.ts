/** Whether a request the schema accepted fits a model: its resolution and its layer count. */
import type { PipelineInfo } from '../gpu-server/pipeline/types.ts';
import type { ErrorCode, GenerateMessage } from './protocol/messages.ts';

/** Why a request does not fit the model, if it does not. */
export function modelMisfit(info: PipelineInfo, message: GenerateMessage): { code: ErrorCode; message: string } | undefined {
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
