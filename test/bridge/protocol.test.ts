import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_GUIDANCE, MAX_PROMPT_CHARS, MAX_SEED, MAX_STEPS, MAX_TRUE_CFG, MIN_GUIDANCE, MIN_STEPS, MIN_TRUE_CFG } from '../../domain/params.ts';
import { MAX_MESSAGE_BYTES } from '../../bridge/protocol/limits.ts';
import { clientMessageSchema, ERROR_CODES } from '../../bridge/protocol/messages.ts';
import { parseClientMessage } from '../../bridge/protocol/parse.ts';
import { encodeImageFrame, decodeImageFrame, MAX_IMAGE_FRAME_HEADER_BYTES } from '../../bridge/protocol/image-frame.ts';
import { generateMessage } from '../support/bridge.ts';
import { readdir, readFile } from 'node:fs/promises';

test('image frames round-trip job id, layer index, kind and PNG bytes', () => {
  const png = new Uint8Array([137, 80, 78, 71, 1, 2, 3]);
  const jobId = '6f1c2a3b-1111-4222-8333-444455556666';
  for (const layerIndex of [0, 1, 51, 300, 65535]) {
    const bytes = encodeImageFrame({ kind: 'layer', jobId, layerIndex, png });
    const back = decodeImageFrame(bytes);
    assert.deepEqual({ ...back, png: [...back.png] }, { kind: 'layer', jobId, layerIndex, png: [...png] });
  }
  assert.equal(decodeImageFrame(encodeImageFrame({ kind: 'preview', jobId, layerIndex: 0, png })).kind, 'preview');
});

test('a PNG with room before it is framed in place, byte for byte what the copying path makes; one without is copied', () => {
  const jobId = '6f1c2a3b-1111-4222-8333-444455556666';
  const bytes = [137, 80, 78, 71, 9, 8, 7, 6];
  const roomy = new Uint8Array(new ArrayBuffer(MAX_IMAGE_FRAME_HEADER_BYTES + bytes.length), MAX_IMAGE_FRAME_HEADER_BYTES);
  roomy.set(bytes);
  const tight = Uint8Array.from(bytes);
  const inPlace = encodeImageFrame({ kind: 'layer', jobId, layerIndex: 7, png: roomy });
  const copied = encodeImageFrame({ kind: 'layer', jobId, layerIndex: 7, png: tight });
  assert.deepEqual([...inPlace], [...copied]);
  assert.equal(inPlace.buffer, roomy.buffer, 'no copy: the frame is the PNG buffer with its header in front');
  assert.equal(inPlace.byteOffset + inPlace.length, roomy.byteOffset + roomy.length);
  assert.notEqual(copied.buffer, tight.buffer);
  assert.deepEqual([...roomy], bytes, 'the PNG itself is untouched');
  // A 255-character id (the longest) still fits the room an encoder leaves.
  const longId = 'j'.repeat(255);
  assert.equal(encodeImageFrame({ kind: 'layer', jobId: longId, layerIndex: 0, png: roomy }).buffer, roomy.buffer);
});

test('image frames: bad headers are refused with what is wrong', () => {
  const good = encodeImageFrame({ kind: 'layer', jobId: 'abc', layerIndex: 2, png: new Uint8Array([1]) });
  assert.throws(() => decodeImageFrame(good.subarray(0, 5)), /shorter than its header/);
  const badMagic = good.slice();
  badMagic[0] = 0;
  assert.throws(() => decodeImageFrame(badMagic), /ARTI/);
  const badKind = good.slice();
  badKind[5] = 9;
  assert.throws(() => decodeImageFrame(badKind), /kind 9/);
  const badLength = good.slice(0, 10);
  badLength[8] = 200;
  assert.throws(() => decodeImageFrame(badLength), /job id/);
  assert.throws(() => encodeImageFrame({ kind: 'layer', jobId: 'x', layerIndex: 70000, png: new Uint8Array() }), /16 bits/);
});

test('a valid generate parses to the same data; a 52-layer layout is accepted', () => {
  const message = generateMessage('ok-1');
  const parsed = parseClientMessage(JSON.stringify(message));
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.message, message);
  const many = generateMessage('ok-2');
  many.layout.boxes = [many.layout.boxes[0], many.layout.boxes[1], ...Array.from({ length: 50 }, (_, i) => [(i % 8) * 16, 0, (i % 8) * 16 + 16, 16] as [number, number, number, number])];
  assert.ok(parseClientMessage(JSON.stringify(many)).ok);
});

test('parse: codes for frames that are not messages', () => {
  assert.equal(parseClientMessage('x'.repeat(MAX_MESSAGE_BYTES + 1)).ok, false);
  const big = parseClientMessage('x'.repeat(MAX_MESSAGE_BYTES + 1));
  assert.ok(!big.ok && big.code === 'message_too_large');
  const cases: [string, string][] = [
    ['nope', 'malformed_json'],
    ['null', 'invalid_message'],
    ['"hello"', 'invalid_message'],
    ['{"type":7}', 'invalid_message'],
    ['{"type":"welcome"}', 'unknown_type'],
    ['{"type":"ping","id":{}}', 'invalid_message'],
  ];
  for (const [text, code] of cases) {
    const r = parseClientMessage(text);
    assert.ok(!r.ok && r.code === code, `${text} -> ${JSON.stringify(r)}`);
    assert.ok(ERROR_CODES.includes(r.code));
  }
});

test("the UI's limits are the schema's own: each bound ui/ imports from domain/params.ts is exactly where the bridge's schema refuses", async () => {
  const base = generateMessage('bounds');
  assert.equal(clientMessageSchema.safeParse(base).success, true);
  // The UI imports the bounds, not the schema: what it offers must be what the bridge accepts.
  const uiDir = new URL('../../ui/', import.meta.url);
  const imported = new Set<string>();
  for (const f of await readdir(uiDir)) {
    if (!/\.tsx?$/.test(f)) continue;
    const src = await readFile(new URL(f, uiDir), 'utf8');
    for (const m of src.matchAll(/import \{([^}]*)\} from '\.\.\/domain\/params\.ts'/g)) for (const name of m[1].split(',')) imported.add(name.trim());
  }
  const bounds: Record<string, [keyof typeof base.params | 'prompt', number, number]> = {
    // name -> [field, accepted value at the bound, refused value just past it]
    MIN_STEPS: ['steps', MIN_STEPS, MIN_STEPS - 1],
    MAX_STEPS: ['steps', MAX_STEPS, MAX_STEPS + 1],
    MIN_GUIDANCE: ['guidance', MIN_GUIDANCE, MIN_GUIDANCE - 0.01],
    MAX_GUIDANCE: ['guidance', MAX_GUIDANCE, MAX_GUIDANCE + 0.01],
    MIN_TRUE_CFG: ['trueCfg', MIN_TRUE_CFG, MIN_TRUE_CFG - 0.01],
    MAX_TRUE_CFG: ['trueCfg', MAX_TRUE_CFG, MAX_TRUE_CFG + 0.01],
    MAX_SEED: ['seed', MAX_SEED, MAX_SEED + 1],
    MAX_PROMPT_CHARS: ['prompt', MAX_PROMPT_CHARS, MAX_PROMPT_CHARS + 1],
  };
  const limits = [...imported].filter((n) => /^(MIN|MAX)_/.test(n));
  assert.ok(limits.length >= 8, `ui/ imports ${limits.join(', ')}`);
  for (const name of limits) {
    const bound = bounds[name];
    assert.ok(bound, `ui/ imports ${name}: add its boundary to this test`);
    const [field, ok, bad] = bound;
    const message = (v: number) =>
      field === 'prompt' ? { ...base, prompt: 'p'.repeat(v) } : { ...base, params: { ...base.params, [field]: v } };
    assert.equal(clientMessageSchema.safeParse(message(ok)).success, true, `${name}: ${field} ${ok} refused`);
    assert.equal(clientMessageSchema.safeParse(message(bad)).success, false, `${name}: ${field} ${bad} accepted`);
  }
  // bridge/protocol/ and domain/ stay bundleable for the UI and the plugin: no Node APIs.
  const dirs = [new URL('../../bridge/protocol/', import.meta.url), new URL('../../domain/', import.meta.url)];
  const sources = (await Promise.all(dirs.map(async (dir) => (await readdir(dir)).map((f) => new URL(f, dir))))).flat();
  for (const file of sources) {
    const source = await readFile(file, 'utf8');
    const imports = [...source.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]);
    assert.deepEqual(imports.filter((i) => !i.startsWith('.') && i !== 'zod'), [], `${file.pathname} imports more than zod and siblings`);
  }
});

test('PROTOCOL.md lists exactly the error codes of the code', async () => {
  const doc = await readFile(new URL('../../bridge/PROTOCOL.md', import.meta.url), 'utf8');
  const section = doc.split('Error codes (`ERROR_CODES`):')[1].split('\n\n')[0];
  const documented = [...section.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]);
  assert.deepEqual(documented, [...ERROR_CODES]);
});
