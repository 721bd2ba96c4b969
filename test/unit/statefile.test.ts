import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readJson, readJsonTolerant, STATE_FILE_MAX_BYTES, writeJsonAtomic, writeJsonFilesAtomic } from '../../src/sys/statefile.js';
import { readBindings } from '../../src/firewall/learning/state.js';
import type { Logger } from '../../src/sys/log.js';
import { run } from '../../src/sys/exec.js';
import { journalPath, readHookCalls, recordHookCall } from '../../src/hooks/hook-journal.js';
import { readJournal, recordedSpecs } from '../../src/bridge/journal.js';
import { mkdirSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';

describe('state files', () => {
  it('only a regular file of a sane size is read: a directory, a link (to /dev/zero, say) or a huge file is corrupt, not an error and not read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xnt-read-'));
    try {
      const at = (n: string): string => join(dir, n);
      writeFileSync(at('ok.json'), '{"a":1}');
      assert.deepEqual(readJsonTolerant(at('ok.json')), { kind: 'ok', value: { a: 1 } });
      assert.deepEqual(readJsonTolerant(at('none.json')), { kind: 'missing' });
      mkdirSync(at('dir.json'));
      assert.deepEqual(readJsonTolerant(at('dir.json')), { kind: 'corrupt', reason: 'it is not a regular file' });
      symlinkSync('/dev/zero', at('zero.json'));
      assert.deepEqual(readJsonTolerant(at('zero.json')), { kind: 'corrupt', reason: 'it is a symbolic link, not a file xennet wrote' });
      symlinkSync(at('ok.json'), at('link.json'));
      assert.equal(readJsonTolerant(at('link.json')).kind, 'corrupt', 'a link to a good file is not followed either');
      writeFileSync(at('huge.json'), '{}');
      truncateSync(at('huge.json'), STATE_FILE_MAX_BYTES + 1); // sparse: nothing written
      assert.deepEqual(readJsonTolerant(at('huge.json')), { kind: 'corrupt', reason: `it is larger than ${STATE_FILE_MAX_BYTES} bytes` });
      // A UNIX socket (open fails with ENXIO).
      const server = createServer();
      await new Promise<void>((r) => server.listen(at('socket.json'), r));
      try {
        assert.deepEqual(readJsonTolerant(at('socket.json')), { kind: 'corrupt', reason: 'it is not a regular file' });
      } finally {
        await new Promise((r) => server.close(r));
      }
      assert.equal(readJsonTolerant(at('ok.json')).kind, 'ok', 'the control');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a filesystem nearly full: a state file that does not fit is not renamed into place cut short, and the old one stays whole (root: a 64 KiB tmpfs)', async function () {
    if (process.getuid?.() !== 0) this.skip();
    const dir = mkdtempSync(join(tmpdir(), 'xnt-full-'));
    if ((await run('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'xnt-full', dir])).code !== 0) this.skip();
    try {
      const path = join(dir, 'index.json');
      writeJsonAtomic(path, { vifs: { a: 1 } });
      // Leave about 20 KiB: a 45 KB file then gets a short first write, and ENOSPC after it.
      writeFileSync(join(dir, 'ballast'), Buffer.alloc(40 * 1024));
      const big = { vifs: Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`vif${i}.0`, 'x'.repeat(20)])) };
      assert.ok(JSON.stringify(big, null, 2).length > 45_000);
      assert.throws(() => writeJsonAtomic(path, big), /ENOSPC|no progress/);
      assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { vifs: { a: 1 } }, 'the old file, whole');
      // The record of hook calls: a line that does not fit spoils itself only: the next one, once there is room, is whole.
      rmSync(join(dir, 'ballast'));
      rmSync(join(dir, `index.json.tmp-${process.pid}`), { force: true });
      writeFileSync(join(dir, 'ballast'), Buffer.alloc(52 * 1024 + 100));
      const env = { XENNET_STATE_DIR: dir };
      const rec = (m: string) => ({ at: new Date().toISOString(), command: 'online', vif: 'vif1.0', domid: 1, devid: 0, ms: 1, via: 'daemon' as const, ok: true, message: m });
      for (let i = 0; i < 40; i++) recordHookCall(env, rec(`${i} ${'y'.repeat(300)}`));
      rmSync(join(dir, 'ballast'));
      recordHookCall(env, rec('after'));
      const text = readFileSync(journalPath(env), 'utf8');
      const lines = text.split('\n').slice(0, -1);
      assert.ok(text.endsWith('\n') && lines.filter((l) => !(l.startsWith('{') && l.endsWith('}'))).length <= 1, 'at most the one cut line');
      assert.equal(readHookCalls(env, () => true, 1)[0]?.message, 'after');
      assert.equal(readHookCalls(env, () => true, 1e9).length, lines.length - lines.filter((l) => !l.endsWith('}')).length);
    } finally {
      await run('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

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
  it("a takeover journal that is a FIFO or a directory is refused at once, not read (bridge start, stop and status hung on a FIFO)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xnt-journal-'));
    try {
      const fifo = join(dir, 'takeover-xenbr0.json');
      assert.equal((await run('mkfifo', [fifo])).code, 0);
      assert.throws(() => readJournal(fifo), /state file .*takeover-xenbr0.json is not a xennet takeover journal \(it is not a regular file\)/);
      mkdirSync(join(dir, 'takeover-xenbr1.json'));
      assert.throws(() => readJournal(join(dir, 'takeover-xenbr1.json')), /not a xennet takeover journal \(it is not a regular file\)/);
      writeFileSync(join(dir, 'takeover-xenbr2.json'), '{"version"');
      assert.throws(() => readJournal(join(dir, 'takeover-xenbr2.json')), /not a xennet takeover journal/);
      assert.equal(readJournal(join(dir, 'takeover-none.json')), undefined);
      // the specs recorded by this boot's journals pass over them all
      assert.deepEqual(recordedSpecs({ XENNET_STATE_DIR: dir }), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('a state file that is a FIFO is refused at once by every reader and replaced by every writer (the learned bindings and the policy cache hung a hook, the daemon and status)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xnt-fifo-'));
    try {
      const learned = join(dir, 'learned.json');
      assert.equal((await run('mkfifo', [learned])).code, 0);
      assert.throws(() => readJson(learned), /state file .*learned.json is not readable as JSON: it is not a regular file/);
      const warnings: string[] = [];
      const log: Logger = { debug: () => {}, info: () => {}, warning: (m: string) => void warnings.push(m), err: () => {} };
      assert.deepEqual(readBindings({ XENNET_STATE_DIR: dir }, log), []);
      assert.match(warnings.join('\n'), /not a regular file; starting with none/);
      // a write that keeps a file holding the same text looks before it reads, too
      writeJsonAtomic(learned, { a: 1 }, { unlessSame: true });
      assert.deepEqual(readJson(learned), { a: 1 });
      const other = join(dir, 'other.json');
      assert.equal((await run('mkfifo', [other])).code, 0);
      await writeJsonFilesAtomic([{ path: other, value: { b: 2 } }]);
      assert.deepEqual(readJson(other), { b: 2 });
      assert.ok(statSync(other).isFile());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
