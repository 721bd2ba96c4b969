/** The daemon's resident lock helper: answers matched to their questions, whatever was killed before. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlockHelper } from '../../src/sys/flock-helper.js';
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
});
