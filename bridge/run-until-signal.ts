/**
 * The end of a long-running command (the bridge, a GPU worker): on SIGINT or SIGTERM it stops
 * gracefully; a second signal exits at once, for a stop that takes too long (a job finishing).
 */
export interface SignalStop {
  /** Stops gracefully (e.g. lets the running job finish). */
  stop(): Promise<void>;
  /** What the first signal does, in words: logged as `<SIGNAL>: <stopping>`. */
  stopping: string;
  /** What a second signal leaves behind, logged as `<SIGNAL> again: exiting now<again>`. */
  again?: string;
  /** Logged once `stop` resolved. */
  stopped?: string;
  log(line: string): void;
}

/** Resolves with the exit code: 0 once stopped, 1 if stopping failed, 130 on a second signal. */
export function runUntilSignal(o: SignalStop): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const done = (code: number) => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve(code);
    };
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        o.log(`${signal} again: exiting now${o.again ?? ''}`);
        return done(130);
      }
      stopping = true;
      o.log(`${signal}: ${o.stopping}`);
      o.stop().then(
        () => {
          if (o.stopped) o.log(o.stopped);
          done(0);
        },
        (error: unknown) => {
          console.error(`shutdown failed: ${String(error)}`);
          done(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
