/**
 * A bridge in a process of its own, for tests that need one (its own environment, file limits,
 * a crash that must not take the test runner with it). Prints `READY <port>` when listening;
 * SIGTERM shuts it down. Usage: node --import tsx test/bridge/bridge-process.ts <outputs> [--real]
 */
import { startBridge } from '../../bridge/server.ts';
import { FAKE_FACTORY, REAL_FACTORY, TOKEN } from './helpers.ts';

const [outputs, mode] = process.argv.slice(2);
const bridge = await startBridge({
  host: '127.0.0.1',
  port: 0,
  token: TOKEN,
  allowOrigins: [],
  outputs,
  keepJobs: 5,
  executor: {
    kind: 'local',
    pipeline: mode === '--real' ? { factory: REAL_FACTORY, options: { provider: 'cpu' } } : { factory: FAKE_FACTORY, options: { stepMs: 1 } },
  },
  cancelOnShutdown: true,
  version: 'test',
  log: (line) => process.stderr.write(`${line}\n`),
});
process.stdout.write(`READY ${bridge.port}\n`);
process.once('SIGTERM', () => void bridge.close().then(() => process.exit(0)));
