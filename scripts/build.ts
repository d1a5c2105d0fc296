/**
 * Builds the Figma plugin: `plugin/main.ts` -> `dist/plugin.js` (Figma's main-thread sandbox) and
 * `ui/main.tsx` -> one self-contained `dist/ui.html` (Figma loads the UI as a single HTML string,
 * so scripts and styles are inlined). `--watch` rebuilds both on change.
 */
import * as esbuild from 'esbuild';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

/** Figma's sandbox runs modern JS today, but older desktop builds choke on ES2020 syntax; ES2017 costs nothing. */
const pluginOptions: esbuild.BuildOptions = {
  entryPoints: [join(root, 'plugin/main.ts')],
  outfile: join(dist, 'plugin.js'),
  bundle: true,
  format: 'iife',
  target: 'es2017',
  platform: 'neutral',
  mainFields: ['module', 'main'],
  logLevel: 'warning',
};

const uiOptions: esbuild.BuildOptions = {
  entryPoints: [join(root, 'ui/main.tsx')],
  outdir: join(dist, 'ui-assets'),
  bundle: true,
  format: 'iife',
  target: 'es2020',
  platform: 'browser',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  minify: true,
  write: false,
  logLevel: 'warning',
};

/** `</script>` inside inlined code would end the tag early. */
function escapeInline(code: string, tag: 'script' | 'style'): string {
  return code.replace(new RegExp(`</${tag}`, 'gi'), `<\\/${tag}`);
}

async function writeUiHtml(result: esbuild.BuildResult): Promise<void> {
  const files = result.outputFiles ?? [];
  const js = files.filter((f) => f.path.endsWith('.js')).map((f) => f.text).join('\n');
  const css = files.filter((f) => f.path.endsWith('.css')).map((f) => f.text).join('\n');
  const template = await readFile(join(root, 'ui/index.html'), 'utf8');
  const html = template
    .replace('<!--STYLE-->', () => `<style>${escapeInline(css, 'style')}</style>`)
    .replace('<!--SCRIPT-->', () => `<script>${escapeInline(js, 'script')}</script>`);
  await writeFile(join(dist, 'ui.html'), html);
}

const writeUiPlugin: esbuild.Plugin = {
  name: 'inline-ui-html',
  setup(build) {
    build.onEnd(async (result) => {
      if (result.errors.length === 0) await writeUiHtml(result);
    });
  },
};

export async function build(): Promise<void> {
  await mkdir(dist, { recursive: true });
  await Promise.all([esbuild.build(pluginOptions), esbuild.build({ ...uiOptions, plugins: [writeUiPlugin] })]);
}

async function watch(): Promise<void> {
  await mkdir(dist, { recursive: true });
  const plugin = await esbuild.context({ ...pluginOptions, logLevel: 'info' });
  const ui = await esbuild.context({ ...uiOptions, logLevel: 'info', plugins: [writeUiPlugin] });
  await Promise.all([plugin.watch(), ui.watch()]);
  console.log('Watching plugin/ and ui/; dist/plugin.js and dist/ui.html are rebuilt on change.');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const run = process.argv.includes('--watch') ? watch : build;
  run().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
