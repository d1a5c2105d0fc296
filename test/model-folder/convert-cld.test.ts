/**
 * `npm run convert` on the decomposition downloads as they come (synthetic-cld.ts: FLUX.1-dev,
 * the Inpainting-Alpha ControlNet folder, thuteam/CLD's ckpt tree holding the cld_lora golden
 * files): the folder it writes is held to the cld_lora golden through its own graphs, for both
 * jobs from one transformer graph, and for a folder that only decomposes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { checkCld, cldModels, type CldRun } from '../../gpu-server/golden/cld_adapter-case.ts';
import { convert, planConversion } from '../../gpu-server/model-folder/convert.ts';
import { loadManifest, parseManifest, type Manifest } from '../../gpu-server/model-folder/manifest.ts';
import { floatsOf, openSession, ort, type SessionFactory } from '../../gpu-server/onnx/session.ts';
import { createPipeline } from '../../gpu-server/pipeline/art-pipeline.ts';
import { CLD_ADAPTER, CLD_LORA, CLIP_WIDTH, cldSources, writeSyntheticCld, type CldDownloads } from './synthetic-cld.ts';

let root: string;
let cld: CldDownloads;
/** The downloads converted for both jobs, and for generation alone. */
let both: { dir: string; m: Manifest };
let genOnly: { dir: string; m: Manifest };
before(() => {
  root = mkdtempSync(join(tmpdir(), 'art-cld-'));
  cld = writeSyntheticCld(root);
  both = { dir: join(root, 'both'), m: convert({ ...cldSources(cld), out: join(root, 'both'), precision: 'fp32' }) };
  const generation = { ...cldSources(cld), adapter: undefined, adapterLora: undefined, layerLora: undefined, decomposeLayerPe: undefined };
  genOnly = { dir: join(root, 'generate-only'), m: convert({ ...generation, out: join(root, 'generate-only'), precision: 'fp32' }) };
});
after(() => rmSync(root, { recursive: true, force: true }));

/** A session of the folder's graph as a golden runner: the pooled vector padded to CLIP's width, `extra` fed too. */
async function runner(dir: string, m: Manifest, graph: 'transformer' | 'adapter', extra: Record<string, ort.Tensor> = {}) {
  const { session } = await openSession(join(dir, m.graphs[graph]!.file), 'cpu');
  const run: CldRun = async (feeds) => {
    const pooled = new Float32Array(CLIP_WIDTH);
    pooled.set(feeds.pooled_projections.data as Float32Array);
    const out = await session.run({ ...feeds, ...extra, pooled_projections: new ort.Tensor('float32', pooled, [1, CLIP_WIDTH]) });
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, floatsOf(t)]));
  };
  return { run, release: () => session.release() };
}

/** The folder's adapter and transformer through the cld_lora case; the report's worst comparison. */
async function goldenThroughFolder(dir: string, m: Manifest, transformerExtra: Record<string, ort.Tensor>) {
  const adapter = await runner(dir, m, 'adapter');
  const transformer = await runner(dir, m, 'transformer', transformerExtra);
  try {
    return await checkCld('cld_lora', CLD_LORA, CLD_ADAPTER, cldModels(CLD_ADAPTER), join(CLD_LORA, 'outputs.safetensors'), { adapter: adapter.run, transformer: transformer.run });
  } finally {
    await adapter.release();
    await transformer.release();
  }
}

const job = (i: number) => new ort.Tensor('int64', BigInt64Array.of(BigInt(i)), [1]);

test('both jobs from one folder: decompose (job 1) gives the cld_lora golden, generate (job 0) gives a generation-only conversion\'s noise_pred', async () => {
  const { dir: out, m } = both;
  assert.deepEqual(m.jobs, ['generate', 'decompose']);
  assert.ok(m.graphs.adapter);
  // One transformer graph: the folder holds one transformer weight file.
  assert.deepEqual(Object.keys(m.files).filter((f) => f.startsWith('transformer')).sort(), ['transformer.onnx', 'transformer.onnx.data']);
  assert.deepEqual(
    m.loras?.map((l) => [l.order, l.file, l.into, l.jobs ?? 'all']),
    [[1, 'pytorch_lora_weights.safetensors', 'transformer', 'all'], [2, 'pytorch_lora_weights.safetensors', 'transformer', ['decompose']], [3, 'pytorch_lora_weights.safetensors', 'adapter', 'all']],
  );
  assert.deepEqual(loadManifest(out).jobs, ['generate', 'decompose']);

  const report = await goldenThroughFolder(out, m, { job: job(1) });
  for (const c of report.comparisons) assert.ok(c.pass, `${c.name}: ${JSON.stringify(c)}`);
  const noise = report.comparisons.find((c) => c.name.startsWith('noise_pred'));
  assert.ok(noise && noise.maxRel < 1e-4, JSON.stringify(noise));

  // Generation from the same graph: job 0, zero residuals, against a folder converted for generation alone.
  const g = genOnly.m;
  assert.deepEqual(g.jobs, ['generate']);
  assert.equal(g.graphs.adapter, undefined);
  const inputs = await goldenFeeds();
  const shared = await runner(out, m, 'transformer', { job: job(0), ...zeroResiduals(m) });
  const plain = await runner(genOnly.dir, g, 'transformer');
  try {
    const a = (await shared.run(inputs)).noise_pred;
    const b = (await plain.run(inputs)).noise_pred;
    const scale = Math.max(...b.map(Math.abs));
    const worst = Math.max(...a.map((v, i) => Math.abs(v - b[i])));
    assert.ok(worst <= 1e-6 * scale, `generate through the both-jobs graph differs by ${worst} (max ${scale})`);
    // And decomposition's switch matters: job 1 (zero residuals) moves it.
    const d = (await (await runner(out, m, 'transformer', { job: job(1), ...zeroResiduals(m) })).run(inputs)).noise_pred;
    assert.ok(Math.max(...d.map((v, i) => Math.abs(v - b[i]))) > 1e-3 * scale, 'job 1 changes nothing: the layer_pe and layer LoRA are not switched');
  } finally {
    await shared.release();
    await plain.release();
  }
});

test('one bridge for both jobs: the pipeline on the both-jobs folder says it runs both, its memory plan holds the transformer once, and it generates what the generation-only folder does', async () => {
  const m = loadManifest(both.dir);
  const fileBytes = (prefix: string) => Object.entries(m.files).filter(([f]) => f.startsWith(prefix)).reduce((n, [, e]) => n + e.bytes, 0);
  const pipeline = await createPipeline({ modelDir: both.dir, provider: 'cpu', memory: 'resident' });
  const plain = await createPipeline({ modelDir: genOnly.dir, provider: 'cpu', memory: 'resident' });
  try {
    assert.deepEqual(pipeline.info.jobs, ['generate', 'decompose']);
    assert.deepEqual(plain.info.jobs, ['generate']);
    const plan = pipeline.info.memoryPlan ?? '';
    const mb = (b: number) => `${Math.max(1, Math.round(b / 1024 ** 2))} MB`;
    // Each graph once; the transformer serves both jobs from one copy; the total is the folder's weights.
    assert.equal(plan.match(/transformer /g)?.length, 1, plan);
    assert.match(plan, new RegExp(`generate \\+ decompose share [^;]*transformer ${mb(fileBytes('transformer.'))}[^;]* \\(one copy each\\)`));
    assert.ok(plan.includes(`decompose only: adapter ${mb(fileBytes('adapter.'))}`), plan);
    const all = Object.entries(m.files).filter(([f]) => f.endsWith('.onnx') || f.endsWith('.onnx.data')).reduce((n, [, e]) => n + e.bytes, 0);
    assert.ok(plan.includes(`both jobs hold ${mb(all)}`), plan);
    assert.equal(plain.info.memoryPlan?.includes('weights by job'), false);
    const params = { prompt: 'a poster', layout: { width: 64, height: 64, boxes: [[0, 0, 64, 64], [0, 0, 64, 64], [16, 16, 48, 48]] as [number, number, number, number][] }, steps: 2, guidance: 3, trueCfg: 2.5, seed: 9 };
    const a = await pipeline.generate(params);
    const b = await plain.generate(params);
    assert.deepEqual(a.latents.tokens, b.latents.tokens);
    assert.deepEqual(a.layers[2].rgba, b.layers[2].rgba);
  } finally {
    await pipeline.dispose();
    await plain.dispose();
  }
});

test('decomposing through the pipeline: the both-jobs folder opens its transformer once for both jobs and decomposes as the decompose-only folder does', async () => {
  const onlyDir = join(root, 'decompose-only-pipeline');
  convert({ ...cldSources(cld), layerPe: undefined, out: onlyDir, precision: 'fp32' });
  const opened: string[] = [];
  const sessions: SessionFactory = {
    create: (model, opts) => {
      if (typeof model === 'string') opened.push(basename(model));
      return typeof model === 'string' ? ort.InferenceSession.create(model, opts) : ort.InferenceSession.create(model, opts);
    },
  };
  const shared = await createPipeline({ modelDir: both.dir, provider: 'cpu', memory: 'resident', sessions });
  const only = await createPipeline({ modelDir: onlyDir, provider: 'cpu', memory: 'resident' });
  try {
    const width = 64;
    const height = 64;
    const pixels = Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 37 + (i >> 7) * 11) & 255);
    const params = { image: { width, height, channels: 3 as const, pixels }, prompt: 'a poster', layout: { width, height, boxes: [[0, 0, 64, 64], [0, 0, 64, 64], [16, 16, 48, 48]] as [number, number, number, number][] }, steps: 2, guidance: 3.5, trueCfg: 2, seed: 5, conditioningScale: 0.7 };
    await shared.generate({ prompt: 'a poster', layout: params.layout, steps: 1, guidance: 3, trueCfg: 2, seed: 1 });
    const a = await shared.decompose(params);
    const b = await only.decompose(params);
    // One session per graph file, the transformer's included, though both jobs ran.
    assert.deepEqual(opened.filter((f) => f === 'transformer.onnx'), ['transformer.onnx']);
    assert.ok(opened.includes('adapter.onnx'));
    assert.equal(new Set(opened).size, opened.length, opened.join(', '));
    // The layer LoRA switched on in-graph equals it fused (within float32), the layer_pe picked by the job.
    const scale = Math.max(...b.latents.tokens.map(Math.abs));
    const worst = Math.max(...a.latents.tokens.map((v, i) => Math.abs(v - b.latents.tokens[i])));
    assert.ok(worst <= 1e-4 * scale, `decomposition latents differ by ${worst} (max ${scale})`);
  } finally {
    await shared.dispose();
    await only.dispose();
  }
});

test('a folder that only decomposes (no generation layer_pe): the layer LoRA fused, CLD\'s layer_pe the only one, the cld_lora golden', async () => {
  const out = join(root, 'decompose-only');
  const m = convert({ ...cldSources(cld), layerPe: undefined, out, precision: 'fp32' });
  assert.deepEqual(m.jobs, ['decompose']);
  assert.equal(m.loras?.[1].jobs, undefined, 'fused: applies to every job the folder runs');
  assert.match(m.name, /^FLUX\.1-dev \+ CLD layer_pe \+ CLD adapter/);
  const report = await goldenThroughFolder(out, m, {});
  for (const c of report.comparisons) assert.ok(c.pass, `${c.name}: ${JSON.stringify(c)}`);
});

/** cld_adapter's transformer inputs (the golden case's feeds), for comparing two graphs. */
async function goldenFeeds(): Promise<Record<string, ort.Tensor>> {
  let captured: Record<string, ort.Tensor> = {};
  const dim = 32;
  await checkCld('cld_lora', CLD_LORA, CLD_ADAPTER, cldModels(CLD_ADAPTER), join(CLD_LORA, 'outputs.safetensors'), {
    adapter: async () => ({ adapter_block_sample_0: new Float32Array(166 * dim), adapter_block_sample_1: new Float32Array(166 * dim) }),
    transformer: async (feeds) => {
      captured = Object.fromEntries(Object.entries(feeds).filter(([k]) => !k.startsWith('adapter_')));
      return { noise_pred: new Float32Array(166 * 64) };
    },
  });
  return captured;
}

function zeroResiduals(m: Manifest): Record<string, ort.Tensor> {
  assert.ok(m.graphs.adapter);
  return { adapter_block_sample_0: new ort.Tensor('float32', new Float32Array(32), [1, 1, 32]), adapter_block_sample_1: new ort.Tensor('float32', new Float32Array(32), [1, 1, 32]) };
}

test('decomposition flags come together, and the wrong ControlNet is named', () => {
  const s = cldSources(cld);
  assert.throws(() => planConversion({ ...s, layerLora: undefined }, 'fp32'), /decomposition needs --adapter, --adapter-lora, --layer-lora, --decompose-layer-pe together .*missing --layer-lora/);
  const cfg = join(cld.adapter, 'config.json');
  const text = readFileSync(cfg, 'utf8');
  const json = JSON.parse(text) as Record<string, unknown>;
  try {
    writeFileSync(cfg, JSON.stringify({ ...json, num_mode: 10 }));
    assert.throws(() => planConversion(s, 'fp32'), /a union ControlNet \(num_mode 10\) is not CLD's adapter/);
    writeFileSync(cfg, JSON.stringify({ ...json, extra_condition_channels: 0 }));
    assert.throws(() => planConversion(s, 'fp32'), /extra_condition_channels is 0, but CLD's adapter takes the latents plus a mask \(4\)/);
    writeFileSync(cfg, JSON.stringify({ ...json, num_layers: 3 }));
    assert.throws(() => planConversion(s, 'fp32'), /tensors the config implies are missing: transformer_blocks\.2\..*the weights have 2 controlnet_blocks, the config 3/);
    writeFileSync(cfg, JSON.stringify({ ...json, _class_name: 'ControlNetModel' }));
    assert.throws(() => planConversion(s, 'fp32'), /a ControlNetModel config, not a FLUX ControlNet/);
  } finally {
    writeFileSync(cfg, text);
  }
  // The adapter LoRA given to the transformer's flag: its modules exist there too, but a LoRA for another width is named.
  assert.throws(() => planConversion({ ...s, decomposeLayerPe: join(new URL('../fixtures/torch-checkpoints/', import.meta.url).pathname, 'layer_pe_dict.pth') }, 'fp32'), /--decompose-layer-pe .*layer_pe is \[1,52,1,1,64\] but this transformer needs \[1, layers, 1, 1, 32\]/);
  assert.ok(planConversion(s, 'fp32').jobs.length === 2);
});

test('the manifest\'s jobs: a folder from before decomposition reads as generation; jobs and the adapter must agree', () => {
  const text = readFileSync(join(both.dir, 'manifest.json'), 'utf8');
  const json = JSON.parse(text) as Record<string, unknown> & { graphs: Record<string, unknown> };
  const { jobs: _jobs, adapter: _adapter, ...old } = json;
  const { adapter: _graph, ...oldGraphs } = json.graphs;
  assert.deepEqual(parseManifest(JSON.stringify({ ...old, graphs: oldGraphs }), 'old').jobs, ['generate']);
  assert.throws(() => parseManifest(JSON.stringify({ ...json, jobs: ['generate'] }), 'x'), /an adapter but jobs do not include decompose/);
  assert.throws(() => parseManifest(JSON.stringify({ ...json, graphs: oldGraphs }), 'x'), /jobs include decompose but the adapter graph or its "adapter" entry is missing/);
  assert.throws(() => parseManifest(JSON.stringify({ ...json, jobs: ['render'] }), 'x'), /bad manifest at "jobs\.0"/);
});
