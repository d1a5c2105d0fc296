/**
 * Decomposition at the product's entry points, `createPipeline().decompose` and `npm run
 * decompose`, checked numerically against a decomposition composed independently from raw
 * onnxruntime sessions (reference-generation.ts `decompose`) with non-default knobs: guidance,
 * true CFG, steps, seed, conditioning scale, a non-square canvas and an RGBA image with
 * transparent pixels. Each knob (and the image itself) is shown to move the output far beyond
 * the tolerance, so a pipeline that ignored one fails here.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { MANIFEST_FILE } from '../../gpu-server/model-folder/manifest.ts';
import { createPipeline } from '../../gpu-server/pipeline/art-pipeline.ts';
import { DEFAULT_BOXES_FILE, DEFAULT_IMAGE_FILE, parseDecomposeArgs } from '../../gpu-server/pipeline/decompose-args.ts';
import { encodePng } from '../../gpu-server/pipeline/png.ts';
import type { DecomposeParams, SourceImage } from '../../gpu-server/pipeline/types.ts';
import { assertSameImages, assertWrittenImages, differingShare } from './reference-compare.ts';
import type { ReferenceResult } from './reference-generation.ts';
import { useTinySetup } from './tiny-setup.ts';

const tiny = useTinySetup('art-decompose-');

/** A flat 96x64 picture: a gradient, a red block, and a half-transparent top-left corner (drawn over white). */
function flatImage(seed = 0): SourceImage {
  const width = 96, height = 64;
  const pixels = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const block = x >= 16 && x < 64 && y >= 16 && y < 48;
      pixels.set(block ? [200, 30 + seed, 40, 255] : [(x * 2 + seed) & 255, 100 + y, 180 - x, x < 16 && y < 16 ? 96 : 255], i);
    }
  }
  return { width, height, channels: 4, pixels };
}

const PARAMS: DecomposeParams = {
  image: flatImage(),
  prompt: 'a red block on a gradient',
  layout: { width: 96, height: 64, boxes: [[0, 0, 96, 64], [0, 0, 96, 64], [16, 16, 64, 48], [48, 0, 96, 32]] },
  steps: 3,
  guidance: 2.5,
  trueCfg: 5.5,
  seed: 90210,
  conditioningScale: 0.6,
};

let expected: ReferenceResult;

test('the tiny model decomposes: its manifest records the adapter and the pipeline says it runs both jobs', () => {
  assert.deepEqual(tiny.pipeline.info.jobs, ['generate', 'decompose']);
  assert.deepEqual(tiny.reference.manifest.jobs, ['generate', 'decompose']);
  assert.deepEqual(tiny.reference.manifest.adapter, { doubleSamples: 2, singleSamples: 0 });
});

test('createPipeline.decompose equals the independently composed decomposition (guidance 2.5, true CFG 5.5, 3 steps, scale 0.6, 96x64 RGBA, seed 90210)', async () => {
  expected = await tiny.reference.decompose(PARAMS);
  const stages = new Set<string>();
  const previews: number[] = [];
  const r = await tiny.pipeline.decompose(PARAMS, { onProgress: (p) => stages.add(p.stage), onPreview: (_image, step) => previews.push(step) });
  assertSameImages('createPipeline', { layers: r.layers, merged: r.merged.rgb, background: r.background.rgb }, expected);
  assert.deepEqual([...stages], ['text', 'denoise', 'decode']);
  assert.deepEqual(previews, [1, 2, 3]);
  assert.equal(r.tiny, true);
});

test('each knob and the image move the decomposition far beyond the tolerance', async () => {
  expected ??= await tiny.reference.decompose(PARAMS);
  const variants: [string, Promise<ReferenceResult>][] = [
    ['conditioning scale 0.9 (hard-coded default)', tiny.reference.decompose({ ...PARAMS, conditioningScale: 0.9 })],
    ['conditioning scale 0 (adapter ignored)', tiny.reference.decompose({ ...PARAMS, conditioningScale: 0 })],
    ['another image', tiny.reference.decompose({ ...PARAMS, image: flatImage(60) })],
    ['the image without its alpha', tiny.reference.decompose({ ...PARAMS, image: { ...PARAMS.image, pixels: PARAMS.image.pixels.map((v, i) => (i % 4 === 3 ? 255 : v)) } })],
    ['true CFG 3.5 (hard-coded default)', tiny.reference.decompose({ ...PARAMS, trueCfg: 3.5 })],
    ['guidance 4 (hard-coded default)', tiny.reference.decompose({ ...PARAMS, guidance: 4 })],
    ['seed + 1', tiny.reference.decompose({ ...PARAMS, seed: PARAMS.seed + 1 })],
    ['generation instead (no adapter)', tiny.reference.generate(PARAMS)],
  ];
  for (const [name, variant] of variants) {
    const share = differingShare(await variant, expected);
    assert.ok(share > 0.01, `${name}: only ${(share * 100).toFixed(2)}% of the values differ by more than one level; the comparison could not see this knob`);
  }
});

test('a decomposition is cancelled between steps like a generation', async () => {
  const controller = new AbortController();
  const job = tiny.pipeline.decompose(PARAMS, { signal: controller.signal, onProgress: (p) => p.stage === 'denoise' && p.step === 1 && controller.abort() });
  await assert.rejects(job, { name: 'AbortError' });
});

test('decompose refuses an image that does not fit the layout, naming both sizes', async () => {
  await assert.rejects(tiny.pipeline.decompose({ ...PARAMS, layout: { width: 64, height: 64, boxes: [[0, 0, 64, 64], [0, 0, 64, 64]] } }), { name: 'ParamsError', message: /image is 96x64 but the layout's canvas is 64x64/ });
  await assert.rejects(tiny.pipeline.decompose({ ...PARAMS, conditioningScale: -1 }), { name: 'ParamsError', message: /conditioningScale/ });
});

test('a model folder without the adapter generates only, and refuses to decompose saying why', async () => {
  const dir = join(tiny.root, 'no-adapter');
  cpSync(tiny.model, dir, { recursive: true });
  const file = join(dir, MANIFEST_FILE);
  const m = JSON.parse(readFileSync(file, 'utf8'));
  delete m.graphs.adapter;
  delete m.adapter;
  m.jobs = ['generate'];
  writeFileSync(file, JSON.stringify(m));
  const plain = await createPipeline({ modelDir: dir, provider: 'cpu' });
  try {
    assert.deepEqual(plain.info.jobs, ['generate']);
    await assert.rejects(plain.decompose(PARAMS), { name: 'ParamsError', message: /has no adapter: it cannot decompose images/ });
  } finally {
    await plain.dispose();
  }
});

test('npm run decompose with no arguments reads the built-in example poster and its boxes', () => {
  const parsed = parseDecomposeArgs([], (p) => readFileSync(p));
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
  const job = parsed.value;
  assert.equal(job.imageFile, DEFAULT_IMAGE_FILE);
  assert.equal(job.layoutFile, DEFAULT_BOXES_FILE);
  assert.deepEqual([job.image.width, job.image.height], [512, 512]);
  assert.equal(job.layout.boxes.length, 5);
  assert.deepEqual(job.layout.boxes[0], [0, 0, 512, 512]);
  assert.match(job.prompt, /poster/);
  assert.equal(job.model, undefined);
});

test('npm run decompose writes what the reference computes, every flag passed through', async () => {
  expected ??= await tiny.reference.decompose(PARAMS);
  const { width, height } = PARAMS.layout;
  const imageFile = join(tiny.root, 'flat.png');
  writeFileSync(imageFile, encodePng(width, height, PARAMS.image.pixels));
  const boxesFile = join(tiny.root, 'boxes.json');
  // Off-grid boxes snap outwards to PARAMS.layout's.
  writeFileSync(boxesFile, JSON.stringify({ caption: 'not this caption', boxes: [[17, 20, 60, 48], [50, 0, 96, 30]] }));
  const out = join(tiny.root, 'cli');
  const cli = join(import.meta.dirname, '..', '..', 'gpu-server', 'pipeline', 'decompose-cli.ts');
  const run = await promisify(execFile)(process.execPath, [
    '--import', 'tsx', cli, '--image', imageFile, '--boxes', boxesFile, '--model', tiny.model, '--provider', 'cpu', '--prompt', PARAMS.prompt,
    '--steps', String(PARAMS.steps), '--guidance', String(PARAMS.guidance), '--true-cfg', String(PARAMS.trueCfg), '--seed', String(PARAMS.seed),
    '--conditioning-scale', String(PARAMS.conditioningScale), '--out', out,
  ]);
  assert.match(run.stderr, /TINY MODEL: random weights\. Everything this run decomposes is NOISE/);
  const desc = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')) as { boxes: number[][]; seed: number; conditioningScale: number; warning: string };
  assert.deepEqual(desc.boxes, PARAMS.layout.boxes);
  assert.equal(desc.conditioningScale, PARAMS.conditioningScale);
  assert.match(desc.warning, /noise/);
  assertWrittenImages(out, expected, width, height);
});

test('npm run decompose refuses an image off the 16-pixel grid before decoding it, and a file that is not a PNG', async () => {
  const bad = join(tiny.root, 'odd.png');
  writeFileSync(bad, encodePng(100, 64, new Uint8Array(100 * 64 * 4)));
  const boxesFile = join(tiny.root, 'boxes-odd.json');
  writeFileSync(boxesFile, JSON.stringify({ caption: 'x', boxes: [] }));
  let parsed = parseDecomposeArgs(['--image', bad, '--boxes', boxesFile], (p) => readFileSync(p));
  assert.ok(!parsed.ok && /100x64; each side must be a multiple of 16/.test(parsed.error), JSON.stringify(parsed));
  writeFileSync(bad, 'GIF89a not a png at all, padded to be long enough');
  parsed = parseDecomposeArgs(['--image', bad, '--boxes', boxesFile], (p) => readFileSync(p));
  assert.ok(!parsed.ok && /does not start with the PNG signature/.test(parsed.error), JSON.stringify(parsed));
  parsed = parseDecomposeArgs(['--image', bad], (p) => readFileSync(p));
  assert.ok(!parsed.ok && /both --image and --boxes/.test(parsed.error));
});
