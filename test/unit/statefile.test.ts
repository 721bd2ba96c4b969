import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeJsonAtomic } from '../../src/sys/statefile.js';

describe('state files', () => {
  it('unlessSame: a file that holds the value already is not written again (no new inode, no fsync); another value is', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xnt-statefile-'));
    try {
      const path = join(dir, 'v.json');
      writeJsonAtomic(path, { a: 1 });
      const first = statSync(path).ino;
      writeJsonAtomic(path, { a: 1 }, { unlessSame: true });
      assert.equal(statSync(path).ino, first, 'the same content: left as it is');
      writeJsonAtomic(path, { a: 1 });
      const rewritten = statSync(path).ino;
      assert.notEqual(rewritten, first, 'the control: without unlessSame it is replaced');
      writeJsonAtomic(path, { a: 2 }, { unlessSame: true });
      assert.notEqual(statSync(path).ino, rewritten, 'another value: replaced');
      assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { a: 2 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
