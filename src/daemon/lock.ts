/**
 * The hotplug lock inside the daemon: callers queue in-process, and the one at the head takes
 * the host-wide flock shared with Xen's scripts through a resident helper (a pipe round trip,
 * not a flock(1) process per lock; flock(1) when perl is missing). A caller that stops waiting
 * (its change was committed by the holder's batch) leaves the queue.
 */
import { join } from 'node:path';
import { Deadline } from '../sys/deadline.js';
import { XennetError } from '../sys/errors.js';
import { FlockHelper } from '../sys/flock-helper.js';
import { acquireHotplugLock, gaveUp, hotplugLockDir, type HeldHotplugLock, type HotplugLockOptions } from '../sys/hotplug-lock.js';
import { mkdirSync } from 'node:fs';

interface Waiter {
  start: () => void;
  cancel: (e: Error) => void;
}

export class DaemonLock {
  private busy = false;
  private readonly queue: Waiter[] = [];

  private readonly helper = FlockHelper.available() ? new FlockHelper((path, pid) => this.lost(path, pid)) : undefined;
  /** Times the helper died while the lock was held (each taken again). */
  lostCount = 0;

  /** `onLost`: told (with a sentence) when the lock was lost under a holder and taken again. */
  constructor(
    private readonly dir: string | undefined,
    private readonly onLost: (what: string) => void = () => undefined,
  ) {}

  /**
   * The helper died while a caller held the lock: the kernel released Xen's lock, and Xen's
   * scripts or an in-process hook may take it while the holder still works. Said at once, and
   * the lock taken again by a new helper for the rest of the holder's work (its release lets
   * that go).
   */
  private lost(path: string, pid: number | undefined): void {
    if (this.closed || !this.busy) return;
    this.lostCount++;
    const what = `the hotplug lock helper (pid ${pid ?? '?'}) died while a call held ${path}: the lock was free until taken again`;
    void this.helper!.lock(path, 60_000).then(
      () => this.onLost(`${what}; taken again`),
      (e: unknown) => this.onLost(`${what}; taking it again failed: ${e instanceof Error ? e.message : String(e)}`),
    );
  }

  private closed = false;

  /** The daemon stops: the helper goes, and nobody takes the lock through this any more. */
  close(): void {
    this.closed = true;
    this.helper?.close();
  }

  /** The lock helper's process, when one runs (tests). */
  get helperPid(): number | undefined {
    return this.helper?.pid;
  }

  /** Waiting callers (for status). */
  get waiting(): number {
    return this.queue.length;
  }

  /** Whether a caller holds (or is taking) the lock. */
  get held(): boolean {
    return this.busy;
  }

  async acquire(name: string, options: HotplugLockOptions = {}): Promise<HeldHotplugLock> {
    if (this.closed) throw new XennetError('refused', 'the daemon is stopping; it takes no hotplug lock any more');
    await this.turn(options);
    if (this.closed) {
      this.next();
      throw new XennetError('refused', 'the daemon is stopping; it takes no hotplug lock any more');
    }
    try {
      // At the head of the queue the wait is not cut short by the caller's signal: the helper
      // would have to be killed to stop it mid-flock (and every caller behind would lose it).
      // A caller that stopped waiting meanwhile gets the lock and lets it go at once.
      const { signal, ...rest } = options;
      const held = this.helper ? await this.viaHelper(name, rest) : await acquireHotplugLock(name, { ...options, ...(this.dir === undefined ? {} : { dir: this.dir }) });
      if (signal?.aborted) {
        held.release();
        throw new XennetError('internal', 'stopped waiting for the hotplug lock');
      }
      let released = false;
      return {
        path: held.path,
        release: () => {
          if (released) return;
          released = true;
          held.release();
          this.next();
        },
      };
    } catch (e) {
      this.next();
      throw e;
    }
  }

  private async viaHelper(name: string, options: HotplugLockOptions): Promise<HeldHotplugLock> {
    const helper = this.helper!;
    const dir = this.dir ?? hotplugLockDir(options.env);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, name);
    const deadline = options.deadline ?? Deadline.in(60_000);
    const started = Date.now();
    try {
      await helper.lock(path, Math.max(1, deadline.remainingMs()), options.signal);
    } catch (e) {
      if (e instanceof XennetError && e.code === 'timeout') throw gaveUp(path, Date.now() - started);
      throw e;
    }
    return { path, release: () => void helper.unlock().catch(() => helper.close()) };
  }

  private turn(options: HotplugLockOptions): Promise<void> {
    if (!this.busy) {
      this.busy = true;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const deadline = options.deadline ?? Deadline.in(60_000);
      const w: Waiter = {
        start: () => {
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        cancel: (e) => {
          clearTimeout(timer);
          const i = this.queue.indexOf(w);
          if (i >= 0) this.queue.splice(i, 1);
          reject(e);
        },
      };
      const onAbort = (): void => w.cancel(new XennetError('internal', 'stopped waiting for the hotplug lock'));
      const timer = setTimeout(() => w.cancel(new XennetError('timeout', 'waiting for the hotplug lock: the daemon\'s queue did not move in time')), deadline.remainingMs());
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(w);
    });
  }

  private next(): void {
    const w = this.queue.shift();
    if (w) w.start();
    else this.busy = false;
  }
}
