/**
 * flock(2) for a process that has no such call: Node has none, so util-linux's flock(1) locks
 * *our* descriptor, passed to it as fd 3. A flock belongs to the open file description, which this
 * process keeps open after flock(1) exits: the lock is ours until we close the descriptor, and the
 * kernel releases it when we die, whatever kills us. Who holds a lock is read from /proc.
 */
import { readFileSync, statSync } from 'node:fs';
import { XennetError, reasonOf } from './errors.js';
import { run } from './exec.js';
import { otherProcessDescriptors } from './process.js';

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

/** Whether a flock is granted on the file at `path` now (/proc/locks; waiters, shown with `->`, hold nothing). */
export function flocked(path: string): boolean {
  let st;
  let locks: string;
  try {
    st = statSync(path, { bigint: true });
    locks = readFileSync('/proc/locks', 'utf8');
  } catch {
    return false;
  }
  // "1: FLOCK  ADVISORY  WRITE 4242 fe:00:2146681 0 EOF": the device as major:minor in hex.
  const major = ((st.dev >> 8n) & 0xfffn) | ((st.dev >> 32n) & ~0xfffn);
  const minor = (st.dev & 0xffn) | ((st.dev >> 12n) & ~0xffn);
  const id = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${st.ino}`;
  return locks.split('\n').some((l) => /^\d+: FLOCK\s/.test(l) && l.split(/\s+/)[5] === id);
}

/**
 * The processes whose open file on (dev, ino) holds a flock (/proc/PID/fdinfo lists the locks a
 * descriptor's open file holds; waiters show "->"), at most `max`. flock(1) exits once it has the
 * lock, so the holder is the process that keeps the descriptor, not the pid in /proc/locks.
 */
export function flockHolders(dev: bigint, ino: bigint, max = 3): number[] {
  const out: number[] = [];
  for (const d of otherProcessDescriptors() ?? []) {
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
