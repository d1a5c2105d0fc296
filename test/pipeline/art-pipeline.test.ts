import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { LayoutError } from '../../domain/layout.ts';
import { ModelFolderError } from '../../gpu-server/model-folder/manifest.ts';
import { writeTinyModel } from '../../gpu-server/model-folder/tiny.ts';
import { createPipeline, ParamsError } from '../../gpu-server/pipeline/art-pipeline.ts';
import type { ArtPipeline, GenerateParams, LayerImage, Progress } from '../../gpu-server/pipeline/types.ts';

let root: string;
let pipeline: ArtPipeline;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'art-pipeline-'));
  writeTinyModel(join(root, 'tiny'));
  pipeline = await createPipeline({ modelDir: join(root, 'tiny'), provider: 'cpu' });
});
after(async () => {
  await pipeline?.dispose();
  rmSync(root, { recursive: true, force: true });
});

const params = (over: Partial<GenerateParams> = {}): GenerateParams => ({
  prompt: 'a red poster with the title "sale"',
  layout: { width: 128, height: 96, boxes: [[0, 0, 128, 96], [0, 0, 128, 96], [16, 16, 80, 64], [64, 48, 128, 96]] },
  steps: 2,
  guidance: 4,
  trueCfg: 3.5,
  seed: 41,
  ...over,
});

test('info names the tiny model and the provider', () => {
  assert.equal(pipeline.info.tiny, true);
  assert.equal(pipeline.info.provider, 'cpu');
  assert.equal(pipeline.info.maxLayers, 52);
});

test('generate returns every layer cropped to its box, VAE images of the canvas, timings and progress', async () => {
  const seen: Progress[] = [];
  const r = await pipeline.generate(params(), { onProgress: (p) => seen.push(p) });
  assert.deepEqual(r.layers.map((l) => [l.index, l.width, l.height, l.rgba.length]), [
    [0, 128, 96, 128 * 96 * 4], [1, 128, 96, 128 * 96 * 4], [2, 64, 48, 64 * 48 * 4], [3, 64, 48, 64 * 48 * 4],
  ]);
  assert.deepEqual(r.layers[3].box, [64, 48, 128, 96]);
  assert.equal(r.merged.rgb.length, 128 * 96 * 3);
  assert.equal(r.background.rgb.length, 128 * 96 * 3);
  assert.ok(r.tiny && r.provider === 'cpu' && r.seed === 41);
  for (const stage of ['text', 'denoise', 'decode'] as const) assert.ok((r.timings[stage] ?? -1) >= 0, stage);
  const stages = seen.map((p) => `${p.stage}${p.step}/${p.total}`);
  assert.deepEqual(stages.filter((s) => s.startsWith('denoise')), ['denoise0/2', 'denoise1/2', 'denoise2/2']);
  assert.ok(stages.indexOf('text1/1') < stages.indexOf('denoise0/2') && stages.indexOf('denoise2/2') < stages.indexOf('decode2/2'));
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i].elapsedMs >= seen[i - 1].elapsedMs);
  // Not a constant image: the random model still varies over the canvas.
  assert.ok(new Set(r.layers[2].rgba).size > 10);
});

test('onLayers hands every layer over before the VAE images are decoded, the same objects the result returns', async () => {
  const events: string[] = [];
  let handed: LayerImage[] = [];
  const r = await pipeline.generate(params({ steps: 1 }), {
    onProgress: (p) => events.push(`${p.stage}${p.step}/${p.total}`),
    onLayers: (layers) => {
      events.push('layers');
      handed = layers;
    },
  });
  assert.deepEqual(events.filter((e) => e === 'layers' || e.startsWith('decode')), ['decode0/2', 'decode1/2', 'layers', 'decode2/2']);
  assert.equal(handed.length, 4);
  handed.forEach((l, i) => assert.equal(l, r.layers[i]));
});

test('same seed, same image; another seed, another image', async () => {
  const a = await pipeline.generate(params());
  const b = await pipeline.generate(params());
  const c = await pipeline.generate(params({ seed: 42 }));
  assert.deepEqual(b.layers[2].rgba, a.layers[2].rgba);
  assert.deepEqual(b.merged.rgb, a.merged.rgb);
  assert.notDeepEqual(c.layers[2].rgba, a.layers[2].rgba);
});

test('concurrent jobs run one after another and each gets its own result', async () => {
  const [a, b] = await Promise.all([pipeline.generate(params({ seed: 1 })), pipeline.generate(params({ seed: 1, steps: 1 }))]);
  const again = await pipeline.generate(params({ seed: 1 }));
  assert.deepEqual(a.layers[2].rgba, again.layers[2].rgba);
  assert.notDeepEqual(b.layers[2].rgba, a.layers[2].rgba);
});

test('an abort between steps rejects with AbortError and the pipeline keeps working', async () => {
  const controller = new AbortController();
  const run = pipeline.generate(params({ steps: 5 }), {
    signal: controller.signal,
    onProgress: (p) => { if (p.stage === 'denoise' && p.step === 1) controller.abort(); },
  });
  await assert.rejects(run, (e: unknown) => (e as Error).name === 'AbortError');
  const pre = new AbortController();
  pre.abort();
  await assert.rejects(pipeline.generate(params(), { signal: pre.signal }), (e: unknown) => (e as Error).name === 'AbortError');
  const ok = await pipeline.generate(params({ steps: 1 }));
  assert.equal(ok.layers.length, 4);
});

test('bad layouts and parameters are refused with clear errors', async () => {
  await assert.rejects(pipeline.generate(params({ layout: { width: 128, height: 96, boxes: [[0, 0, 128, 96], [0, 0, 128, 96], [0, 0, 144, 16]] } })), (e: unknown) => e instanceof LayoutError && /outside/.test(e.message));
  await assert.rejects(pipeline.generate(params({ layout: { width: 128, height: 96, boxes: [[0, 0, 128, 96]] } })), LayoutError);
  await assert.rejects(pipeline.generate(params({ steps: 0 })), (e: unknown) => e instanceof ParamsError && /steps/.test(e.message));
  await assert.rejects(pipeline.generate(params({ guidance: Number.NaN })), (e: unknown) => e instanceof ParamsError && /guidance/.test(e.message));
  await assert.rejects(pipeline.generate(params({ seed: -3 })), (e: unknown) => e instanceof ParamsError && /seed/.test(e.message));
  // One set of limits with the bridge (domain/params.ts): true CFG below 1, guidance above 20, a
  // seed past 32 bits and a blank prompt are refused here too.
  await assert.rejects(pipeline.generate(params({ trueCfg: 0.5 })), (e: unknown) => e instanceof ParamsError && /trueCfg/.test(e.message));
  await assert.rejects(pipeline.generate(params({ guidance: 21 })), (e: unknown) => e instanceof ParamsError && /guidance/.test(e.message));
  await assert.rejects(pipeline.generate(params({ seed: 2 ** 32 })), (e: unknown) => e instanceof ParamsError && /seed/.test(e.message));
  await assert.rejects(pipeline.generate(params({ prompt: ' \u200b ' })), (e: unknown) => e instanceof ParamsError && /prompt is empty/.test(e.message));
});

test('a missing model folder and a corrupt manifest fail createPipeline clearly', async () => {
  await assert.rejects(createPipeline({ modelDir: join(root, 'missing') }), (e: unknown) => e instanceof ModelFolderError && /no model folder/.test(e.message));
  const bad = join(root, 'bad');
  writeTinyModel(bad);
  writeFileSync(join(bad, 'manifest.json'), '{ not json');
  await assert.rejects(createPipeline({ modelDir: bad }), (e: unknown) => e instanceof ModelFolderError && /corrupt/.test(e.message));
});

test('a prompt is reported as cut only when T5 (512 tokens) cuts it, not for CLIP’s usual 77', async () => {
  const words = (n: number) => Array.from({ length: n }, (_, i) => ['poster', 'title', 'sale', 'red'][i % 4]).join(' ');
  const long = await pipeline.generate(params({ prompt: words(150), steps: 1 }));
  assert.equal(long.promptTruncated, false);
  const tooLong = await pipeline.generate(params({ prompt: words(700), steps: 1 }));
  assert.equal(tooLong.promptTruncated, true);
});
