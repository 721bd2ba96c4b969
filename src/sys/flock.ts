/**
 * flock(2) for a process that has no such call: Node has none, so util-linux's flock(1) locks
 * *our* descriptor, passed to it as fd 3. A flock belongs to the open file description, which this
 * process keeps open after flock(1) exits: the lock is ours until we close the descriptor, and the
 * kernel releases it when we die, whatever kills us. Who holds a lock is read from /proc.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { XennetError, reasonOf } from './errors.js';
import { run } from './exec.js';
import { processDescriptors } from './process.js';

/**
 * Locks `fd` exclusively, waiting up to `waitMs`: true once locked, false when the wait ran out
 * (or `signal` stopped it). Other failures (no flock(1)) throw.
 */
export async function flockDescriptor(fd: number, waitMs: number, what: string, signal?: AbortSignal): Promise<boolean> {
  let r;
  try {
    r = await run('flock', ['--exclusive', '--timeout', (Math.max(0, waitMs) / 1000).toFixed(3), '3'], { passFds: [fd], timeoutMs: waitMs + 2000, ...(signal ? { signal } : {}) });
  } catch (e) {
    throw new XennetError('exec', `cannot take ${what}: ${reasonOf(e)}`, { hint: 'flock(1) comes with util-linux; install it' });
  }
  if (signal?.aborted || r.code === 1 || r.timedOut) return false;
  if (r.code !== 0) throw new XennetError('exec', `cannot take ${what}: flock exited ${r.code}${r.stderr.trim() ? ` (${r.stderr.trim()})` : ''}`);
  return true;
}

/** A device number as /proc/locks and /proc/self/mountinfo print it: `major:minor`, hexadecimal and decimal apart. */
function majorMinor(dev: bigint): { major: bigint; minor: bigint } {
  return { major: ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn), minor: (dev & 0xffn) | ((dev >> 12n) & ~0xffn) };
}

/**
 * The device of the filesystem the mount holding `path` is of (/proc/self/mountinfo's
 * `major:minor`, decimal). /proc/locks names a file by that device, which differs from what stat
 * says on btrfs (a subvolume has a device number of its own).
 */
export function mountDevice(path: string, mountinfo: string): { major: bigint; minor: bigint } | undefined {
  let best: { at: string; major: bigint; minor: bigint } | undefined;
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    const dev = /^(\d+):(\d+)$/.exec(f[2] ?? '');
    const at = (f[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (!dev || at === '') continue;
    const under = at === '/' || path === at || path.startsWith(`${at}/`);
    if (under && (best === undefined || at.length >= best.at.length)) best = { at, major: BigInt(dev[1]!), minor: BigInt(dev[2]!) };
  }
  return best && { major: best.major, minor: best.minor };
}

/**
 * Whether a granted lock in /proc/locks' text is on the file of this inode, on a device of these:
 * "1: FLOCK  ADVISORY  WRITE 4242 fe:00:2146681 0 EOF" (waiters, shown with `->`, hold nothing).
 */
export function flockListed(locks: string, ino: bigint, devices: readonly { major: bigint; minor: bigint }[]): boolean {
  const ids = new Set(devices.map((d) => `${d.major.toString(16).padStart(2, '0')}:${d.minor.toString(16).padStart(2, '0')}:${ino}`));
  return locks.split('\n').some((l) => /^\d+: FLOCK\s/.test(l) && ids.has(l.split(/\s+/)[5] ?? ''));
}

/**
 * Whether a flock is granted on the file at `path` now (/proc/locks). On btrfs /proc/locks names
 * the filesystem's device, which its subvolumes share while their inode numbers repeat: a lock
 * listed there is confirmed by a descriptor of this very file that holds it.
 */
export function flocked(path: string): boolean {
  try {
    const st = statSync(path, { bigint: true });
    return flockedIn({ locks: readFileSync('/proc/locks', 'utf8'), mountinfo: () => readFileSync('/proc/self/mountinfo', 'utf8'), path: realpathSync(path), dev: st.dev, ino: st.ino, held: () => flockHolders(st.dev, st.ino, 1, true).length > 0 });
  } catch {
    return false;
  }
}

/** `flocked`, from what it reads: /proc/locks, the mount table, the file (its real path, device, inode) and whether a descriptor of it holds a lock. */
export function flockedIn(f: { locks: string; mountinfo: () => string; path: string; dev: bigint; ino: bigint; held: () => boolean }): boolean {
  if (flockListed(f.locks, f.ino, [majorMinor(f.dev)])) return true;
  const mount = mountDevice(f.path, f.mountinfo());
  return mount !== undefined && flockListed(f.locks, f.ino, [mount]) && f.held();
}

/**
 * The processes (other than this one, unless `includeSelf`) whose open file on (dev, ino) holds a
 * flock (/proc/PID/fdinfo lists the locks a descriptor's open file holds; waiters show "->"), at
 * most `max`. flock(1) exits once it has the lock, so the holder is the process that keeps the
 * descriptor, not the pid in /proc/locks.
 */
export function flockHolders(dev: bigint, ino: bigint, max = 3, includeSelf = false): number[] {
  const out: number[] = [];
  for (const d of processDescriptors(includeSelf) ?? []) {
    if (out.includes(d.pid)) continue;
    try {
      const st = statSync(d.path, { bigint: true });
      if (st.dev !== dev || st.ino !== ino) continue;
      if (/^lock:\s+\d+: FLOCK\s+ADVISORY\s+WRITE/m.test(readFileSync(`/proc/${d.pid}/fdinfo/${d.fd}`, 'utf8'))) out.push(d.pid);
    } catch {
      /* closed meanwhile */
    }
    if (out.length >= max) break;
  }
  return out;
}
