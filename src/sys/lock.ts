/**
 * A host-wide exclusive lock on a file in the state directory, so that two xennet commands never
 * change the same bridge at once. The lock file holds the owner's pid; a lock whose owner is dead
 * (crashed, killed) is taken over.
 */
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { XennetError } from './errors.js';
import { pidAlive, readPidFile } from './process.js';


function tryCreate(path: string): boolean {
  try {
    const fd = openSync(path, 'wx', 0o644);
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

export interface HeldLock {
  release(): void;
}

/** Takes the lock, waiting up to `timeoutMs` for a live owner to finish. */
export async function acquireLock(path: string, timeoutMs = 30_000): Promise<HeldLock> {
  mkdirSync(dirname(path), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (tryCreate(path)) {
      return { release: () => rmSync(path, { force: true }) };
    }
    const owner = readPidFile(path);
    if (owner === undefined || !pidAlive(owner)) {
      rmSync(path, { force: true }); // stale: its owner died
      continue;
    }
    if (Date.now() >= deadline) {
      throw new XennetError('locked', `another xennet (pid ${owner}) holds ${path}`, {
        hint: 'wait for it to finish; if no such process exists, remove the lock file',
      });
    }
    await sleep(50);
  }
}
