import assert from 'node:assert/strict';
import { appendFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { GRAPH_NAMES, loadManifest, ModelFolderError, parseManifest, verifyChecksums } from '../../gpu-server/model-folder/manifest.ts';
import { writeTinyModel } from '../../gpu-server/model-folder/tiny.ts';

let root: string;
let tiny: string;

before(() => {
  root = mkdtempSync(join(tmpdir(), 'art-model-folder-'));
  tiny = join(root, 'tiny');
  writeTinyModel(tiny);
});
after(() => rmSync(root, { recursive: true, force: true }));

const isFolderError = (message: RegExp) => (e: unknown) => e instanceof ModelFolderError && message.test(e.message);
const manifestText = () => readFileSync(join(tiny, 'manifest.json'), 'utf8');

test('the tiny folder loads, lists every graph and passes its checksums', () => {
  const m = loadManifest(tiny);
  assert.equal(m.tiny, true);
  for (const name of GRAPH_NAMES) assert.ok(existsSync(join(tiny, m.graphs[name].file)), name);
  assert.deepEqual(verifyChecksums(tiny, m), []);
  assert.ok(!existsSync(`${tiny}.partial`), 'no partial folder left behind');
});

test('the tiny model is deterministic: same seed, same weight files', () => {
  const again = join(root, 'again');
  const other = join(root, 'other');
  const a = loadManifest(tiny);
  const b = writeTinyModel(again);
  const c = writeTinyModel(other, 7);
  for (const [file, entry] of Object.entries(a.files)) {
    assert.equal(b.files[file].sha256, entry.sha256, file);
  }
  assert.notEqual(c.files['transformer.onnx.data'].sha256, a.files['transformer.onnx.data'].sha256);
});

test('a changed weight file is caught by the checksum check', () => {
  const copy = join(root, 'tampered');
  cpSync(tiny, copy, { recursive: true });
  const m = loadManifest(copy);
  const data = join(copy, 'vae_decoder.onnx.data');
  const bytes = readFileSync(data);
  bytes[100] ^= 0xff;
  writeFileSync(data, bytes);
  assert.deepEqual(verifyChecksums(copy, m), ['vae_decoder.onnx.data']);
});

test('a missing folder, a folder without manifest, a truncated file and a missing file each get a clear error', () => {
  assert.throws(() => loadManifest(join(root, 'nowhere')), isFolderError(/no model folder at .*npm run tiny/));
  const empty = mkdtempSync(join(root, 'empty-'));
  assert.throws(() => loadManifest(empty), isFolderError(/has no manifest.json/));
  const broken = join(root, 'broken');
  cpSync(tiny, broken, { recursive: true });
  rmSync(join(broken, 'clip_text.onnx'));
  assert.throws(() => loadManifest(broken), isFolderError(/clip_text.onnx is missing/));
  const short = join(root, 'short');
  cpSync(tiny, short, { recursive: true });
  truncateSync(join(short, 'transformer.onnx.data'), 10);
  assert.throws(() => loadManifest(short), isFolderError(/transformer.onnx.data has 10 bytes but the manifest says/));
});

test('corrupt or inconsistent manifests are refused with the field named', () => {
  const where = 'x/manifest.json';
  assert.throws(() => parseManifest('{"format": "art-model', where), isFolderError(/corrupt \(not valid JSON/));
  const m = JSON.parse(manifestText());
  const variant = (edit: (o: Record<string, unknown>) => void) => {
    const o = structuredClone(m);
    edit(o);
    return JSON.stringify(o);
  };
  assert.throws(() => parseManifest(variant((o) => { o.formatVersion = 99; }), where), isFolderError(/format version 99/));
  assert.throws(() => parseManifest(variant((o) => { delete (o.vae as Record<string, unknown>).scalingFactor; }), where), isFolderError(/"vae.scalingFactor"/));
  assert.throws(() => parseManifest(variant((o) => { delete (o.graphs as Record<string, unknown>).t5_encoder; }), where), isFolderError(/"graphs.t5_encoder"/));
  assert.throws(() => parseManifest(variant((o) => { delete (o.files as Record<string, unknown>)['vae_encoder.onnx']; }), where), isFolderError(/graph "vae_encoder" uses vae_encoder.onnx, which "files" does not list/));
  assert.throws(() => parseManifest(variant((o) => { (o.graphs as Record<string, { file: string }>).transformer.file = '../escape.onnx'; }), where), isFolderError(/inside the model folder/));
  assert.throws(() => parseManifest(variant((o) => { o.precision = 'int3'; }), where), isFolderError(/"precision"/));
});

test('an interrupted write resumes: finished graphs are kept, the rest written, then renamed', () => {
  const out = join(root, 'resumed');
  // Interrupted while writing the third graph.
  assert.throws(() => writeTinyModel(out, 0, {
    onProgress: (p) => {
      if (p.index === 3) throw new Error('interrupted');
    },
  }), /interrupted/);
  const built = GRAPH_NAMES.slice(0, 2);
  assert.ok(!existsSync(out), 'nothing looks complete after the interruption');
  assert.ok(existsSync(`${out}.partial`));
  // Garbage from the interrupted graph must not matter.
  appendFileSync(join(`${out}.partial`, `${GRAPH_NAMES[2]}.onnx.data`), 'junk');
  const resumed: string[] = [];
  const m = writeTinyModel(out, 0, { onProgress: (p) => { if (p.resumed) resumed.push(p.graph); } });
  assert.deepEqual(resumed, built);
  assert.deepEqual(verifyChecksums(out, m), []);
  assert.equal(m.files['transformer.onnx.data'].sha256, loadManifest(tiny).files['transformer.onnx.data'].sha256);
});

test('writing over an existing model folder is refused', () => {
  assert.throws(() => writeTinyModel(tiny), isFolderError(/already holds a model folder/));
});
