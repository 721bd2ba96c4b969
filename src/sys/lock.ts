/**
 * A host-wide exclusive lock on a file in the state directory, so that two xennet commands never
 * change the same bridge at once. The lock file holds the owner's pid; a lock whose owner is dead
 * (crashed, killed) is taken over.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { XennetError } from './errors.js';
import { pidAlive, readPidFile } from './process.js';


/**
 * Creates the lock file with its content in one step: written under a name of its own, then
 * linked into place (a link fails when the name exists). A lock file is never seen empty, so an
 * empty or unreadable one is no half-made lock of a live writer's: it is stale.
 */
function tryCreate(path: string): boolean {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, `${process.pid}\n`, { flag: 'wx', mode: 0o644 });
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
