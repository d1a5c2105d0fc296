/**
 * A process a test starts (a bridge, a GPU worker, the CLI): its output collected as it comes,
 * its exit awaited, and a wait for the line that says it is ready, failing with what it printed.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export class TestChild {
  readonly exited: Promise<number | null>;
  private out = '';
  private err = '';

  constructor(readonly proc: ChildProcess) {
    proc.stdout?.on('data', (d: Buffer) => (this.out += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  }

  static spawn(command: string, args: string[], options: SpawnOptions): TestChild {
    return new TestChild(spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  /** Everything printed so far: stdout, then stderr. */
  get output(): string {
    return this.out + this.err;
  }

  get stderr(): string {
    return this.err;
  }

  /** The output's non-empty lines. */
  lines(): string[] {
    return this.output.split('\n').filter(Boolean);
  }

  /** Waits until the output matches `ready`; throws with the output if the process exits first or `timeoutMs` passes. */
  async ready(ready: RegExp, what: string, timeoutMs = 30_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = ready.exec(this.output);
      if (m) return m;
      if (this.proc.exitCode !== null) throw new Error(`${what} exited (code ${this.proc.exitCode}) before it was ready: ${this.output}`);
      if (Date.now() > deadline) throw new Error(`${what} not ready within ${timeoutMs / 1000} s: ${this.output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  kill(signal: NodeJS.Signals): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
  }
}
