/** Golden check of the transformer graph on a `transformer` case (packed tokens in, noise_pred inside the boxes out). */
import { join } from 'node:path';
import { buildTransformer, parseTransformerConfig } from '../models/transformer.ts';
import { checkpointWeights } from '../onnx/graph.ts';
import { writeModel } from '../onnx/onnx-writer.ts';
import { Checkpoint } from '../onnx/safetensors.ts';
import { openSession, ort } from '../onnx/session.ts';
import { transformerTokens, validateLayout } from '../pipeline/layout-tokens.ts';
import { gatherTokens, scatterTokens } from '../pipeline/packing.ts';
import { ropeTables } from '../pipeline/rope.ts';
import { caseLayout, need, readCase, readFloats, readJson, withScratch } from './case.ts';
import { compareFloat, type Comparison, type GoldenReport } from './compare.ts';

export async function check(dir: string): Promise<GoldenReport> {
  const c = readCase(dir);
  const layout = caseLayout(c, join(dir, 'case.json'));
  validateLayout(layout);
  const config = parseTransformerConfig(readJson(join(dir, 'config.json')), join(dir, 'config.json'));
  const inputsFile = join(dir, 'inputs.safetensors');
  const outputsFile = join(dir, 'outputs.safetensors');
  const inputs = readFloats(inputsFile);
  const outputs = readFloats(outputsFile);

  const grid = transformerTokens(layout);
  const latents = need(inputs, 'latents', inputsFile);
  const context = need(inputs, 'encoder_hidden_states', inputsFile);
  const pooled = need(inputs, 'pooled_projections', inputsFile);
  const textTokens = context.shape[1];
  const rope = ropeTables(grid.ids, config.axesDimsRope, textTokens);
  const comparisons: Comparison[] = [
    compareFloat('img_ids', Float32Array.from(grid.ids), need(inputs, 'img_ids', inputsFile).data, 0),
    compareFloat('rope_cos', rope.cos, need(outputs, 'rope_cos', outputsFile).data),
    compareFloat('rope_sin', rope.sin, need(outputs, 'rope_sin', outputsFile).data),
  ];

  const graph = buildTransformer(config, checkpointWeights(Checkpoint.open(join(dir, 'weights.safetensors'))), 'float32', { intermediates: true });
  const result = await withScratch(async (scratch) => {
    const path = join(scratch, 'transformer.onnx');
    writeModel(graph, path);
    const { session } = await openSession(path, 'cpu');
    try {
      const n = grid.count;
      const feeds: Record<string, ort.Tensor> = {
        hidden_states: new ort.Tensor('float32', gatherTokens(latents.data, grid), [1, n, 64]),
        token_layer: new ort.Tensor('int64', BigInt64Array.from(grid.layerOf, (v) => BigInt(v)), [n]),
        encoder_hidden_states: new ort.Tensor('float32', context.data, context.shape),
        pooled_projections: new ort.Tensor('float32', pooled.data, pooled.shape),
        timestep: new ort.Tensor('float32', need(inputs, 'timestep', inputsFile).data, [1]),
        rope_cos: new ort.Tensor('float32', rope.cos, [rope.rows, rope.dim]),
        rope_sin: new ort.Tensor('float32', rope.sin, [rope.rows, rope.dim]),
      };
      if (config.guidanceEmbeds) feeds.guidance = new ort.Tensor('float32', need(inputs, 'guidance', inputsFile).data, [1]);
      return await session.run(feeds);
    } finally {
      await session.release();
    }
  });

  comparisons.push(compareFloat('temb', result.temb.data as Float32Array, need(outputs, 'temb', outputsFile).data));
  comparisons.push(compareFloat('packed_hidden_after_crop', result.packed_hidden_after_crop.data as Float32Array, need(outputs, 'packed_hidden_after_crop', outputsFile).data));

  // noise_pred is compared inside the boxes only: outside, the reference holds proj_out(norm_out(0)).
  const full = new Float32Array(latents.data.length);
  scatterTokens(result.noise_pred.data as Float32Array, grid, full);
  const mask = scatterTokens(new Float32Array(grid.count * 64).fill(1), grid, new Float32Array(latents.data.length));
  comparisons.push(compareFloat('noise_pred (inside boxes)', full, need(outputs, 'noise_pred', outputsFile).data, undefined, mask));
  return { kind: 'transformer', dir, comparisons };
}
