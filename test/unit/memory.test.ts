/** The daemon runs a full collection after a peak, when nothing is in flight (memory.ts). */
import assert from 'node:assert/strict';
import { MemoryKeeper } from '../../src/daemon/memory.js';

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
    const keeper = new MemoryKeeper(() => idle);
    const kept: number[][] = [];
    for (let i = 0; i < 40; i++) kept.push(Array.from({ length: 100_000 }, (_, k) => k + i));
    keeper.check();
    assert.equal(runs, 0, 'a call is in flight');
    idle = true;
    keeper.check();
    assert.equal(runs, 1);
    keeper.check();
    assert.equal(runs, 1, 'no growth since');
    assert.deepEqual(keeper.state(), { collections: 1, available: true });
    assert.equal(kept.length, 40);
  });

  it('a daemon that is never idle collects too, once the heap grew by 48 MiB', function () {
    let runs = 0;
    g.gc = () => {
      runs++;
    };
    const keeper = new MemoryKeeper(() => false);
    // Doubles: 8 bytes each, on V8's heap.
    const mib = (n: number): number[] => new Array<number>((n * 1024 * 1024) / 8).fill(1.5);
    const kept = [mib(24)];
    keeper.check();
    assert.equal(runs, 0, '24 MiB while busy: not yet');
    kept.push(mib(32));
    keeper.check();
    assert.equal(runs, 1, '56 MiB while busy: collected');
    assert.equal(kept.length, 2);
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
