/** Waits for lines on a child process's stdout (for long-running traffic fixtures). */
import type { start } from '../../../src/sys/exec.js';
import { createInterface } from 'node:readline';

type ChildProcess = ReturnType<typeof start>;

export class LineWaiter {
  private readonly lines: string[] = [];
  private waiters: (() => void)[] = [];

  constructor(readonly child: ChildProcess) {
    if (!child.stdout) throw new Error('child has no stdout');
    createInterface({ input: child.stdout }).on('line', (l) => {
      this.lines.push(l);
      for (const w of this.waiters) w();
    });
  }

  /** Resolves with the first line matching `pattern` (seen before or after the call). */
  waitFor(pattern: RegExp | string, timeoutMs = 10_000): Promise<string> {
    const match = (): string | undefined => this.lines.find((l) => (typeof pattern === 'string' ? l === pattern : pattern.test(l)));
    return new Promise((resolve, reject) => {
      const found = match();
      if (found !== undefined) return resolve(found);
      const timer = setTimeout(() => reject(new Error(`no line ${String(pattern)} within ${timeoutMs} ms; got ${JSON.stringify(this.lines)}`)), timeoutMs);
      const check = (): void => {
        const l = match();
        if (l === undefined) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve(l);
      };
      this.waiters.push(check);
    });
  }
}
