/**
 * `npm run bench`: every benchmark, one after the other (they would disturb each other's timings
 * if run together), each printing its table and how to read it. `npm run bench -- crop bridge`
 * runs only the ones named (crop, bridge, png, plugin, figma, studio, failover, regenerate, upload, decompose, stages, precision, ceiling, jobs, webgpu).
 */
import { main as cropVsFull } from './crop-vs-full.ts';
import { main as bridge } from './bridge.ts';
import { main as bridgeAttack } from './bridge-attack.ts';
import { main as stages } from './pipeline-stages.ts';
import { main as precision } from './precision.ts';
import { main as png } from './png.ts';
import { main as ceiling } from './cpu-ceiling.ts';
import { main as plugin } from './plugin-traffic.ts';
import { main as figma } from './figma-delivery.ts';
import { main as studio } from './studio.ts';
import { main as studioFailover } from './studio-failover.ts';
import { main as regenerate } from './regenerate.ts';
import { main as upload } from './flat-image.ts';
import { main as decompose } from './decompose.ts';
import { main as jobSwitch } from './job-switch.ts';
import { main as webgpu } from './webgpu-swiftshader.ts';
import { fixed, machineLine } from './stats.ts';

const BENCHES: Record<string, () => Promise<unknown>> = {
  crop: () => cropVsFull(),
  bridge: async () => {
    await bridge();
    await bridgeAttack();
  },
  png: () => png(),
  plugin: () => plugin(),
  figma: () => figma([]),
  studio: () => studio(),
  failover: () => studioFailover(),
  regenerate: () => regenerate(),
  upload: () => upload(),
  decompose: () => decompose(),
  ceiling: () => ceiling(),
  stages: () => stages(),
  precision: () => precision(),
  jobs: () => jobSwitch(),
  webgpu: () => webgpu(),
};

const asked = process.argv.slice(2).filter((a) => a !== '--');
const unknown = asked.filter((a) => !(a in BENCHES));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(', ')}; choose from ${Object.keys(BENCHES).join(', ')} (none: all)`);
  process.exit(2);
}
const t0 = performance.now();
console.log(`ART for Figma benchmarks on ${machineLine()}`);
for (const name of asked.length > 0 ? asked : Object.keys(BENCHES)) await BENCHES[name]();
console.log(`\nall benchmarks done in ${fixed((performance.now() - t0) / 1000)} s`);
