/** Golden check of the CLIP text encoder graph on a `clip_text` case (input_ids in, pooled and last hidden state out). */
import { join } from 'node:path';
import { buildClipTextEncoder, parseClipTextConfig } from '../models/clip-text.ts';
import { checkpointWeights } from '../onnx/graph.ts';
import { Checkpoint } from '../onnx/safetensors.ts';
import { ort, type Provider } from '../onnx/session.ts';
import { need, readFloats, readInt64, readJson, runGraphOnce } from './case.ts';
import { compareFloat, type GoldenReport } from './compare.ts';


export async function check(dir: string, provider: Provider = 'cpu'): Promise<GoldenReport> {
  const configFile = join(dir, 'config.json');
  const config = parseClipTextConfig(readJson(configFile), configFile);
  const inputsFile = join(dir, 'inputs.safetensors');
  const outputsFile = join(dir, 'outputs.safetensors');
  const ids = readInt64(inputsFile, 'input_ids');
  const outputs = readFloats(outputsFile);

  const graph = buildClipTextEncoder(config, checkpointWeights(Checkpoint.open(join(dir, 'weights.safetensors'))), 'float32');
  const result = await runGraphOnce(graph, { input_ids: new ort.Tensor('int64', ids.data, ids.shape) }, provider);
  return {
    kind: 'clip_text',
    dir,
    comparisons: [
      compareFloat('pooler_output', result.pooled, need(outputs, 'pooler_output', outputsFile).data),
      compareFloat('last_hidden_state', result.last_hidden_state, need(outputs, 'last_hidden_state', outputsFile).data),
    ],
  };
}
