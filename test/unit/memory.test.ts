/** The daemon runs a full collection after a peak, when nothing is in flight (memory.ts). */
import assert from 'node:assert/strict';
import { MemoryKeeper } from '../../src/daemon/memory.js';

const MIB = 1024 * 1024;

describe('memory keeper', function () {
  const g = globalThis as { gc?: () => void };
  const saved = g.gc;
  afterEach(() => {
    g.gc = saved;
  });

  it('collects once the heap grew by 16 MiB and nothing is in flight; not while busy, and not again without new growth', function () {
    let runs = 0;
    g.gc = () => {
      runs++;
    };
    let idle = false;
    // The heap as V8 would report it (V8's own collections would move a real one at any time).
    let heap = 100 * MIB;
    const keeper = new MemoryKeeper(() => idle, () => heap);
    heap += 32 * MIB;
    keeper.check();
    assert.equal(runs, 0, 'a call is in flight');
    idle = true;
    keeper.check();
    assert.equal(runs, 1);
    keeper.check();
    assert.equal(runs, 1, 'no growth since');
    assert.deepEqual(keeper.state(), { collections: 1, available: true });
    heap += 15 * MIB;
    keeper.check();
    assert.equal(runs, 1, '15 MiB: not yet');
    heap += 2 * MIB;
    keeper.check();
    assert.equal(runs, 2, '17 MiB since the last one');
  });

  it('a daemon that is never idle collects too, once the heap grew by 48 MiB', function () {
    let runs = 0;
    g.gc = () => {
      runs++;
    };
    let heap = 100 * MIB;
    const keeper = new MemoryKeeper(() => false, () => heap);
    heap += 24 * MIB;
    keeper.check();
    assert.equal(runs, 0, '24 MiB while busy: not yet');
    heap += 32 * MIB;
    keeper.check();
    assert.equal(runs, 1, '56 MiB while busy: collected');
  });

  it('without --expose-gc it does nothing', function () {
    g.gc = undefined;
    const keeper = new MemoryKeeper(() => true);
    keeper.start();
    keeper.check();
    keeper.stop();
    assert.deepEqual(keeper.state(), { collections: 0, available: false });
  });
});
