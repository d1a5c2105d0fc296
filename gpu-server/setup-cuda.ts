/**
 * `npm run setup:cuda`: fetches onnxruntime-node's CUDA execution provider (its own install
 * script, which `npm ci` never runs: `.npmrc`'s `ignore-scripts` and `package.json`'s
 * `allowScripts`, so installs work offline and on machines without NVIDIA GPUs), then checks that
 * the provider library landed.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { cudaProviderPath } from './onnx/session.ts';

const require = createRequire(import.meta.url);
const ortDir = dirname(require.resolve('onnxruntime-node/package.json'));

if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.error(`onnxruntime-node ships its CUDA provider for linux/x64 only (this is ${process.platform}/${process.arch}); use --provider webgpu or cpu.`);
  process.exit(1);
}
console.log('Fetching the onnxruntime CUDA 12 provider (a few hundred MB from the NuGet feed)...');
// ONNXRUNTIME_NODE_INSTALL names what the script fetches (see the header of its install.js).
const run = spawnSync(process.execPath, [join(ortDir, 'script', 'install.js')], {
  stdio: 'inherit',
  env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'cuda12' },
});
const lib = cudaProviderPath();
if (run.status !== 0 || !lib) {
  console.error('The CUDA provider was not installed. Check network access to api.nuget.org, or use --provider cpu.');
  process.exit(1);
}
console.log(`CUDA provider installed: ${lib}\nStart with --provider cuda (or leave --provider out: cuda is tried first). It needs CUDA 12 and cuDNN 9 libraries on the library path.`);
