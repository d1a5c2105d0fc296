/**
 * What precision an ONNX graph really holds, read from the file the writer produces (not
 * inferred from its outputs: onnxruntime's CPU provider computes many fp16 ops in fp32, so an
 * fp16 graph's outputs say little about its tensors).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import type { GraphBuilder } from '../../gpu-server/onnx/graph.ts';
import { writeModel } from '../../gpu-server/onnx/onnx-writer.ts';

const FLOAT = 1, UINT8 = 2, FLOAT16 = 10;
/** Small float32 constants an fp16 graph keeps on purpose: epsilons, scalars, the timestep sinusoid's 128 frequencies. */
const SMALL_CONSTANT = 128;

export interface GraphPrecision {
  fp16Weights: number;
  /** float32 initializers with more than SMALL_CONSTANT values (weights left in fp32). */
  fp32Weights: string[];
  uint8Weights: number;
  floatIO: Record<string, 'float16' | 'float32'>;
  ops: Record<string, number>;
}

export function precisionOfFile(onnxPath: string): GraphPrecision {
  const m = onnxProto.onnx.ModelProto.decode(readFileSync(onnxPath));
  const g = m.graph!;
  const size = (t: { dims?: (number | { toNumber(): number })[] | null }) => (t.dims ?? []).reduce((a: number, d) => a * Number(d), 1);
  const floatIO: GraphPrecision['floatIO'] = {};
  for (const v of [...(g.input ?? []), ...(g.output ?? [])]) {
    const t = v.type?.tensorType?.elemType;
    if (t === FLOAT || t === FLOAT16) floatIO[v.name!] = t === FLOAT16 ? 'float16' : 'float32';
  }
  const ops: Record<string, number> = {};
  for (const n of g.node ?? []) ops[n.opType!] = (ops[n.opType!] ?? 0) + 1;
  const inits = g.initializer ?? [];
  return {
    fp16Weights: inits.filter((t) => t.dataType === FLOAT16).length,
    fp32Weights: inits.filter((t) => t.dataType === FLOAT && size(t) > SMALL_CONSTANT).map((t) => `${t.name} [${t.dims}]`),
    uint8Weights: inits.filter((t) => t.dataType === UINT8).length,
    floatIO,
    ops,
  };
}

export function precisionOf(graph: GraphBuilder): GraphPrecision {
  const dir = mkdtempSync(join(tmpdir(), 'art-precision-'));
  try {
    const path = join(dir, 'g.onnx');
    writeModel(graph, path);
    return precisionOfFile(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every weight in fp16 and every float input and output fp16, except those named (the float32 timestep and guidance). */
export function assertFp16(p: GraphPrecision, what: string, float32IO: readonly string[] = []): void {
  assert.ok(p.fp16Weights > 0, `${what}: no fp16 weights`);
  assert.deepEqual(p.fp32Weights, [], `${what}: weights left in fp32`);
  for (const [name, type] of Object.entries(p.floatIO)) assert.equal(type, float32IO.includes(name) ? 'float32' : 'float16', `${what}: ${name} is ${type}`);
}
