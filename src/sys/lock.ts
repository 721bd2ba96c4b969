/**
 * Host-wide exclusive locks on files in the state directory.
 *
 * `acquireLock` (two xennet commands never change the same bridge at once; the learned bindings'
 * record and the kernel's elements change together): flock(2) on the lock file, which the kernel
 * grants to one holder at a time and releases when the holder's descriptor closes, at its exit or
 * death, whatever the cause: nothing stale to judge or take over, no pid to trust. The file names
 * its holder (pid and boot) while it is held, for `status` and for the message of a waiter that
 * gives up; it stays when released, empty.
 *
 * `tryAcquireLock` (the daemon's, for its life): a pid file, made whole in one step; a lock whose
 * owner is dead (crashed, killed), or of an earlier boot, is taken over.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, ftruncateSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, rmSync, statSync, writeFileSync, writeSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { currentBootId } from './boot.js';
import { reasonOf, XennetError } from './errors.js';
import { statIdentity } from './file-identity.js';
import { flockDescriptor, flocked, flockHolders } from './flock.js';
import { pidAlive, pidInFile } from './process.js';
import { readRegularFile } from './regular-file.js';

/** A pid, a space, a boot id (36 characters), a newline; and a margin. */
const LOCK_FILE_MAX = 64;

/**
 * A lock file as read: the pid it names (undefined: none), the boot it was taken in (undefined:
 * not said, as by versions before the boot was written), and the identity of the file read.
 * Undefined when there is no regular file there (never followed through a link, never a FIFO).
 */
function readLockFile(path: string): { pid: number | undefined; boot: string | undefined; identity: string } | undefined {
  const file = readRegularFile(path, LOCK_FILE_MAX);
  if (file === undefined) return undefined;
  const m = /^\s*(\S+)(?:\s+(\S+))?\s*$/.exec(file.bytes?.toString('utf8') ?? '');
  return { pid: m ? pidInFile(m[1]!) : undefined, boot: m?.[2], identity: statIdentity(file.stat) };
}

/**
 * The live owner a lock file names (undefined: none). A lock of an earlier boot names nobody,
 * whatever its pid is now: the state directory outlives a reboot, and a command killed with the
 * lock held (a crash, a power cut) leaves it, its pid given to another program since.
 */
function liveOwner(found: { pid: number | undefined; boot: string | undefined }, live: (pid: number) => boolean = pidAlive): number | undefined {
  if (found.pid === undefined || (found.boot !== undefined && found.boot !== currentBootId())) return undefined;
  return live(found.pid) ? found.pid : undefined;
}

/**
 * The pid of the command that holds the lock at `path` now (`acquireLock`'s), if any: read, never
 * taken. Held is what the kernel says (a flock on the file); the holder is the pid the file names
 * when that is a live process of this boot, else (a holder between taking the lock and writing its
 * name) the process whose descriptor holds it.
 */
export function lockHolder(path: string): number | undefined {
  if (!flocked(path)) return undefined;
  const found = readLockFile(path);
  const named = found ? liveOwner(found) : undefined;
  if (named !== undefined) return named;
  try {
    const st = statSync(path, { bigint: true });
    return flockHolders(st.dev, st.ino, 1)[0];
  } catch {
    return undefined;
  }
}

/**
 * Creates the lock file with its content in one step: written under a name of its own, then
 * linked into place (a link fails when the name exists). A lock file is never seen empty, so an
 * empty or unreadable one is no half-made lock of a live writer's: it is stale.
 */
function tryCreate(path: string): boolean {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, `${process.pid} ${currentBootId()}\n`, { flag: 'wx', mode: 0o644 });
  try {
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    rmSync(tmp, { force: true });
  }
}

export interface HeldLock {
  release(): void;
}

/**
 * A lock this process made: released by removing the file only while it still names this process.
 * Should another have taken it meanwhile (the removal of a stale lock is not atomic), a release
 * never removes that other's lock, which would let a third in.
 */
function held(path: string): HeldLock {
  return {
    release: () => {
      const found = readLockFile(path);
      if (found?.pid === process.pid && found.boot === currentBootId()) rmSync(path, { force: true });
    },
  };
}

/** What is at a lock's path when it is no lock file (undefined: a regular file). */
function notALockFile(st: Stats): string | undefined {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  if (!st.isFile()) return 'a device node';
  return undefined;
}

/** What is at a lock's path: nothing, a lock file, or what `acquireLock` refuses (for a status key: it does not change as locks are taken). */
export function lockPathState(path: string): string {
  const st = lstatIfAny(path);
  return st === undefined ? 'none' : (notALockFile(st) ?? 'file');
}

/**
 * The entries of `dir` named `*.lock` that a lock cannot be taken on (`acquireLock` refuses
 * them), with what each is: for `status`, which names them.
 */
export function refusedLockPaths(dir: string): { path: string; what: string }[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.lock'));
  } catch {
    return [];
  }
  return names.sort().flatMap((n) => {
    const path = join(dir, n);
    const st = lstatIfAny(path);
    const what = st && notALockFile(st);
    return what ? [{ path, what }] : [];
  });
}

/**
 * Opens the lock file for flock, made if missing. Whatever else is at its path (a link, a FIFO,
 * a directory, a device) is refused, never opened through or removed: two takers that each
 * removed it could each lock a file of their own.
 */
function openLockFile(path: string): number {
  const refuse = (what: string): XennetError => new XennetError('exec', `the lock ${path} is ${what}, not a lock file: nothing was changed`, { hint: `remove it (\`rm -r ${path}\`): xennet makes the lock file again` });
  const before = lstatIfAny(path);
  const odd = before && notALockFile(before);
  if (odd) throw refuse(odd);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw refuse('a symbolic link');
    throw new XennetError('exec', `cannot open the lock ${path}: ${reasonOf(e)}`);
  }
  const st = fstatSync(fd);
  const replaced = notALockFile(st);
  if (replaced) {
    closeSync(fd);
    throw refuse(replaced);
  }
  return fd;
}

/** Whether `fd` is still the file at `path` (another removed it and maybe made a new one). */
function stillAt(fd: number, path: string): boolean {
  try {
    const a = fstatSync(fd);
    const b = statSync(path);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

/**
 * Takes the lock, waiting up to `timeoutMs` for its holder to finish. One holder at a time, by the
 * kernel's flock; a holder killed while it holds it (kill -9, a crash) lets the next in at once.
 */
export async function acquireLock(path: string, timeoutMs = 30_000): Promise<HeldLock> {
  mkdirSync(dirname(path), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const fd = openLockFile(path);
    let locked: boolean;
    try {
      locked = await flockDescriptor(fd, deadline - Date.now(), `the lock ${path}`);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    if (!locked) {
      closeSync(fd);
      const owner = lockHolder(path);
      throw new XennetError('locked', `another xennet${owner !== undefined ? ` (pid ${owner})` : ''} holds ${path}`, { hint: 'wait for it to finish' });
    }
    // A lock file removed (by hand, or by a version that removed it at release) and made again
    // while this waited: the lock taken is on a file nobody else opens; take the one there now.
    if (!stillAt(fd, path)) {
      closeSync(fd);
      continue;
    }
    // The holder's name is written into a file of one name only: one with others (a backup made
    // with hard links, a temporary name a crash left) is locked all the same, and its other
    // names' content is not ours to change; its holder is then found by its descriptor.
    const named = fstatSync(fd).nlink === 1;
    if (named) {
      ftruncateSync(fd, 0);
      writeSync(fd, `${process.pid} ${currentBootId()}\n`, 0);
    }
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        try {
          if (named) ftruncateSync(fd, 0);
        } finally {
          closeSync(fd);
        }
      },
    };
  }
}

/** A stale lock another waiter's removal of which is under way (or whose guard names a live pid). */
function staleHeld(path: string): XennetError {
  return new XennetError('locked', `${path} is stale, and could not be taken over: ${path}.takeover is held`, { hint: `if no xennet command runs, remove ${path}.takeover` });
}

/**
 * After a read of the lock file found none: it was released meanwhile (and maybe taken again
 * since: a regular file there now is another's fresh lock, never removed here), or something
 * that is no lock file of ours is there (a link, a FIFO): that goes.
 */
function removeIfNoLockFile(path: string): void {
  const st = lstatIfAny(path);
  if (st && !st.isFile()) rmSync(path, { force: true, recursive: st.isDirectory() });
}

function lstatIfAny(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Takes the lock now, or names its live owner: `live` says whether the pid a lock file names
 * still holds it (a dead one does not; nor, for a lock held for a process's life, one whose pid
 * the kernel gave to another program). A lock file that names nobody live is stale, and goes.
 */
export function tryAcquireLock(path: string, live: (pid: number) => boolean = pidAlive): HeldLock | { owner: number } {
  mkdirSync(dirname(path), { recursive: true });
  let guardHeld = false;
  for (let attempt = 0; attempt < 10; attempt++) {
    if (tryCreate(path)) return held(path);
    const found = readLockFile(path);
    if (found === undefined) {
      removeIfNoLockFile(path);
      continue;
    }
    const owner = liveOwner(found, live);
    if (owner !== undefined) return { owner };
    guardHeld = !removeIfStill(path, found.identity);
  }
  if (guardHeld) throw staleHeld(path);
  throw new XennetError('locked', `could not take ${path}: others took and left it too often`, { hint: 'try again' });
}

/**
 * Removes a stale lock file, if it is still the very file found stale: two waiters that both
 * found it stale must not remove the fresh lock a third made meanwhile. Under a guard of its own
 * (held for a moment; one its holder died in, or that is no lock file, is stale too), the file's
 * identity is read again. False when the guard has a live holder (another waiter's removal is
 * under way): the caller waits, as for a live owner; true when it may look again at once.
 */
function removeIfStill(path: string, identity: string): boolean {
  const guard = `${path}.takeover`;
  if (!tryCreate(guard)) {
    const g = readLockFile(guard);
    if (g === undefined) {
      removeIfNoLockFile(guard);
      return true;
    }
    if (liveOwner(g) !== undefined) return false;
    if (readLockFile(guard)?.identity === g.identity) rmSync(guard, { force: true });
    return true;
  }
  try {
    if (readLockFile(path)?.identity === identity) rmSync(path, { force: true });
  } finally {
    rmSync(guard, { force: true });
  }
  return true;
}
