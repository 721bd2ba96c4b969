/** The state directory's pid-file lock: made whole in one step, stale when its owner is gone. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { currentBootId } from '../../src/sys/boot.js';
import { acquireLock, lockHolder, tryAcquireLock } from '../../src/sys/lock.js';
import { run } from '../../src/sys/exec.js';

describe('state lock', function () {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'xnt-lock-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('holds its owner\'s pid and boot from the moment it exists, and leaves no file of its making behind', async function () {
    const path = join(dir, 'a.lock');
    const held = await acquireLock(path, 100);
    assert.equal(readFileSync(path, 'utf8'), `${process.pid} ${currentBootId()}\n`);
    assert.equal(lockHolder(path), process.pid);
    assert.deepEqual(readdirSync(dir), ['a.lock']);
    held.release();
    assert.deepEqual(readdirSync(dir), []);
    // A release removes its own lock only: never one another holds by now.
    const again = await acquireLock(path, 100);
    writeFileSync(path, `1 ${currentBootId()}\n`);
    again.release();
    assert.equal(readFileSync(path, 'utf8'), `1 ${currentBootId()}\n`);
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

  it('a lock of an earlier boot names nobody, though its pid runs now (given to another program since); one that says no boot is judged by its pid alone', async function () {
    const path = join(dir, 'c.lock');
    const earlier = currentBootId().replace(/^./, (c) => (c === '0' ? '1' : '0'));
    writeFileSync(path, `${process.pid} ${earlier}\n`);
    assert.equal(lockHolder(path), undefined);
    (await acquireLock(path, 100)).release();
    writeFileSync(path, `${process.pid}\n`);
    assert.equal(lockHolder(path), process.pid);
    await assert.rejects(acquireLock(path, 200), /another xennet/);
  });

  it('a stale lock whose takeover guard has a live holder is waited for, then named, never spun on; a guard or a lock that is a directory goes', async function () {
    const path = join(dir, 'd.lock');
    writeFileSync(path, '1073741823\n'); // stale
    writeFileSync(`${path}.takeover`, `${process.pid}\t${currentBootId()}\n`); // a live holder (any blank between)
    const t0 = Date.now();
    await assert.rejects(acquireLock(path, 300), (e: unknown) => e instanceof Error && e.message === `${path} is stale, and could not be taken over: ${path}.takeover is held`);
    assert.ok(Date.now() - t0 < 5000, 'within its time');
    assert.throws(() => tryAcquireLock(path), (e: unknown) => e instanceof Error && e.message === `${path} is stale, and could not be taken over: ${path}.takeover is held`);
    rmSync(`${path}.takeover`);
    mkdirSync(`${path}.takeover`);
    (await acquireLock(path, 300)).release();
    mkdirSync(path);
    writeFileSync(join(path, 'x'), '');
    (await acquireLock(path, 300)).release();
    assert.deepEqual(readdirSync(dir), []);
  });

  it('one holder at a time, also when several take over a stale lock at once', async function () {
    this.timeout(60_000);
    const racer = fileURLToPath(new URL('./lib/lock-racer.js', import.meta.url));
    for (let round = 0; round < 8; round++) {
      const path = join(dir, `race${round}.lock`);
      const log = join(dir, `race${round}.log`);
      writeFileSync(path, '1073741823\n'); // a pid nobody has: stale
      writeFileSync(log, '');
      const startAt = Date.now() + 400;
      const racers = await Promise.all(Array.from({ length: 5 }, () => run(process.execPath, [racer, path, log, String(startAt)], { timeoutMs: 30_000 })));
      for (const r of racers) assert.equal(r.code, 0, r.stderr);
      const events = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' ') as [string, string]).map(([k, t]) => [Number(t), k === 'enter' ? 1 : -1] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      let holders = 0;
      for (const [, d] of events) {
        holders += d;
        assert.ok(holders <= 1, `round ${round}: two holders at once\n${readFileSync(log, 'utf8')}`);
      }
      assert.equal(events.length, 10);
    }
  });
});
