/**
 * The host-wide hotplug lock Xen's own scripts use (`claim_lock` in /etc/xen/scripts/locking.sh):
 * flock(2) on /var/run/xen-hotplug/<name>. Node has no flock, so util-linux's flock(1) takes the
 * lock and holds it while its child (`cat`) runs; xennet owns the critical section between the
 * child echoing a byte back and the child's stdin being closed.
 *
 * Xen releases by unlinking the lock file, so a waiter may end up holding a lock on a deleted
 * inode; like claim_lock, xennet then lets go and tries again on the live file.
 */
import { mkdirSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { XennetError } from './errors.js';
import { start } from './exec.js';

export const HOTPLUG_LOCK_DIR = '/var/run/xen-hotplug';

export interface HotplugLockOptions {
  dir?: string;
  timeoutMs?: number;
}

/** Whether process `pid` holds an open descriptor on the live (not deleted) file `path`. */
function holdsLiveFile(pid: number, path: string): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === path;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

async function acquireOnce(path: string, deadline: number): Promise<{ release(): Promise<void>; live: boolean }> {
  const seconds = Math.max(1, Math.ceil((deadline - Date.now()) / 1000));
  const child = start('flock', ['--exclusive', '--timeout', String(seconds), path, 'cat']);
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  const echoed = new Promise<void>((resolve) => child.stdout?.once('data', () => resolve()));
  child.stdin?.on('error', () => undefined);
  child.stdin?.write('L');
  const first = await Promise.race([echoed.then(() => 'locked' as const), exited]);
  if (first !== 'locked') {
    throw new XennetError('locked', `could not take the hotplug lock ${path} within ${seconds} s (flock exit ${first})`, {
      hint: 'another hotplug script holds it; look for a hung vif or block script',
    });
  }
  const release = async (): Promise<void> => {
    child.stdin?.end();
    await exited;
  };
  return { release, live: child.pid !== undefined && holdsLiveFile(child.pid, path) };
}

/** Runs `fn` while holding the named hotplug lock (e.g. `iptables`, shared with Xen's scripts). */
export async function withHotplugLock<T>(name: string, fn: () => Promise<T>, options: HotplugLockOptions = {}): Promise<T> {
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new XennetError('internal', `bad lock name ${name}`);
  const dir = options.dir ?? (process.env['XENNET_HOTPLUG_LOCK_DIR'] || HOTPLUG_LOCK_DIR);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    const held = await acquireOnce(path, deadline);
    if (!held.live) {
      await held.release(); // the file was unlinked under us (Xen's release): retry on the new one
      continue;
    }
    try {
      return await fn();
    } finally {
      await held.release();
    }
  }
}
