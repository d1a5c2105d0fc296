/**
 * Preloaded into a GPU worker process by `bench/studio-failover.ts` (`--import`): once a second,
 * the longest the main thread was held in that second. BullMQ renews a job's lock from this
 * thread, so this is what the lock must outlive.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

const histogram = monitorEventLoopDelay({ resolution: 10 });
histogram.enable();
setInterval(() => {
  console.log(`[probe] ${Date.now()} loop-delay-max-ms ${(histogram.max / 1e6).toFixed(1)}`);
  histogram.reset();
}, 1000).unref();
