/** The daemon's resident lock helper: answers matched to their questions, whatever was killed before. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlockHelper } from '../../src/sys/flock-helper.js';
import { DaemonLock } from '../../src/daemon/lock.js';
import { run, start } from '../../src/sys/exec.js';

describe('the hotplug lock helper', function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'xnt-flock-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a wait cut short kills its helper; the next lock is answered by the next helper, not given the killed one\'s answer or its exit', async function () {
    if (!FlockHelper.available()) this.skip();
    const busy = join(dir, 'busy');
    const holder = start('flock', [busy, 'sleep', '3']);
    try {
      // Held by another process (as Xen's scripts would).
      for (let i = 0; i < 100 && (await run('flock', ['-n', busy, 'true'])).code === 0; i++) await new Promise((r) => setTimeout(r, 20));
      const helper = new FlockHelper();
      try {
        for (let round = 0; round < 3; round++) {
          const stop = new AbortController();
          const waiting = helper.lock(busy, 10_000, stop.signal);
          setTimeout(() => stop.abort(), 100);
          await assert.rejects(waiting, /stopped waiting for the hotplug lock/);
          // At once: a free lock, asked of the helper whose predecessor was just killed.
          const t0 = Date.now();
          await helper.lock(join(dir, `free${round}`), 2000);
          assert.ok(Date.now() - t0 < 1500, 'answered by its own helper');
          assert.equal((await run('flock', ['-n', join(dir, `free${round}`), 'true'])).code, 1, 'and held');
          await helper.unlock();
          assert.equal((await run('flock', ['-n', join(dir, `free${round}`), 'true'])).code, 0, 'let go');
        }
      } finally {
        helper.close();
      }
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('a helper killed while the lock is held is noticed: the daemon\'s lock says so and takes the lock again until its holder lets go', async function () {
    if (!FlockHelper.available()) this.skip();
    const told: string[] = [];
    const lock = new DaemonLock(dir, (what) => told.push(what));
    const path = join(dir, 'iptables');
    const isFree = async (): Promise<boolean> => (await run('flock', ['-n', path, 'true'])).code === 0;
    try {
      const held = await lock.acquire('iptables');
      assert.equal(await isFree(), false, 'held');
      const pid = lock.helperPid;
      assert.ok(pid !== undefined);
      process.kill(pid, 'SIGKILL');
      for (let i = 0; i < 200 && told.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(told.length, 1, 'told once');
      assert.match(told[0]!, new RegExp(`the hotplug lock helper \\(pid ${pid}\\) died while a call held .*iptables: the lock was free until taken again; taken again`));
      assert.equal(lock.lostCount, 1);
      assert.equal(await isFree(), false, 'held again by a new helper');
      assert.notEqual(lock.helperPid, pid);
      held.release();
      for (let i = 0; i < 200 && !(await isFree()); i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(await isFree(), true, 'let go at the holder\'s release');
      // A helper that dies with nothing held (after the release) loses nothing: nothing is retaken.
      process.kill(lock.helperPid!, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(told.length, 1);
      assert.equal(await isFree(), true);
    } finally {
      lock.close();
    }
  });
});
