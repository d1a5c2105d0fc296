/**
 * `npm run convert -- --check` at full size: on FLUX.1-dev's real folder (test/fixtures/flux-dev)
 * with stand-in shards (the real index's names and sharding, full-size shapes, data as holes: no
 * disk used) and on an ART_v1.0-layout folder; a broken folder is refused with its first problem.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { checkConversion, planConversion } from '../../gpu-server/model-folder/convert.ts';
import { graphBuilders } from '../../gpu-server/model-folder/graphs.ts';
import { ModelFolderError } from '../../gpu-server/model-folder/manifest.ts';
import { STAND_IN_ADAPTER_BLOCKS, t5Shapes, transformerShapes, writeStandInCld, writeStandInFolders, writeStandInShard } from './flux-dev-stand-in.ts';

let root: string;
let dirs: { flux: string; art: string; layerPe: string };
before(() => {
  root = mkdtempSync(join(tmpdir(), 'art-check-'));
  dirs = writeStandInFolders(root);
});
after(() => rmSync(root, { recursive: true, force: true }));

const TRANSP = () => join(dirs.art, 'transp_vae');

test('stand-in shards keep the real layout at full size and take no disk', () => {
  assert.equal(Object.keys(transformerShapes()).length, 1160);
  assert.equal(Object.keys(t5Shapes()).length, 219);
  const shards = readdirSync(join(dirs.flux, 'transformer')).filter((f) => f.endsWith('.safetensors'));
  assert.equal(shards.length, 3);
  let size = 0;
  let blocks = 0;
  for (const s of shards) {
    const st = statSync(join(dirs.flux, 'transformer', s));
    size += st.size;
    blocks += st.blocks * 512;
  }
  assert.ok(size > 23e9, `${size} bytes`);
  assert.ok(blocks < 64 << 20, `${blocks} bytes on disk`);
});

test('--check passes on the real FLUX.1-dev folder (ART built from it with --layer-pe and --transp-vae) and on the ART_v1.0 layout', () => {
  const fromBase = checkConversion({ flux: dirs.flux, transformerBase: dirs.flux, layerPe: dirs.layerPe, transpVae: TRANSP() }, 'fp16');
  assert.match(fromBase[0], /^plan: FLUX\.1-dev \+ ART layer_pe \(fp16\)/);
  assert.ok(fromBase.some((l) => /transformer \(FLUX\.1-dev base \+ layer_pe\): 1161 tensors, 11\.90\d B parameters \(BF16, F32\)/.test(l)), fromBase.join('\n'));
  assert.ok(fromBase.some((l) => /T5-XXL encoder: 219 tensors, 4\.762 B parameters/.test(l)), fromBase.join('\n'));
  for (const g of ['transformer', 'vae_encoder', 'vae_decoder', 'transparent_decoder', 'clip_text', 't5_encoder']) assert.ok(fromBase.some((l) => l.startsWith(`  graph ${g}: `)), g);
  const fromArt = checkConversion({ art: dirs.art, flux: dirs.flux }, 'int4', root);
  assert.match(fromArt[0], /^plan: ART_v1\.0 \+ FLUX\.1-dev \(int4\)/);
  assert.ok(fromArt.some((l) => /^ {2}disk: .* GiB free at /.test(l)));
  // Nothing was written beside the inputs.
  assert.deepEqual(readdirSync(root).sort(), ['ART_v1.0', 'FLUX.1-dev', 'layer_pe.safetensors']);
});

test('npm run convert -- --check prints the plan and writes nothing', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'gpu-server/model-folder/convert.ts', '--', '--check', '--art', dirs.art, '--flux', dirs.flux], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /graph t5_encoder: \d+ nodes/);
  assert.match(r.stdout, /check passed in [\d.]+ s; nothing was written/);
});

test('--check names the first problem of a broken folder', () => {
  const shardDir = join(dirs.flux, 'transformer');
  const shard = readdirSync(shardDir).find((f) => f.endsWith('00002-of-00003.safetensors')) as string;
  const check = () => checkConversion({ flux: dirs.flux, transformerBase: dirs.flux, layerPe: dirs.layerPe, transpVae: TRANSP() }, 'fp16');
  const original = Object.fromEntries(Object.entries(transformerShapes()).filter(([, s]) => s)) as Record<string, number[]>;
  const inShard = (JSON.parse(readFileSyncText(join(shardDir, 'diffusion_pytorch_model.safetensors.index.json'))) as { weight_map: Record<string, string> }).weight_map;
  const names = Object.keys(inShard).filter((n) => inShard[n] === shard);
  const part = Object.fromEntries(names.map((n) => [n, original[n]]));
  try {
    // A tensor the index lists, missing from its shard.
    const [dropped, ...rest] = names;
    writeStandInShard(join(shardDir, shard), Object.fromEntries(rest.map((n) => [n, original[n]])));
    assert.throws(check, (e: unknown) => e instanceof ModelFolderError && e.message.includes(`tensor "${dropped}" is listed for ${shard} but that shard does not hold it`));
    // A tensor at the wrong size: named with both shapes by the graph that uses it.
    const victim = names.find((n) => n.endsWith('.weight') && original[n].length === 2) as string;
    writeStandInShard(join(shardDir, shard), { ...part, [victim]: [original[victim][0], original[victim][1] + 1] });
    assert.throws(check, (e: unknown) => e instanceof ModelFolderError && /^graph transformer: /.test(e.message) && e.message.includes(victim));
  } finally {
    writeStandInShard(join(shardDir, shard), part);
  }
  assert.ok(check().length > 0);
  // A config that does not fit: T5 narrower than the transformer's text width.
  const t5Config = join(dirs.flux, 'text_encoder_2', 'config.json');
  const text = readFileSyncText(t5Config);
  writeFileSync(t5Config, text.replace('"d_model": 4096', '"d_model": 2048'));
  try {
    assert.throws(check, /do not fit together: the transformer takes text of width 4096 but T5 gives 2048/);
  } finally {
    writeFileSync(t5Config, text);
  }
  // /proc has no free space: the 64.5 GiB of fp32 weights (17.3 B parameters) do not fit there.
  assert.throws(() => checkConversion({ art: dirs.art, flux: dirs.flux }, 'fp32', '/proc/nowhere'), /not enough disk space for \/proc\/nowhere: need about 64\.5 GiB/);
});

test('--check plans both jobs at full size from the decomposition downloads: one transformer graph taking job and the adapter\'s samples, the adapter graph, in seconds', () => {
  const cldRoot = mkdtempSync(join(tmpdir(), 'art-check-cld-'));
  try {
    const cld = writeStandInCld(cldRoot);
    const sources = { flux: dirs.flux, transformerBase: dirs.flux, layerPe: dirs.layerPe, transpVae: TRANSP(), adapter: cld.adapter, adapterLora: cld.adapterLora, layerLora: cld.layerLora, decomposeLayerPe: cld.layerPe };
    const t0 = performance.now();
    const lines = checkConversion(sources, 'fp16');
    const seconds = (performance.now() - t0) / 1000;
    const text = lines.join('\n');
    assert.match(lines[0], /^plan: FLUX\.1-dev \+ ART layer_pe \+ CLD adapter \+ LoRA pytorch_lora_weights\.safetensors@1 \(decompose\) \(fp16\)/);
    assert.match(text, /jobs: generate, decompose \(one transformer graph for both/);
    // CLD's targets: 8 Linears in each of 19 double blocks, 4 in each of 38 single blocks; the adapter's 8 in each of its blocks.
    assert.match(text, /LoRA 1: pytorch_lora_weights\.safetensors \(diffusers_peft\) into the transformer, scale 1, 304 weights changed, applied in-graph for decompose only/);
    assert.match(text, new RegExp(`LoRA 2: pytorch_lora_weights\\.safetensors \\(diffusers_peft\\) into the adapter, scale 1, ${8 * STAND_IN_ADAPTER_BLOCKS} weights changed, fused`));
    assert.match(text, new RegExp(`adapter \\(FLUX\\.1-dev-Controlnet-Inpainting-Alpha, ${STAND_IN_ADAPTER_BLOCKS} \\+ 0 blocks\\)`));
    for (const g of ['transformer', 'adapter']) assert.match(text, new RegExp(`graph ${g}: \\d+ nodes`));
    assert.ok(seconds < 120, `${seconds} s`);
    // The structure the bridge will open: the transformer takes job and one sample per adapter block.
    const plan = planConversion(sources, 'fp16');
    const graph = graphBuilders(plan.components, 'fp16').transformer!();
    const inputs = graph.inputs.map((i) => i.name);
    assert.ok(inputs.includes('job'));
    assert.deepEqual(inputs.filter((n) => n.startsWith('adapter_')), Array.from({ length: STAND_IN_ADAPTER_BLOCKS }, (_, j) => `adapter_block_sample_${j}`));
    // Both layer_pe tables and every LoRA module's A and B beside the shared weights, nothing fused into them.
    assert.ok(graph.initializers.has('decompose.layer_pe') && graph.initializers.has('layer_pe'));
    assert.equal([...graph.initializers.keys()].filter((k) => k.includes('.lora_branch.')).length, 2 * 304);
  } finally {
    rmSync(cldRoot, { recursive: true, force: true });
  }
});

function readFileSyncText(file: string): string {
  return readFileSync(file, 'utf8');
}
