/**
 * The host-wide hotplug lock Xen's own scripts use (`claim_lock` in /etc/xen/scripts/locking.sh):
 * flock(2) on /var/run/xen-hotplug/<name>, taken the way claim_lock takes it:
 *
 *   open the file (O_CREAT) -> flock it -> fstat the descriptor and stat the path -> if device and
 *   inode match, the lock is ours; else (Xen released by unlinking the file) close and try again.
 *
 * Node has no flock(2), so util-linux's flock(1) locks *our* descriptor, passed to it as fd 3:
 * flock locks belong to the open file description, which this process keeps open after flock(1)
 * exits. Releasing is closing the descriptor; a process that dies releases it with its files.
 * Identity is compared by device and inode, never by path text (`/var/run` is a symlink to
 * `/run` on Debian). Every wait is bounded by a deadline.
 */
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Deadline, timeoutError } from './deadline.js';
import { XennetError, reasonOf } from './errors.js';
import { flockDescriptor, flockHolders } from './flock.js';

export const HOTPLUG_LOCK_DIR = '/var/run/xen-hotplug';

export interface HotplugLockOptions {
  /** Lock directory (default $XENNET_HOTPLUG_LOCK_DIR, else /var/run/xen-hotplug). */
  dir?: string;
  /** Give up at this point (default: 60 s from now). */
  deadline?: Deadline;
  env?: NodeJS.ProcessEnv;
  /** Stop waiting (the lock is no longer needed). */
  signal?: AbortSignal;
}

export interface HeldHotplugLock {
  path: string;
  release(): void;
}

export function hotplugLockDir(env: NodeJS.ProcessEnv = process.env): string {
  return env['XENNET_HOTPLUG_LOCK_DIR'] || HOTPLUG_LOCK_DIR;
}

function describePid(pid: string): string {
  let comm = '';
  try {
    comm = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((x) => x !== '').slice(0, 3).join(' ');
  } catch {
    /* gone */
  }
  return `pid ${pid}${comm ? ` (${comm.slice(0, 80)})` : ''}`;
}

/** Who holds the flock on `path`, for the message when we give up. */
export function lockHolder(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    const who = flockHolders(st.dev, st.ino).map((pid) => describePid(String(pid)));
    return who.length > 0 ? who.join(', ') : undefined;
  } catch {
    return undefined;
  }
}


function sameFile(fd: number, path: string): boolean {
  const a = fstatSync(fd, { bigint: true });
  try {
    const b = statSync(path, { bigint: true });
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false; // unlinked and not (yet) recreated
  }
}

/** Takes the named hotplug lock (e.g. `iptables`, shared with Xen's scripts). */
export async function acquireHotplugLock(name: string, options: HotplugLockOptions = {}): Promise<HeldHotplugLock> {
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?$/.test(name)) throw new XennetError('internal', `bad lock name ${name}`);
  const dir = options.dir ?? hotplugLockDir(options.env);
  const deadline = options.deadline ?? Deadline.in(60_000);
  const started = Date.now();
  const path = join(dir, name);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 }); // root's: anyone who can open the file can flock it
  } catch (e) {
    throw new XennetError('exec', `cannot create the hotplug lock directory ${dir}: ${reasonOf(e)}`);
  }
  for (;;) {
    if (options.signal?.aborted) throw new XennetError('internal', `stopped waiting for the hotplug lock ${path}`);
    const waitMs = deadline.remainingMs();
    if (waitMs <= 0) throw gaveUp(path, Date.now() - started);
    let fd: number;
    try {
      fd = openSync(path, 'a+', 0o600); // O_RDWR|O_CREAT like `exec 200<>file`, never truncating
    } catch (e) {
      throw new XennetError('exec', `cannot open the hotplug lock ${path}: ${reasonOf(e)}`);
    }
    let locked: boolean;
    try {
      locked = await flockDescriptor(fd, waitMs, `the hotplug lock ${path}`, options.signal);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    if (!locked) {
      closeSync(fd);
      if (options.signal?.aborted) throw new XennetError('internal', `stopped waiting for the hotplug lock ${path}`);
      throw gaveUp(path, Date.now() - started);
    }
    if (sameFile(fd, path)) {
      let released = false;
      return {
        path,
        release: () => {
          if (released) return;
          released = true;
          closeSync(fd);
        },
      };
    }
    closeSync(fd); // the file was unlinked under us (Xen's release_lock): try again on the live one
  }
}

export function gaveUp(path: string, waitedMs: number): XennetError {
  const holder = lockHolder(path);
  return timeoutError(`waiting for the hotplug lock ${path}${holder ? ` (held by ${holder})` : ''}`, waitedMs, 'another hotplug script holds it; look for a hung vif or block script');
}

/** Runs `fn` while holding the named hotplug lock. */
export async function withHotplugLock<T>(name: string, fn: () => Promise<T>, options: HotplugLockOptions = {}): Promise<T> {
  const held = await acquireHotplugLock(name, options);
  try {
    return await fn();
  } finally {
    held.release();
  }
}
