/**
 * `npm run golden -- <case-dir> [...]`: checks the project's graphs against the official code's
 * outputs in each case folder and exits non-zero when any output is above tolerance.
 */
import { checkCase } from './case.ts';
import { formatReport, reportPasses } from './compare.ts';

const dirs = process.argv.slice(2).filter((a) => a !== '--');
if (dirs.length === 0) {
  console.error('usage: npm run golden -- <case-dir> [<case-dir> ...]   (e.g. test/fixtures/golden/transformer)');
  process.exit(2);
}
let failed = 0;
for (const dir of dirs) {
  try {
    const report = await checkCase(dir);
    console.log(formatReport(report));
    if (!reportPasses(report)) failed++;
  } catch (e) {
    console.error(`${dir}: ${(e as Error).message}`);
    failed++;
  }
}
if (failed) {
  console.error(`${failed} of ${dirs.length} golden case(s) failed`);
  process.exit(1);
}
