/** Pid files and liveness: a pid file that names no process never turns into a process group. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandOf, pidAlive, pidInFile, processEnded, processStartTime, readPidFile, runsSubcommand, runsThisProgram } from '../../src/sys/process.js';
import { run, start } from '../../src/sys/exec.js';

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

  it('only a regular file, not through a link, and only its first bytes: a FIFO does not block, /dev/zero does not fill memory', async function () {
    const dir = mkdtempSync(join(tmpdir(), 'xnt-pid-'));
    try {
      assert.equal((await run('mkfifo', [join(dir, 'fifo.pid')])).code, 0);
      assert.equal(readPidFile(join(dir, 'fifo.pid')), undefined, 'a FIFO (nobody writes to it)');
      symlinkSync('/dev/zero', join(dir, 'zero.pid'));
      assert.equal(readPidFile(join(dir, 'zero.pid')), undefined, 'a link to /dev/zero');
      writeFileSync(join(dir, 'real.pid'), `${process.pid}\n`);
      symlinkSync(join(dir, 'real.pid'), join(dir, 'link.pid'));
      assert.equal(readPidFile(join(dir, 'link.pid')), undefined, 'a link to a good pid file');
      writeFileSync(join(dir, 'long.pid'), `${process.pid}${' '.repeat(64)}\n`);
      assert.equal(readPidFile(join(dir, 'long.pid')), undefined, 'longer than any pid file of ours');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a process named by a pid file is taken for xennet\'s daemon only when it runs this very program with `daemon`', async function () {
    const dir = mkdtempSync(join(tmpdir(), 'xnt-pid-'));
    const decoyScript = join(dir, 'main.js');
    writeFileSync(decoyScript, 'setTimeout(() => undefined, 30000);\n');
    const decoy = start(process.execPath, ['--max-semi-space-size=2', decoyScript, 'daemon']);
    try {
      await new Promise((r) => setTimeout(r, 300));
      const pid = decoy.pid!;
      assert.equal(runsSubcommand(pid, 'daemon'), true, 'it does run a `daemon`');
      assert.equal(runsThisProgram(pid, 'daemon', '/usr/lib/xennet/dist/src/cli/main.js'), false, 'a decoy `node main.js daemon` is not xennet');
      assert.equal(runsThisProgram(pid, 'daemon', decoyScript), true, 'control: the same script, after a node option');
      assert.equal(runsThisProgram(pid, 'status', decoyScript), false, 'another subcommand');
      assert.match(commandOf(pid), /main\.js daemon$/, 'its command line, for a note');
    } finally {
      decoy.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a process has ended when its /proc entry is gone, names another start, or is a zombie (killed, not reaped); not while it lives', async function () {
    const own = processStartTime(process.pid)!;
    assert.equal(processEnded(process.pid, own), false);
    assert.equal(processEnded(process.pid, `${own}1`), true, 'another process by now');
    assert.equal(processEnded(2 ** 22 + 17, own), true, 'gone');
    // A child of `sleep`, which never reaps it: a zombie while sleep lives.
    const parent = start('sh', ['-c', 'sleep 0 & echo $!; exec sleep 5']);
    try {
      const pid = await new Promise<number>((resolve) => parent.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
      let ended = false;
      for (let i = 0; i < 100 && !ended; i++) {
        await new Promise((r) => setTimeout(r, 20));
        ended = processEnded(pid, processStartTime(pid) ?? 'x');
      }
      assert.ok(ended, 'the zombie has ended');
      assert.ok(processStartTime(pid) !== undefined, 'though its /proc entry is there');
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
