/** The state directory's pid-file lock: made whole in one step, stale when its owner is gone. */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock } from '../../src/sys/lock.js';

describe('state lock', function () {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'xnt-lock-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('holds its owner\'s pid from the moment it exists, and leaves no file of its making behind', async function () {
    const path = join(dir, 'a.lock');
    const held = await acquireLock(path, 100);
    assert.equal(readFileSync(path, 'utf8'), `${process.pid}\n`);
    assert.deepEqual(readdirSync(dir), ['a.lock']);
    held.release();
    assert.deepEqual(readdirSync(dir), []);
  });

  it('waits for a live owner and says who; takes over one whose owner is gone, or that names nobody', async function () {
    const path = join(dir, 'b.lock');
    writeFileSync(path, '1\n'); // init: alive, and not us (pid files never name 1: read as no pid, so stale)
    const taken = await acquireLock(path, 100);
    taken.release();
    const first = await acquireLock(path, 100);
    await assert.rejects(acquireLock(path, 200), new RegExp(`another xennet \\(pid ${process.pid}\\) holds`));
    first.release();
    writeFileSync(path, '');
    (await acquireLock(path, 100)).release();
  });
});
