/** The daemon's drift watch tells its own nf_tables commits from others' by counting them. */
import assert from 'node:assert/strict';
import { othersCommitted, ownWrite, ownWriteState } from '../../src/firewall/backend.js';

describe('own writes', function () {
  it('a generation that moved by no more than this process committed is its own; by more, or with none, it is another program\'s', function () {
    assert.equal(othersCommitted(10, 10, 0), false, 'nothing moved');
    assert.equal(othersCommitted(10, 11, 1), false, 'one transaction of ours');
    assert.equal(othersCommitted(10, 11, 2), false, 'one of ours had nothing in it (no generation)');
    assert.equal(othersCommitted(10, 11, 0), true, 'another program');
    assert.equal(othersCommitted(10, 13, 2), true, 'another program between two of ours');
    assert.equal(othersCommitted(0xffffffff, 0, 1), false, 'the 32-bit generation wraps');
  });

  it('counts the commits a write reports and the writes in flight, also when one fails', async function () {
    const start = ownWriteState();
    let inside = start;
    await ownWrite(async (committed) => {
      committed();
      committed();
      inside = ownWriteState();
    });
    assert.deepEqual(inside, { inFlight: start.inFlight + 1, commits: start.commits + 2 });
    await assert.rejects(
      ownWrite(async (committed) => {
        committed();
        throw new Error('refused after one transaction');
      }),
      /refused/,
    );
    assert.deepEqual(ownWriteState(), { inFlight: start.inFlight, commits: start.commits + 3 });
  });
});
