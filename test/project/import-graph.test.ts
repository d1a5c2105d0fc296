/**
 * Arrows only go down: no product file imports, through any chain, a file that imports it back,
 * and no product file imports tests or benchmarks. The product is every top-level folder with
 * TypeScript in it except test/ and bench/, so a new folder is checked without touching this test.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { describeCircle, importCircles, importGraph, sourceFiles } from '../support/import-graph.ts';

const root = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const NOT_PRODUCT = new Set(['test', 'bench', 'node_modules']);

const productFolders = readdirSync(root)
  .filter((name) => !name.startsWith('.') && !NOT_PRODUCT.has(name) && statSync(join(root, name)).isDirectory())
  .filter((name) => sourceFiles(join(root, name)).length > 0);

test('the product folders are found (bridge, gpu-server, plugin, ui, scripts)', () => {
  for (const folder of ['bridge', 'gpu-server', 'plugin', 'ui', 'scripts']) assert.ok(productFolders.includes(folder), `${folder}/ is not checked: ${productFolders.join(', ')}`);
});

test('no import circle among product files', () => {
  const graph = importGraph(productFolders.flatMap((f) => sourceFiles(join(root, f))));
  const circles = importCircles(graph).map((c) => describeCircle(root, c));
  assert.deepEqual(circles, [], `import circles (arrows must only go down: move what both sides need into a module below both):\n${circles.join('\n')}`);
});

/**
 * The house's arrows between folders (docs/design.md, "The house"): what each folder may import
 * besides itself. A folder not listed fails the test until it is placed here and in the docs.
 */
const ARROWS: Record<string, string[]> = {
  domain: [],
  'gpu-server': ['domain'],
  bridge: ['domain', 'gpu-server'],
  plugin: ['domain'],
  ui: ['domain', 'plugin', 'bridge/protocol'],
  scripts: [],
};

test('arrows between folders go only where docs/design.md draws them', () => {
  const graph = importGraph(productFolders.flatMap((f) => sourceFiles(join(root, f))));
  const rel = (f: string) => f.slice(root.length + 1);
  const unplaced = productFolders.filter((f) => !(f in ARROWS));
  assert.deepEqual(unplaced, [], 'a product folder with no place in the house: add it to ARROWS and to docs/design.md');
  const wrong = [...graph].flatMap(([from, to]) => {
    const folder = rel(from).split('/')[0];
    return to
      .map(rel)
      .filter((t) => t.split('/')[0] !== folder && !ARROWS[folder].some((allowed) => t.startsWith(`${allowed}/`)))
      .map((t) => `${rel(from)} -> ${t}`);
  });
  assert.deepEqual(wrong, [], 'imports against the house\'s arrows (move what both need down into domain/, or the folder the arrow allows)');
});

test('no product file imports tests or benchmarks', () => {
  const graph = importGraph(productFolders.flatMap((f) => sourceFiles(join(root, f))));
  const upward = [...graph].flatMap(([from, to]) => to.filter((t) => /^(test|bench)\//.test(t.slice(root.length + 1))).map((t) => describeCircle(root, [from, t])));
  assert.deepEqual(upward, []);
});

test('the circle check finds a circle through type-only imports and re-exports, names it, and passes a tree without one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'import-graph-'));
  try {
    const write = (name: string, text: string) => writeFileSync(join(dir, name), text);
    write('a.ts', "import { b } from './b.ts';\nimport { readFileSync } from 'node:fs';\nexport const a = b + readFileSync.length;\n");
    write('b.ts', "import type { C } from './c.ts';\nexport const b: C = 1;\n");
    write('c.ts', "export type C = number;\nexport { d } from './d.ts';\n");
    write('d.ts', "export const d = 4;\n");
    const files = () => sourceFiles(dir);
    assert.deepEqual(importCircles(importGraph(files())), []);

    write('d.ts', "import { a } from './a.ts';\nexport const d = a;\n");
    assert.deepEqual(importCircles(importGraph(files())).map((c) => describeCircle(dir, c)), ['a.ts -> b.ts -> c.ts -> d.ts -> a.ts']);

    write('d.ts', "export const d = 4;\n");
    write('e.ts', "export const e = 5;\nexport const lazy = () => import('./e.ts');\n");
    assert.deepEqual(importCircles(importGraph(files())).map((c) => describeCircle(dir, c)), ['e.ts -> e.ts']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
