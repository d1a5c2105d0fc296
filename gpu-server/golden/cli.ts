/**
 * `npm run golden -- [--provider cpu|webgpu|cuda] <case-dir> [...]`: checks the project's graphs
 * against the official code's outputs in each case folder and exits non-zero when any output is
 * above tolerance. `--provider` runs the graphs on another execution provider (default: the CPU).
 */
import { PROVIDERS, type Provider } from '../constants.ts';
import { checkCase } from './case.ts';
import { formatReport, reportPasses } from './compare.ts';

const USAGE = `usage: npm run golden -- [--provider ${PROVIDERS.join('|')}] <case-dir> [<case-dir> ...]   (e.g. test/fixtures/golden/transformer)`;
const args = process.argv.slice(2).filter((a) => a !== '--');
let provider: Provider = 'cpu';
const at = args.indexOf('--provider');
if (at >= 0) {
  const name = args[at + 1];
  if (!(PROVIDERS as readonly string[]).includes(name)) {
    console.error(`--provider must be one of ${PROVIDERS.join(', ')}, got ${JSON.stringify(name ?? '')}\n${USAGE}`);
    process.exit(2);
  }
  provider = name as Provider;
  args.splice(at, 2);
}
const dirs = args;
if (dirs.length === 0) {
  console.error(USAGE);
  process.exit(2);
}
let failed = 0;
for (const dir of dirs) {
  try {
    const report = await checkCase(dir, provider);
    console.log(formatReport(report, provider));
    if (!reportPasses(report)) failed++;
  } catch (e) {
    console.error(`${dir}: ${(e as Error).message}`);
    failed++;
  }
}
if (failed) {
  console.error(`${failed} of ${dirs.length} golden case(s) failed on ${provider}`);
  process.exit(1);
}
