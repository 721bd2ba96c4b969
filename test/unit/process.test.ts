/** Pid files and liveness: a pid file that names no process never turns into a process group. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidAlive, pidInFile, readPidFile } from '../../src/sys/process.js';

describe('pid files', function () {
  it('a pid file holds one decimal pid above 1, a newline allowed', function () {
    assert.equal(pidInFile('1234\n'), 1234);
    assert.equal(pidInFile(' 42 '), 42);
    for (const text of ['', '\n', '0', '1', '-5', '12 34', '0x10', '1e3', '12abc', '99999999999', '1.5', '+7']) {
      assert.equal(pidInFile(text), undefined, JSON.stringify(text));
    }
  });

  it('an empty or missing pid file names no process (Number("") is 0, and kill(0) signals the whole group)', function () {
    const dir = mkdtempSync(join(tmpdir(), 'xnt-pid-'));
    try {
      writeFileSync(join(dir, 'empty.pid'), '');
      assert.equal(readPidFile(join(dir, 'empty.pid')), undefined);
      assert.equal(readPidFile(join(dir, 'missing.pid')), undefined);
      writeFileSync(join(dir, 'self.pid'), `${process.pid}\n`);
      assert.equal(readPidFile(join(dir, 'self.pid')), process.pid);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('pidAlive is never true of 0 or a negative pid (process groups), true of this process', function () {
    assert.equal(pidAlive(0), false);
    assert.equal(pidAlive(-1), false);
    assert.equal(pidAlive(-process.pid), false);
    assert.equal(pidAlive(Number.NaN), false);
    assert.equal(pidAlive(process.pid), true);
  });
});
