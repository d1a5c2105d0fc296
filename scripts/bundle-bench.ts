/**
 * `npm run bundle:bench [-- --out DIR --compress xz|gzip|gzip-fast]`: a folder that runs the GPU
 * benchmark (bench/gpu-bench.ts) on a machine with no Node.js, npm or network: the Node runtime
 * and onnxruntime-node's linux-x64 native files (compressed), one esbuild bundle, and run.sh.
 * It must stay under 64 MiB, what may travel to a GPU machine.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { gzipSync, constants as zc } from 'node:zlib';
import { build } from 'esbuild';

export const LIMIT_BYTES = 64 * 2 ** 20;
type Compress = 'xz' | 'gzip' | 'gzip-fast';

/** onnxruntime-node's linux-x64 folder: the binding and libonnxruntime, never the CUDA/TensorRT providers. */
export function nativeFiles(): { dir: string; rel: string; files: string[] } {
  const pkg = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
  const napi = readdirSync(join(pkg, 'bin')).find((d) => d.startsWith('napi-v'));
  if (!napi) throw new Error(`no bin/napi-v* folder in ${pkg}: reinstall onnxruntime-node`);
  const rel = join('bin', napi, 'linux', 'x64');
  const files = readdirSync(join(pkg, rel)).filter((f) => (f.endsWith('.node') || /^libonnxruntime\.so/.test(f)) && !/providers_(cuda|tensorrt)/.test(f));
  return { dir: join(pkg, rel), rel, files };
}

function hasXz(): boolean {
  try {
    execFileSync('xz', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Compresses `src` to `dest` + extension; returns the file name written. */
function compress(src: string, dest: string, how: Compress): string {
  if (how === 'xz') {
    writeFileSync(`${dest}.xz`, execFileSync('xz', ['-9', '-T0', '-c', src], { maxBuffer: 2 ** 30 }));
    return `${basename(dest)}.xz`;
  }
  writeFileSync(`${dest}.gz`, gzipSync(readFileSync(src), { level: how === 'gzip-fast' ? 1 : zc.Z_BEST_COMPRESSION }));
  return `${basename(dest)}.gz`;
}

const RUN_SH = (napiRel: string) => `#!/bin/sh
# Unpacks the Node runtime and onnxruntime's native files into a temp dir and runs the GPU bench.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "\${TMPDIR:-/tmp}/art-gpu-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT
unpack() { case "$1" in
  *.xz) command -v xz >/dev/null || { echo "run.sh: xz is needed to unpack $1 (apt-get install xz-utils)" >&2; exit 1; }; xz -dc "$1" > "$2" ;;
  *.gz) gzip -dc "$1" > "$2" ;;
esac; }
mkdir -p "$T/app" "$T/${napiRel}"
for f in "$HERE"/native/*; do n=$(basename "$f"); unpack "$f" "$T/${napiRel}/\${n%.*}"; done
unpack "$HERE"/node.* "$T/node"; chmod +x "$T/node"
cp "$HERE/gpu-bench.mjs" "$T/app/gpu-bench.mjs"
# A launcher, so that process.argv[1] is not the bundle (bench modules run their own main when it is).
echo "await import('./gpu-bench.mjs');" > "$T/app/start.mjs"
"$T/node" "$T/app/start.mjs" "$@"
`;

export async function bundleBench(out: string, how: Compress): Promise<number> {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(join(out, 'native'), { recursive: true });
  // The binding is required as ../bin/napi-vN/<platform>/<arch>/... from the bundle (app/), where run.sh unpacks it.
  await build({
    entryPoints: [new URL('../bench/gpu-bench.ts', import.meta.url).pathname], bundle: true, platform: 'node', format: 'esm', target: 'node20',
    outfile: join(out, 'gpu-bench.mjs'), external: ['*.node'], logLevel: 'error', define: { 'process.env.ART_GPU_BENCH_BUNDLE': '"1"' },
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  const native = nativeFiles();
  for (const f of native.files) compress(join(native.dir, f), join(out, 'native', f), how);
  compress(process.execPath, join(out, 'node'), how);
  writeFileSync(join(out, 'run.sh'), RUN_SH(native.rel.replace(/^bin/, 'bin')));
  chmodSync(join(out, 'run.sh'), 0o755);
  const size = (d: string): number => readdirSync(d).reduce((s, f) => s + (statSync(join(d, f)).isDirectory() ? size(join(d, f)) : statSync(join(d, f)).size), 0);
  return size(out);
}

async function main(argv: string[]): Promise<void> {
  let out = 'dist/gpu-bench';
  let how: Compress = hasXz() ? 'xz' : 'gzip';
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--out') out = argv[i + 1] ?? out;
    else if (argv[i] === '--compress' && ['xz', 'gzip', 'gzip-fast'].includes(argv[i + 1] ?? '')) how = argv[i + 1] as Compress;
    else throw new Error(`unknown option ${argv[i]} ${argv[i + 1] ?? ''} (use --out DIR, --compress xz|gzip|gzip-fast)`);
  }
  if (how === 'xz' && !hasXz()) throw new Error('--compress xz needs Debian\'s xz (apt-get install xz-utils), or use --compress gzip');
  const bytes = await bundleBench(out, how);
  console.log(`${out}: ${(bytes / 2 ** 20).toFixed(1)} MiB (${how}); run it with: sh ${out}/run.sh --providers webgpu,cpu`);
  if (bytes > LIMIT_BYTES) {
    console.error(`bundle is ${(bytes / 2 ** 20).toFixed(1)} MiB, over the 64 MiB that may travel to a GPU machine: use --compress xz, or drop files from native/`);
    process.exit(1);
  }
}

if (existsSync(process.argv[1] ?? '') && /bundle-bench\.ts$/.test(process.argv[1] ?? '')) await main(process.argv.slice(2));
