/** Golden check of the T5 encoder graph on a `t5_encoder` case (input_ids in, last hidden state out). */
import { join } from 'node:path';
import { bucketTable, buildT5Encoder, parseT5Config, type T5Config } from '../models/t5-encoder.ts';
import { checkpointWeights } from '../onnx/graph.ts';
import { Checkpoint } from '../onnx/safetensors.ts';
import { ort, type Provider } from '../onnx/session.ts';
import { need, readFloats, readInt64, readJson, runGraphOnce } from './case.ts';
import { compareFloat, type GoldenReport } from './compare.ts';

export async function check(dir: string, provider: Provider = 'cpu'): Promise<GoldenReport> {
  const configFile = join(dir, 'config.json');
  const config = parseT5Config(readJson(configFile), configFile);
  const inputsFile = join(dir, 'inputs.safetensors');
  const outputsFile = join(dir, 'outputs.safetensors');
  const ids = readInt64(inputsFile, 'input_ids');
  const outputs = readFloats(outputsFile);

  const weights = Checkpoint.open(join(dir, 'weights.safetensors'));
  const graph = buildT5Encoder(config, checkpointWeights(weights), 'float32', { seqLen: ids.shape[1] });
  const result = await runGraphOnce(graph, { input_ids: new ort.Tensor('int64', ids.data, ids.shape) }, provider);
  return {
    kind: 't5_encoder',
    dir,
    comparisons: [
      compareFloat('last_hidden_state', result.last_hidden_state, need(outputs, 'last_hidden_state', outputsFile).data),
      // The bucket table the graph embeds, looked up in block 0's bias weights: exact or wrong.
      compareFloat('position_bias', positionBias(config, weights.readFloat32(BIAS_KEY), ids.shape[1]), need(outputs, 'position_bias', outputsFile).data, 0),
    ],
  };
}

const BIAS_KEY = 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight';

/** position_bias [1, H, S, S] = bias[bucket(j - i), h], as the graph gathers it. */
export function positionBias(c: T5Config, biasWeight: Float32Array, s: number): Float32Array {
  const table = bucketTable(s, c.buckets, c.maxDistance);
  const out = new Float32Array(c.heads * s * s);
  for (let h = 0; h < c.heads; h++) for (let p = 0; p < s * s; p++) out[h * s * s + p] = biasWeight[Number(table[p]) * c.heads + h];
  return out;
}
