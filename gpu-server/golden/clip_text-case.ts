/** Golden check of the CLIP text encoder graph on a `clip_text` case (input_ids in, pooled and last hidden state out). */
import { join } from 'node:path';
import { buildClipTextEncoder, parseClipTextConfig } from '../models/clip-text.ts';
import { checkpointWeights } from '../onnx/graph.ts';
import { writeModel } from '../onnx/onnx-writer.ts';
import { Checkpoint, loadAll } from '../onnx/safetensors.ts';
import { openSession, ort } from '../onnx/session.ts';
import { GoldenError, need, readFloats, readJson, withScratch } from './case.ts';
import { compareFloat, type GoldenReport } from './compare.ts';

/** An I64 tensor of a small safetensors file (token ids). */
export function readInt64(file: string, name: string): { shape: number[]; data: BigInt64Array } {
  const t = loadAll(file).get(name);
  if (!t) throw new GoldenError(`${file}: tensor "${name}" is missing`);
  if (t.info.dtype !== 'I64') throw new GoldenError(`${file}: tensor "${name}" is ${t.info.dtype}, expected I64 token ids`);
  const b = t.bytes;
  return { shape: t.info.shape, data: new BigInt64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) };
}

export async function check(dir: string): Promise<GoldenReport> {
  const configFile = join(dir, 'config.json');
  const config = parseClipTextConfig(readJson(configFile), configFile);
  const inputsFile = join(dir, 'inputs.safetensors');
  const outputsFile = join(dir, 'outputs.safetensors');
  const ids = readInt64(inputsFile, 'input_ids');
  const outputs = readFloats(outputsFile);

  const graph = buildClipTextEncoder(config, checkpointWeights(Checkpoint.open(join(dir, 'weights.safetensors'))), 'float32');
  const result = await withScratch(async (scratch) => {
    const path = join(scratch, 'clip_text.onnx');
    writeModel(graph, path);
    const { session } = await openSession(path, 'cpu');
    try {
      return await session.run({ input_ids: new ort.Tensor('int64', ids.data, ids.shape) });
    } finally {
      await session.release();
    }
  });
  return {
    kind: 'clip_text',
    dir,
    comparisons: [
      compareFloat('pooler_output', result.pooled.data as Float32Array, need(outputs, 'pooler_output', outputsFile).data),
      compareFloat('last_hidden_state', result.last_hidden_state.data as Float32Array, need(outputs, 'last_hidden_state', outputsFile).data),
    ],
  };
}
