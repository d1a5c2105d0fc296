/**
 * Serializes a GraphBuilder to an `.onnx` file (protobuf via `onnx-proto`) with its weights as
 * external data in a separate file. Weights are loaded and written one at a time, so a 24 GB model
 * never sits in memory; the protobuf itself holds only names, shapes and offsets.
 */
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import onnxProto from 'onnx-proto';
import { type Attr, type ElemType, type GraphBuilder, type Initializer, type IoSpec, ONNX_TYPE, type TensorArray } from './graph.ts';

const { onnx } = onnxProto;

/** Opsets the graphs are written for (LayerNormalization 17, Gelu with approximate 20). */
export const OPSET = 20;
export const IR_VERSION = 9;
export const MS_DOMAIN = 'com.microsoft';

const BYTES: Record<ElemType, number> = { float32: 4, float16: 2, int64: 8, int32: 4, uint8: 1, int8: 1, bool: 1 };
/** Large tensors start on page boundaries so onnxruntime can memory-map them. */
const PAGE = 4096;

export const byteSize = (init: Pick<Initializer, 'type' | 'dims'>): number => init.dims.reduce((a, b) => a * b, 1) * BYTES[init.type];

export interface Placement {
  init: Initializer;
  offset: number;
  length: number;
}

/** Where every external initializer goes in the data file. */
export function placeExternal(g: GraphBuilder): { placements: Placement[]; totalBytes: number } {
  const placements: Placement[] = [];
  let offset = 0;
  for (const init of g.initializers.values()) {
    if (init.inline) continue;
    const length = byteSize(init);
    if (length >= PAGE) offset = Math.ceil(offset / PAGE) * PAGE;
    placements.push({ init, offset, length });
    offset += length;
  }
  return { placements, totalBytes: offset };
}

function attribute(name: string, a: Attr): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.kind) {
    case 'int': return { name, type: T.INT, i: a.value };
    case 'ints': return { name, type: T.INTS, ints: a.value };
    case 'float': return { name, type: T.FLOAT, f: a.value };
    case 'floats': return { name, type: T.FLOATS, floats: a.value };
    case 'string': return { name, type: T.STRING, s: new TextEncoder().encode(a.value) };
  }
}

function valueInfo(io: IoSpec): onnxProto.onnx.IValueInfoProto {
  return {
    name: io.name,
    type: {
      tensorType: {
        elemType: ONNX_TYPE[io.type],
        shape: { dim: io.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function rawBytes(data: TensorArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** The model protobuf (no weight data for external initializers). */
export function buildModelProto(g: GraphBuilder, dataFile: string): Uint8Array {
  const { placements } = placeExternal(g);
  const external = new Map(placements.map((p) => [p.init.name, p]));
  const initializer: onnxProto.onnx.ITensorProto[] = [];
  for (const init of g.initializers.values()) {
    const base = { name: init.name, dims: init.dims, dataType: ONNX_TYPE[init.type] };
    const place = external.get(init.name);
    if (place) {
      initializer.push({
        ...base,
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: dataFile },
          { key: 'offset', value: String(place.offset) },
          { key: 'length', value: String(place.length) },
        ],
      });
    } else {
      initializer.push({ ...base, rawData: rawBytes(init.load()) });
    }
  }
  const model: onnxProto.onnx.IModelProto = {
    irVersion: IR_VERSION,
    producerName: 'art-for-figma',
    opsetImport: [{ domain: '', version: OPSET }, { domain: MS_DOMAIN, version: 1 }],
    graph: {
      name: g.name,
      node: g.nodes.map((n) => ({
        opType: n.opType,
        domain: n.domain,
        name: n.name,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs).map(([k, a]) => attribute(k, a)),
      })),
      initializer,
      input: g.inputs.map(valueInfo),
      output: g.outputs.map(valueInfo),
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

export interface WriteProgress {
  bytesWritten: number;
  totalBytes: number;
  tensor: string;
}

/**
 * Writes `<onnxPath>` and its external data `<onnxPath>.data` (same folder). Returns the names of
 * both files. The caller makes the pair appear atomically (write to a temp folder, rename).
 */
export function writeModel(g: GraphBuilder, onnxPath: string, onProgress?: (p: WriteProgress) => void): { onnx: string; data: string; dataBytes: number } {
  const dataPath = `${onnxPath}.data`;
  const { placements, totalBytes } = placeExternal(g);
  const fd = openSync(dataPath, 'w');
  try {
    let written = 0;
    for (const p of placements) {
      const data = p.init.load();
      const bytes = rawBytes(data);
      if (bytes.byteLength !== p.length) {
        throw new Error(`${g.name}: initializer "${p.init.name}" produced ${bytes.byteLength} bytes, expected ${p.length} for ${p.init.type}[${p.init.dims}]`);
      }
      let pos = 0;
      while (pos < bytes.byteLength) pos += writeSync(fd, bytes, pos, bytes.byteLength - pos, p.offset + pos);
      written += p.length;
      onProgress?.({ bytesWritten: written, totalBytes, tensor: p.init.name });
    }
    if (placements.length === 0) writeSync(fd, new Uint8Array(0));
  } finally {
    closeSync(fd);
  }
  writeFileSync(onnxPath, buildModelProto(g, basename(dataPath)));
  return { onnx: onnxPath, data: dataPath, dataBytes: totalBytes };
}
