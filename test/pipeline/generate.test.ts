import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { PNG } from 'pngjs';
import { writeTinyModel } from '../../gpu-server/model-folder/tiny.ts';
import { createPipeline } from '../../gpu-server/pipeline/art-pipeline.ts';
import { DEFAULT_LAYOUT_FILE, DEFAULT_OUT, layoutAt, parseGenerateArgs, readLayoutCase } from '../../gpu-server/pipeline/generate-args.ts';
import { composite } from '../../gpu-server/pipeline/composite.ts';
import { layerOnCanvas, writeGenerateOutputs } from '../../gpu-server/pipeline/generate-output.ts';
import type { ArtPipeline, LayerImage } from '../../gpu-server/pipeline/types.ts';

const fixtureText = readFileSync(DEFAULT_LAYOUT_FILE, 'utf8');
const fixtureCases = (JSON.parse(fixtureText) as { cases: Record<string, { caption: string; boxes: number[][] }[]> }).cases;
const files: Record<string, string> = {
  'fixture.json': fixtureText,
  'one.json': JSON.stringify(fixtureCases['512'][0]),
  'sized.json': JSON.stringify({ width: 320, height: 160, boxes: [[0, 0, 320, 160], [0, 0, 320, 160], [10, 10, 100, 50]] }),
  'broken.json': '{"boxes": [',
};
const read = (p: string) => {
  if (!(p in files)) throw new Error('ENOENT');
  return files[p];
};
const parse = (args: string) => parseGenerateArgs(args.split(' '), read);

test('defaults, the caption as prompt, and a case file used as it is', () => {
  const r = parse('--layout one.json --out o');
  assert.ok(r.ok);
  assert.equal(r.value.prompt, fixtureCases['512'][0].caption);
  assert.deepEqual([r.value.steps, r.value.guidance, r.value.trueCfg, r.value.seed, r.value.provider], [28, 4, 3.5, 41, 'auto']);
  assert.deepEqual(r.value.layout.boxes, fixtureCases['512'][0].boxes);
  assert.equal(r.value.layout.width, 512);
});

test('flags override, --case picks from the whole fixture file, --resolution scales and snaps', () => {
  const r = parse('--layout fixture.json --case 512/3 --prompt hello --resolution 256 --steps 4 --guidance 3 --true-cfg 1 --seed 7 --provider cpu --model m --out o');
  assert.ok(r.ok);
  assert.deepEqual([r.value.prompt, r.value.steps, r.value.guidance, r.value.trueCfg, r.value.seed, r.value.provider, r.value.model], ['hello', 4, 3, 1, 7, 'cpu', 'm']);
  assert.equal(r.value.layout.width, 256);
  const src = fixtureCases['512'][3].boxes;
  r.value.layout.boxes.forEach((b, i) => {
    assert.ok(b.every((v) => v % 16 === 0));
    // Snapped outwards: the scaled source box lies inside.
    assert.ok(b[0] <= src[i][0] / 2 && b[1] <= src[i][1] / 2 && b[2] >= src[i][2] / 2 && b[3] >= src[i][3] / 2);
  });
});

test('an explicit canvas keeps its aspect when scaled', () => {
  const r = parse('--layout sized.json --prompt p --resolution 512 --out o');
  assert.ok(r.ok);
  assert.deepEqual([r.value.layout.width, r.value.layout.height], [512, 256]);
  assert.deepEqual(r.value.layout.boxes[2], [16, 16, 160, 80]);
});

test('with no arguments it runs the built-in default: the first official 512 layout and its caption', () => {
  const r = parseGenerateArgs([], (p) => readFileSync(p, 'utf8'));
  assert.ok(r.ok, r.ok ? '' : r.error);
  const first = (JSON.parse(readFileSync(DEFAULT_LAYOUT_FILE, 'utf8')) as { cases: Record<string, { caption: string; boxes: number[][] }[]> }).cases['512'][0];
  assert.equal(r.value.prompt, first.caption);
  assert.equal(r.value.layout.boxes.length, first.boxes.length);
  assert.equal(r.value.out, DEFAULT_OUT);
});

const errors: [string, RegExp][] = [
  ['--layout nope.json --out o', /cannot read the layout file nope.json/],
  ['--layout broken.json --out o', /not valid JSON/],
  ['--layout fixture.json --out o', /pick one with --case/],
  ['--layout fixture.json --case 1024/0 --out o', /not in this file \(it has 512\/0\.\.10\)/],
  ['--layout one.json --case 512/0 --out o', /single layout/],
  ['--layout sized.json --out o', /no prompt/],
  ['--layout one.json --steps 0 --out o', /--steps must be an integer from 1 to 100/],
  ['--layout one.json --seed=-1 --out o', /--seed must be an integer from 0 to 4294967295/],
  ['--layout one.json --seed 4294967296 --out o', /--seed must be an integer from 0 to 4294967295/],
  ['--layout one.json --guidance x --out o', /--guidance must be/],
  // The limits the bridge takes (domain/params.ts), not merely non-negative numbers.
  ['--layout one.json --guidance 20.5 --out o', /--guidance must be a number from 0 to 20, got "20.5"/],
  ['--layout one.json --true-cfg 0.5 --out o', /--true-cfg must be a number from 1 to 20, got "0.5"/],
  ['--layout one.json --prompt=\u200b\u00a0 --out o', /--prompt: prompt is empty/],
  ['--layout one.json --resolution 4000 --out o', /--resolution must be/],
  ['--layout one.json --provider tpu --out o', /--provider must be/],
  ['--layout one.json --memory swap --out o', /--memory must be resident or text-on-demand/],
  ['--layout one.json --frobnicate --out o', /frobnicate/],
];
for (const [args, message] of errors) {
  test(`refused: ${args}`, () => {
    const r = parse(args);
    assert.ok(!r.ok && message.test(r.error), r.ok ? 'accepted' : r.error);
  });
}

test('layouts with bad boxes are refused by the layout rules', () => {
  const c = readLayoutCase({ boxes: [[0, 0, 128, 128], [0, 0, 128, 128], [64, 64, 32, 96]] }, undefined, 'f');
  assert.ok(c.ok);
  assert.throws(() => layoutAt(c.value, undefined), /inverted/);
});

const layer = (index: number, box: [number, number, number, number], rgba: number[]): LayerImage => ({ index, box, width: box[2] - box[0], height: box[3] - box[1], rgba: Uint8Array.from(rgba) });

test('compositing draws child layers over the background in order, alpha-weighted', () => {
  const background = { width: 2, height: 1, rgb: Uint8Array.from([100, 100, 100, 0, 0, 0]) };
  const merged = layer(0, [0, 0, 2, 1], [255, 255, 255, 255, 255, 255, 255, 255]);
  const red = layer(2, [0, 0, 1, 1], [255, 0, 0, 255]);
  const halfBlue = layer(3, [0, 0, 2, 1], [0, 0, 255, 0, 0, 0, 255, 51]);
  const out = composite(background, [merged, layer(1, [0, 0, 2, 1], [0, 0, 0, 255, 0, 0, 0, 255]), red, halfBlue]);
  assert.deepEqual(Array.from(out.rgb), [255, 0, 0, 0, 0, 51]);
  assert.deepEqual(Array.from(layerOnCanvas(red, 2, 1)), [255, 0, 0, 255, 0, 0, 0, 0]);
});

let root: string;
let pipeline: ArtPipeline;
before(async () => {
  root = mkdtempSync(join(tmpdir(), 'art-generate-'));
  writeTinyModel(join(root, 'tiny'));
  pipeline = await createPipeline({ modelDir: join(root, 'tiny'), provider: 'cpu' });
});
after(async () => {
  await pipeline?.dispose();
  rmSync(root, { recursive: true, force: true });
});

test('every case of the fixture file generates on the tiny model (scaled to 64, 1 step) and writes all files', async () => {
  for (const [res, cases] of Object.entries(fixtureCases)) {
    for (let i = 0; i < cases.length; i++) {
      const r = parse(`--layout fixture.json --case ${res}/${i} --resolution 64 --steps 1 --out ${join(root, `out-${i}`)}`);
      assert.ok(r.ok, r.ok ? '' : r.error);
      const job = r.value;
      const result = await pipeline.generate({ prompt: job.prompt, layout: job.layout, steps: job.steps, guidance: job.guidance, trueCfg: job.trueCfg, seed: job.seed });
      const written = writeGenerateOutputs(job.out, result, job);
      const n = job.layout.boxes.length;
      assert.deepEqual(written.sort(), [...Array.from({ length: n }, (_, k) => `layer_${k}.png`), 'background.png', 'merged.png', 'merged_rgba.png', 'result.json'].sort());
      // Every layer file: the whole canvas, fully transparent outside the layer's box, and inside
      // it exactly the pipeline's pixels for that layer.
      for (const layer of result.layers) {
        const png = PNG.sync.read(readFileSync(join(job.out, `layer_${layer.index}.png`)));
        assert.deepEqual([png.width, png.height], [job.layout.width, job.layout.height]);
        const [x1, y1, x2, y2] = job.layout.boxes[layer.index];
        assert.deepEqual(layer.box, [x1, y1, x2, y2]);
        let outside = 0;
        for (let y = 0; y < png.height; y++) {
          for (let x = 0; x < png.width; x++) {
            const at = (y * png.width + x) * 4;
            if (x >= x1 && x < x2 && y >= y1 && y < y2) {
              const from = ((y - y1) * layer.width + (x - x1)) * 4;
              for (let c = 0; c < 4; c++) if (png.data[at + c] !== layer.rgba[from + c]) assert.fail(`layer ${layer.index} (${x}, ${y}) channel ${c}: ${png.data[at + c]} != ${layer.rgba[from + c]}`);
            } else {
              outside++;
              if (png.data[at + 3] !== 0) assert.fail(`layer ${layer.index} (${x}, ${y}) outside its box [${x1}, ${y1}, ${x2}, ${y2}] has alpha ${png.data[at + 3]}`);
            }
          }
        }
        assert.equal(outside, png.width * png.height - (x2 - x1) * (y2 - y1));
      }
      const desc = JSON.parse(readFileSync(join(job.out, 'result.json'), 'utf8'));
      assert.equal(desc.tiny, true);
      assert.match(desc.warning, /noise/);
      assert.deepEqual(desc.boxes, job.layout.boxes);
      assert.equal(desc.seed, 41);
      assert.ok(desc.timingsMs.denoise >= 0);
    }
  }
});

test('the CLI runs end to end, says loudly that tiny images are noise, and exits 2 on a bad layout', async () => {
  const run = promisify(execFile);
  const cli = join(import.meta.dirname, '..', '..', 'gpu-server', 'pipeline', 'generate-cli.ts');
  const layoutFile = join(root, 'layout.json');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(layoutFile, JSON.stringify({ caption: 'a poster', boxes: [[0, 0, 64, 64], [0, 0, 64, 64], [16, 16, 48, 48]] }));
  const out = join(root, 'cli-out');
  const ok = await run(process.execPath, ['--import', 'tsx', cli, '--layout', layoutFile, '--model', join(root, 'tiny'), '--provider', 'cpu', '--steps', '1', '--out', out]);
  assert.match(ok.stderr, /TINY MODEL: random weights/);
  assert.ok(existsSync(join(out, 'merged_rgba.png')) && existsSync(join(out, 'layer_2.png')));
  writeFileSync(layoutFile, JSON.stringify({ caption: 'a poster', boxes: [[0, 0, 64, 64], [0, 0, 64, 64], [16, 16, 96, 48]] }));
  await assert.rejects(run(process.execPath, ['--import', 'tsx', cli, '--layout', layoutFile, '--model', join(root, 'tiny'), '--out', out]), (e: unknown) => {
    const err = e as { code: number; stderr: string };
    return err.code === 2 && /outside the 64x64 canvas/.test(err.stderr);
  });
  writeFileSync(layoutFile, JSON.stringify({ caption: 'a poster', boxes: [[0, 0, 64, 64], [0, 0, 64, 64]] }));
  await assert.rejects(run(process.execPath, ['--import', 'tsx', cli, '--layout', layoutFile, '--model', join(root, 'missing'), '--out', out]), (e: unknown) => {
    const err = e as { code: number; stderr: string };
    return err.code === 1 && /no model folder at/.test(err.stderr);
  });
});
