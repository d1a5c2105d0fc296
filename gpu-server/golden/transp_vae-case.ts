/**
 * Golden check of the transparent decoder on a `transp_vae` case: from the full latents, gather
 * the cells inside the boxes and their RoPE tables (the pipeline's own helpers), run the graph,
 * and compare the patches, the unpatchified fg/alpha and the 8-bit RGBA with the official run.
 */
import { join } from 'node:path';
import { buildTransparentDecoder, parseTransparentDecoderConfig, patchesToRgba, unpatchify } from '../models/transparent-decoder.ts';
import { checkpointWeights, type WeightSource } from '../onnx/graph.ts';
import { Checkpoint, loadAll } from '../onnx/safetensors.ts';
import { ort, type Provider } from '../onnx/session.ts';
import { latentTokens } from '../pipeline/layout-tokens.ts';
import { gatherCells } from '../pipeline/packing.ts';
import { ropeTables } from '../pipeline/rope.ts';
import { caseLayout, GoldenError, need, readCase, readFloats, readJson, runGraphOnce } from './case.ts';
import { compareFloat, compareLevels, type GoldenReport } from './compare.ts';

function readUint8(file: string, name: string): Uint8Array {
  const t = loadAll(file).get(name);
  if (!t) throw new GoldenError(`${file}: tensor "${name}" is missing`);
  if (t.info.dtype !== 'U8') throw new GoldenError(`${file}: tensor "${name}" is ${t.info.dtype}, expected U8`);
  return new Uint8Array(t.bytes);
}

/** `weights` replaces the case's own (e.g. the same tensors read from a torch checkpoint). */
export async function check(dir: string, provider: Provider = 'cpu', weights?: WeightSource): Promise<GoldenReport> {
  const layout = caseLayout(readCase(dir), join(dir, 'case.json'));
  const config = parseTransparentDecoderConfig(readJson(join(dir, 'config.json')));
  const inputsFile = join(dir, 'inputs.safetensors');
  const outputsFile = join(dir, 'outputs.safetensors');
  const extraFile = join(dir, 'extra_outputs.safetensors');
  const outputs = readFloats(outputsFile);
  const extra = readFloats(extraFile);

  const grid = latentTokens(layout);
  const tokens = gatherCells(need(readFloats(inputsFile), 'latents', inputsFile).data, grid);
  const rope = ropeTables(grid.ids, config.ropeAxes, 0, config.ropeTheta);

  const graph = buildTransparentDecoder(config, weights ?? checkpointWeights(Checkpoint.open(join(dir, 'weights.safetensors'))), 'float32');
  const { patches } = await runGraphOnce(graph, {
    tokens: new ort.Tensor('float32', tokens, [1, grid.count, config.inChannels]),
    rope_cos: new ort.Tensor('float32', rope.cos, [rope.rows, rope.dim]),
    rope_sin: new ort.Tensor('float32', rope.sin, [rope.rows, rope.dim]),
  }, provider);
  const { fg, alpha } = unpatchify(patches, layout);
  const extraOf = (name: string): Float32Array => need(extra, name, extraFile).data;
  return {
    kind: 'transp_vae',
    dir,
    comparisons: [
      compareFloat('tokens_in', tokens, extraOf('tokens_in')),
      compareFloat('rope_cos', rope.cos, extraOf('rope_cos')),
      compareFloat('rope_sin', rope.sin, extraOf('rope_sin')),
      compareFloat('tokens_out', patches, extraOf('tokens_out')),
      compareFloat('decoded_fg', fg, need(outputs, 'decoded_fg', outputsFile).data),
      compareFloat('decoded_alpha', alpha, need(outputs, 'decoded_alpha', outputsFile).data),
      compareLevels('rgba', patchesToRgba(patches, layout), readUint8(outputsFile, 'rgba')),
    ],
  };
}
