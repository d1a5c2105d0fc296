/**
 * Golden check of CLD's weight recipe on a `cld_lora` case (infer.py `initialize_pipeline`): the
 * `base` case's models with the LoRAs `loras` lists fused in order into the part each names (`into`:
 * transformer or adapter, at `fused_scale`, 1 for the "layer" LoRA CLD keeps unfused: equal within
 * float32), `layer_pe` replaced from its PyTorch file (read by the restricted unpickler) and shared
 * by the adapter; then the base case's inputs through adapter and transformer.
 */
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { readLayerPe } from '../model-folder/convert.ts';
import { fusedWeights, loadLoras } from '../model-folder/lora.ts';
import { innerDim } from '../models/transformer.ts';
import type { WeightSource } from '../onnx/graph.ts';
import type { Provider } from '../onnx/session.ts';
import { GoldenError, readCase } from './case.ts';
import { checkCld, cldModels } from './cld_adapter-case.ts';
import type { GoldenReport } from './compare.ts';

const lorasSchema = z.record(z.object({ into: z.enum(['transformer', 'adapter']), fused_scale: z.number().finite().optional() }));
const caseSchema = z.object({ base: z.string().min(1), loras: lorasSchema, layer_pe: z.string().min(1) });

/** `base` with `key` served from another tensor. */
function replaced(base: WeightSource, key: string, tensor: { shape: number[]; data: () => Float32Array; source: string }): WeightSource {
  return {
    describe: `${base.describe} + ${key} of ${tensor.source}`,
    shape: (k) => (k === key ? tensor.shape : base.shape(k)),
    read: (k) => (k === key ? tensor.data() : base.read(k)),
  };
}

export function check(dir: string, provider: Provider = 'cpu'): Promise<GoldenReport> {
  const caseFile = join(dir, 'case.json');
  const parsed = caseSchema.safeParse(readCase(dir));
  if (!parsed.success) throw new GoldenError(`${caseFile}: a cld_lora case needs "base", "loras" ({ file: { into, fused_scale } }) and "layer_pe" (${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message})`);
  const c = parsed.data;
  const baseDir = resolve(dir, c.base);
  const models = cldModels(baseDir);
  // "layer_pe" names the file first ("decouple_LoRA/layer_pe.pth (...)").
  const peFile = join(dir, c.layer_pe.split(/\s/)[0]);
  const pe = readLayerPe(peFile, innerDim(models.transformer.config));
  const fuse = (into: 'transformer' | 'adapter', base: WeightSource) => {
    const specs = Object.entries(c.loras).filter(([, l]) => l.into === into).map(([file, l]) => ({ file: join(dir, file), scale: l.fused_scale ?? 1 }));
    return fusedWeights(base, loadLoras(specs, base).loras);
  };
  const transformer = { config: { ...models.transformer.config, maxLayerNum: pe.shape[1] }, weights: fuse('transformer', replaced(models.transformer.weights, 'layer_pe', pe)) };
  const adapter = { config: models.adapter.config, weights: fuse('adapter', models.adapter.weights) };
  return checkCld('cld_lora', dir, baseDir, { transformer, adapter }, join(dir, 'outputs.safetensors'), undefined, provider);
}
