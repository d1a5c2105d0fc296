#!/usr/bin/env node
// Minimal reproduction for an onnxruntime report (docs/webgpu.md, "Upstream report"): the WebGPU
// provider's com.microsoft.MultiHeadAttention against the CPU provider, one node, float32, no
// mask, for 31 and 32+ query tokens. onnxruntime-node and onnx-proto only; no project code.
//
//   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json node scripts/webgpu-mha-repro.mjs
//
// onnxruntime-node 1.30.0 on SwiftShader (subgroup size 4) prints 1e-2 to 3e-2 from 32 tokens on
// (up to 2e-1 with other data) and ~4e-7 at 16 and 31. Below 32 tokens the split-reduce path runs;
// from 32 on, FlashAttentionProgram's subgroup branch, which steps keys by min(subgroup size,
// max_k_step) but always scores keys 0-7 of a step (0-15 above 8 lanes): with 4 lanes it shuffles
// from lanes 4-7 that do not exist and scores keys 4-7 of each step twice.
import ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
const HEADS = 2;
const HEAD_SIZE = 16;
const W = HEADS * HEAD_SIZE;

function model(tokens) {
  const io = (name) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimValue: 1 }, { dimValue: tokens }, { dimValue: W }] } } } });
  return onnx.ModelProto.encode({
    irVersion: 9,
    opsetImport: [{ domain: '', version: 20 }, { domain: 'com.microsoft', version: 1 }],
    graph: {
      name: 'mha',
      node: [{ opType: 'MultiHeadAttention', domain: 'com.microsoft', input: ['q', 'k', 'v'], output: ['out'], attribute: [{ name: 'num_heads', type: onnx.AttributeProto.AttributeType.INT, i: HEADS }] }],
      input: [io('q'), io('k'), io('v')],
      output: [io('out')],
    },
  }).finish();
}

for (const tokens of [16, 31, 32, 33, 64, 77]) {
  const data = (seed) => Float32Array.from({ length: tokens * W }, (_, i) => Math.sin(i * 0.37 + seed) * 2);
  const feeds = { q: new ort.Tensor('float32', data(0), [1, tokens, W]), k: new ort.Tensor('float32', data(1), [1, tokens, W]), v: new ort.Tensor('float32', data(2), [1, tokens, W]) };
  const out = {};
  for (const ep of ['cpu', 'webgpu']) {
    const session = await ort.InferenceSession.create(model(tokens), { executionProviders: [ep] });
    out[ep] = (await session.run(feeds)).out.data;
    await session.release();
  }
  let diff = 0;
  let ref = 0;
  for (let i = 0; i < out.cpu.length; i++) {
    diff = Math.max(diff, Math.abs(out.cpu[i] - out.webgpu[i]));
    ref = Math.max(ref, Math.abs(out.cpu[i]));
  }
  console.log(`${String(tokens).padStart(3)} tokens: webgpu vs cpu, max |diff| / max |cpu| = ${(diff / ref).toExponential(2)}`);
}
