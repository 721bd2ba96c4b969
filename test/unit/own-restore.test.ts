/** A ruleset monitor's own commits: by pid, and only for a while (pids wrap around). */
import assert from 'node:assert/strict';
import { isOwnRestore, noteOwnPid } from '../../src/firewall/backend.js';

describe('own restores', function () {
  it('are the pids spawned in the last 10 s; an old one is a foreign program that got its pid again', function () {
    noteOwnPid(424242);
    // After the note: its time is at most this (taken before it, a busy machine's millisecond
    // between the two made the 10 s check below land inside the window).
    const now = Date.now();
    assert.equal(isOwnRestore(424242, now), true);
    assert.equal(isOwnRestore(424243, now), false, 'never spawned');
    assert.equal(isOwnRestore(424242, now + 10_001), false, 'an idle daemon: the pid may be anyone\'s by now');
  });
});
