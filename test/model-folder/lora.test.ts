/**
 * LoRA fusion rules beyond the golden case (test/fixtures/golden/transformer_lora, checked in
 * test/golden): the kohya single-block linear1 split by the model's own sizes, per-module alpha/r
 * with mixed ranks, BFL's final-layer (shift, scale) order, and every refusal. Expected weights
 * are computed here in float64 straight from W + s * (B @ A).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fusedWeights, loadLoras, parseLoraArg } from '../../gpu-server/model-folder/lora.ts';
import { checkpointWeights } from '../../gpu-server/onnx/graph.ts';
import { floatToBf16 } from '../../gpu-server/onnx/half.ts';
import { Checkpoint, writeSafetensors, type TensorToWrite } from '../../gpu-server/onnx/safetensors.ts';
import { GOLDEN } from '../pipeline/golden-data.ts';

const root = mkdtempSync(join(tmpdir(), 'lora-'));
after(() => rmSync(root, { recursive: true, force: true }));
const base = checkpointWeights(Checkpoint.open(join(GOLDEN, 'transformer', 'weights.safetensors')));
const DIM = 32;
const MLP = 128;

let seed = 7;
const random = (n: number) => Float32Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.2);
const f32 = (shape: number[], data = random(shape.reduce((a, b) => a * b, 1))): TensorToWrite => ({ dtype: 'F32', shape, data });
let files = 0;
function write(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): string {
  const file = join(root, `l${files++}.safetensors`);
  writeSafetensors(file, tensors, metadata);
  return file;
}
/** W + s * (up[rows] @ down) in float64. */
function expectedFused(key: string, up: Float32Array, down: Float32Array, rank: number, rowStart: number, rows: number, s: number): Float64Array {
  const w = Float64Array.from(base.read(key));
  const n = down.length / rank;
  for (let o = 0; o < rows; o++) for (let i = 0; i < n; i++) {
    let d = 0;
    for (let k = 0; k < rank; k++) d += up[(rowStart + o) * rank + k] * down[k * n + i];
    w[o * n + i] += s * d;
  }
  return w;
}
function assertClose(actual: Float32Array, expected: Float64Array, what: string) {
  let max = 0;
  let ref = 0;
  for (let i = 0; i < expected.length; i++) {
    max = Math.max(max, Math.abs(actual[i] - expected[i]));
    ref = Math.max(ref, Math.abs(expected[i]));
  }
  assert.ok(max / ref < 1e-6, `${what}: max abs ${max} vs max ${ref}`);
}

test("kohya's single-block linear1 splits its up-projection [D, D, D, mlp] with the shared down-projection, by the model's own sizes", () => {
  const rank = 4;
  const down = f32([rank, DIM]);
  const up = f32([3 * DIM + MLP, rank]);
  const file = write({ 'lora_unet_single_blocks_1_linear1.lora_down.weight': down, 'lora_unet_single_blocks_1_linear1.lora_up.weight': up, 'lora_unet_single_blocks_1_linear1.alpha': f32([], Float32Array.of(2)) });
  const { loras, record } = loadLoras([{ file, scale: 0.5 }], base);
  assert.deepEqual(record.map((r) => [r.format, r.modules, r.scale, r.order]), [['kohya_flux', 4, 0.5, 1]]);
  const fused = fusedWeights(base, loras);
  const s = 0.5 * (2 / rank);
  const parts: Array<[string, number, number]> = [['attn.to_q', 0, DIM], ['attn.to_k', DIM, DIM], ['attn.to_v', 2 * DIM, DIM], ['proj_mlp', 3 * DIM, MLP]];
  for (const [name, start, rows] of parts) {
    const key = `single_transformer_blocks.1.${name}.weight`;
    assertClose(fused.read(key), expectedFused(key, up.data as Float32Array, down.data as Float32Array, rank, start, rows, s), key);
  }
  // Everything else is the base, untouched (biases, other blocks).
  assert.deepEqual(fused.read('single_transformer_blocks.1.attn.to_q.bias'), base.read('single_transformer_blocks.1.attn.to_q.bias'));
  assert.deepEqual(fused.read('single_transformer_blocks.0.attn.to_q.weight'), base.read('single_transformer_blocks.0.attn.to_q.weight'));
});

test('mixed ranks in one diffusers file: each module scales by its own alpha/r (1 without alpha), not by the first key\'s rank', () => {
  const a4 = f32([4, DIM]);
  const b4 = f32([DIM, 4]);
  const a8 = f32([8, DIM]);
  const b8 = f32([DIM, 8]);
  const file = write({
    'transformer.transformer_blocks.0.attn.to_q.lora_A.weight': a4,
    'transformer.transformer_blocks.0.attn.to_q.lora_B.weight': b4,
    'transformer.transformer_blocks.1.attn.to_k.lora_A.weight': a8,
    'transformer.transformer_blocks.1.attn.to_k.lora_B.weight': b8,
    // This module has its own alpha: scaling alpha / r = 2 / 8.
    'transformer.transformer_blocks.1.attn.to_k.alpha': f32([], Float32Array.of(2)),
  });
  const fused = fusedWeights(base, loadLoras([{ file, scale: 1.5 }], base).loras);
  const q = 'transformer_blocks.0.attn.to_q.weight';
  const k = 'transformer_blocks.1.attn.to_k.weight';
  assertClose(fused.read(q), expectedFused(q, b4.data as Float32Array, a4.data as Float32Array, 4, 0, DIM, 1.5), q);
  assertClose(fused.read(k), expectedFused(k, b8.data as Float32Array, a8.data as Float32Array, 8, 0, DIM, 1.5 * (2 / 8)), k);
});

test('bf16 kohya qkv with a non-power-of-two alpha/r is scaled in float32; final_layer adaLN swaps (shift, scale) into norm_out order', () => {
  const rank = 4;
  const bf = (t: TensorToWrite): TensorToWrite => ({ dtype: 'BF16', shape: t.shape, data: Uint16Array.from(t.data as Float32Array, floatToBf16) });
  const down = f32([rank, DIM]);
  const up = f32([3 * DIM, rank]);
  const mdown = f32([rank, DIM]);
  const mup = f32([2 * DIM, rank]);
  const file = write({
    'lora_unet_double_blocks_0_txt_attn_qkv.lora_down.weight': bf(down),
    'lora_unet_double_blocks_0_txt_attn_qkv.lora_up.weight': bf(up),
    'lora_unet_double_blocks_0_txt_attn_qkv.alpha': bf(f32([], Float32Array.of(3))),
    'lora_unet_final_layer_adaLN_modulation_1.lora_down.weight': mdown,
    'lora_unet_final_layer_adaLN_modulation_1.lora_up.weight': mup,
    'lora_unet_final_layer_adaLN_modulation_1.alpha': f32([], Float32Array.of(4)),
  });
  const fused = fusedWeights(base, loadLoras([{ file, scale: 1 }], base).loras);
  const ckpt = Checkpoint.open(file);
  const upR = ckpt.readFloat32('lora_unet_double_blocks_0_txt_attn_qkv.lora_up.weight');
  const downR = ckpt.readFloat32('lora_unet_double_blocks_0_txt_attn_qkv.lora_down.weight');
  const v = 'transformer_blocks.0.attn.add_v_proj.weight';
  assertClose(fused.read(v), expectedFused(v, upR, downR, rank, 2 * DIM, DIM, 0.75), v);
  const swapped = Float32Array.from([...(mup.data as Float32Array).subarray(DIM * rank), ...(mup.data as Float32Array).subarray(0, DIM * rank)]);
  const n = 'norm_out.linear.weight';
  assertClose(fused.read(n), expectedFused(n, swapped, mdown.data as Float32Array, rank, 0, 2 * DIM, 1), n);
});

test('LoRAs that do not fit are refused, naming the problem and keys', () => {
  const refuse = (tensors: Record<string, TensorToWrite>, re: RegExp, metadata?: Record<string, string>) =>
    assert.throws(() => loadLoras([{ file: write(tensors, metadata), scale: 1 }], base), re);
  // Keys that match no module of this transformer.
  refuse({ 'transformer.transformer_blocks.7.attn.to_q.lora_A.weight': f32([4, DIM]), 'transformer.transformer_blocks.7.attn.to_q.lora_B.weight': f32([DIM, 4]) }, /1 of 1 modules match no Linear of this transformer: transformer\.transformer_blocks\.7\.attn\.to_q.*another model/);
  refuse({ 'lora_unet_double_blocks_0_img_attn_zzz.lora_down.weight': f32([4, DIM]), 'lora_unet_double_blocks_0_img_attn_zzz.lora_up.weight': f32([DIM, 4]) }, /match no Linear.*lora_unet_double_blocks_0_img_attn_zzz/);
  // Shape and rank mismatches.
  refuse({ 'transformer.transformer_blocks.0.attn.to_q.lora_A.weight': f32([4, 48]), 'transformer.transformer_blocks.0.attn.to_q.lora_B.weight': f32([DIM, 4]) }, /takes inputs of 48 but transformer_blocks\.0\.attn\.to_q\.weight has 32/);
  refuse({ 'transformer.transformer_blocks.0.attn.to_q.lora_A.weight': f32([4, DIM]), 'transformer.transformer_blocks.0.attn.to_q.lora_B.weight': f32([DIM, 8]) }, /up-projection has rank 8 but the down-projection 4/);
  refuse({ 'lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight': f32([4, DIM]), 'lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight': f32([3 * 3072, 4]) }, /gives 9216 outputs but .*to_q\.weight \+ .*= 96/);
  refuse({ 'transformer.transformer_blocks.0.attn.to_q.lora_A.weight': f32([4, DIM]) }, /has no up-projection/);
  refuse({ 'transformer.transformer_blocks.0.attn.to_q.lora_A.weight': f32([4, DIM]), 'transformer.transformer_blocks.0.attn.to_q.lora_B.weight': f32([DIM, 4]), 'transformer.transformer_blocks.0.attn.to_q.lora_B.bias': f32([DIM]) }, /lora_B\.bias is a LoRA bias/);
  // Other formats, named.
  refuse({ 'lora_unet_single_blocks_0_linear1.lokr_w1': f32([4, 4]), 'lora_unet_single_blocks_0_linear1.lokr_w2': f32([4, 4]) }, /is a LoKr \(LyCORIS\) file; keys: lora_unet_single_blocks_0_linear1\.lokr_w1/);
  refuse({ 'x.hada_w1_a': f32([4, 4]) }, /LoHa/);
  refuse({ 'lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight': f32([4, DIM]), 'lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight': f32([DIM, 4]) }, /a LoRA for a UNet model \(SD 1\.x\/2\.x\/SDXL\), not FLUX/);
  refuse({ 'lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight': f32([4, DIM]) }, /text-encoder keys/);
  refuse({ 'model.weight': f32([4, 4]) }, /not a LoRA format this converter reads; keys: model\.weight/);
  refuse({ 'transformer.transformer_blocks.0.attn.to_q.lora_A.weight': f32([4, DIM]), 'transformer.transformer_blocks.0.attn.to_q.lora_B.weight': f32([DIM, 4]) }, /DoRA/, { lora_adapter_metadata: JSON.stringify({ use_dora: true }) });
  assert.throws(() => loadLoras([{ file: join(root, 'x.pt'), scale: 1 }], base), /read as \.safetensors/);
  assert.throws(() => loadLoras([{ file: join(root, 'absent.safetensors'), scale: 1 }], base), /absent\.safetensors/);
});

test('--lora file[:scale]: default 1, a scale that is not a finite number refused', () => {
  assert.deepEqual(parseLoraArg('style.safetensors'), { file: 'style.safetensors', scale: 1 });
  assert.deepEqual(parseLoraArg('dir/style.safetensors:0.7'), { file: 'dir/style.safetensors', scale: 0.7 });
  assert.deepEqual(parseLoraArg('C:\\loras\\a.safetensors'), { file: 'C:\\loras\\a.safetensors', scale: 1 });
  assert.deepEqual(parseLoraArg('a.safetensors:-0.5'), { file: 'a.safetensors', scale: -0.5 });
  for (const bad of ['a.safetensors:abc', 'a.safetensors:NaN', 'a.safetensors:Infinity', 'a.safetensors:']) {
    assert.throws(() => parseLoraArg(bad), /is not a finite number/, bad);
  }
});
