/** The state directory's locks: flock for commands (one holder, released by the kernel at its death); the daemon's pid file. */
import assert from 'node:assert/strict';
import { linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { currentBootId } from '../../src/sys/boot.js';
import { acquireLock, lockHolder, refusedLockPaths, tryAcquireLock } from '../../src/sys/lock.js';
import { flockedIn, flockListed, mountDevice } from '../../src/sys/flock.js';
import { refusedLockProblems } from '../../src/status/layout-findings.js';
import { run, start } from '../../src/sys/exec.js';

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('state lock', function () {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'xnt-lock-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('names its holder (pid and boot) while held, and is empty once released; the file stays, and holds nothing', async function () {
    const path = join(dir, 'a.lock');
    const held = await acquireLock(path, 100);
    assert.equal(readFileSync(path, 'utf8'), `${process.pid} ${currentBootId()}\n`);
    assert.equal(lockHolder(path), process.pid);
    assert.deepEqual(readdirSync(dir), ['a.lock']);
    held.release();
    held.release();
    assert.deepEqual(readdirSync(dir), ['a.lock']);
    assert.equal(readFileSync(path, 'utf8'), '');
    assert.equal(lockHolder(path), undefined);
    // What a file says is no lock: a pid, live or not, of this boot or another, is taken at once.
    for (const text of [`${process.pid} ${currentBootId()}\n`, '1\n', '1073741823\n', 'garbage']) {
      writeFileSync(path, text);
      assert.equal(lockHolder(path), undefined, text);
      (await acquireLock(path, 100)).release();
    }
  });

  it('waits for its holder and names it; a holder killed while it holds it (kill -9) lets the next in at once', async function () {
    this.timeout(20_000);
    const path = join(dir, 'b.lock');
    const first = await acquireLock(path, 100);
    const t0 = Date.now();
    await assert.rejects(acquireLock(path, 300), new RegExp(`another xennet \\(pid ${process.pid}\\) holds`));
    assert.ok(Date.now() - t0 >= 250, 'it waited');
    const waiting = acquireLock(path, 5000);
    await new Promise((r) => setTimeout(r, 200));
    first.release();
    (await waiting).release();
    // Another process holds it (flock(1) keeps its descriptor while its command runs), then is killed.
    const holder = start('flock', ['--close', path, 'sleep', '60']);
    try {
      await until(() => lockHolder(path) === holder.pid);
      await assert.rejects(acquireLock(path, 200), new RegExp(`another xennet \\(pid ${holder.pid}\\) holds`));
      holder.kill('SIGKILL');
      const taken = await acquireLock(path, 5000);
      assert.equal(lockHolder(path), process.pid);
      taken.release();
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('a link, a FIFO or a directory at its place is refused, with what to do: never followed, written, waited on or removed', async function () {
    const path = join(dir, 'c.lock');
    const target = join(dir, 'target');
    writeFileSync(target, 'keep');
    const refused = (what: string) => (e: unknown): boolean => e instanceof Error && e.message === `the lock ${path} is ${what}, not a lock file: nothing was changed` && (e as { hint?: string }).hint === `remove it (\`rm -r ${path}\`): xennet makes the lock file again`;
    symlinkSync(target, path);
    await assert.rejects(acquireLock(path, 300), refused('a symbolic link'));
    assert.ok(lstatSync(path).isSymbolicLink());
    rmSync(path);
    assert.equal((await run('mkfifo', [path])).code, 0);
    await assert.rejects(acquireLock(path, 300), refused('a FIFO'));
    assert.ok(lstatSync(path).isFIFO());
    rmSync(path);
    mkdirSync(path);
    await assert.rejects(acquireLock(path, 300), refused('a directory'));
    rmSync(path, { recursive: true });
    assert.equal(readFileSync(target, 'utf8'), 'keep', 'nothing written through a link');
    (await acquireLock(path, 300)).release();
    assert.deepEqual(refusedLockPaths(dir), [], 'a lock file is no refused path');
  });

  it('a lock file with other names (a backup made with hard links, a temporary name a crash left) is locked all the same, its content left as it is', async function () {
    const path = join(dir, 'e.lock');
    writeFileSync(path, '');
    linkSync(path, join(dir, 'backup-e.lock'));
    const held = await acquireLock(path, 300);
    await assert.rejects(acquireLock(path, 300), /another xennet .*holds/);
    held.release();
    assert.equal(readFileSync(join(dir, 'backup-e.lock'), 'utf8'), '', 'nothing written into the other name');
    (await acquireLock(path, 300)).release();
  });

  it('status names what is at a lock path that no lock can be taken on, and what it keeps from working', async function () {
    mkdirSync(join(dir, 'learned.lock'));
    assert.equal((await run('mkfifo', [join(dir, 'takeover-xenbr0.lock')])).code, 0);
    writeFileSync(join(dir, 'takeover-xenbr1.lock'), '');
    symlinkSync('/etc/passwd', join(dir, 'takeover-xenbr2.lock'));
    const refusedNow = refusedLockPaths(dir);
    assert.deepEqual(refusedNow, [
      { path: join(dir, 'learned.lock'), what: 'a directory' },
      { path: join(dir, 'takeover-xenbr0.lock'), what: 'a FIFO' },
      { path: join(dir, 'takeover-xenbr2.lock'), what: 'a symbolic link' },
    ]);
    assert.deepEqual(refusedLockProblems(refusedNow.slice(0, 2)), [
      `${dir}/learned.lock is a directory, not a lock file: no learned address is bound or ended (the daemon logs each failure); remove it (\`rm -r ${dir}/learned.lock\`): xennet makes the lock file again`,
      `${dir}/takeover-xenbr0.lock is a FIFO, not a lock file: \`xennet bridge start\` and \`stop\` of xenbr0 refuse to run; remove it (\`rm -r ${dir}/takeover-xenbr0.lock\`): xennet makes the lock file again`,
    ]);
  });

  it('a held lock is found in /proc/locks by the device of the file\'s mount too (btrfs: a subvolume\'s own device is not the one listed), when a descriptor of the file holds it (inode numbers repeat across subvolumes)', function () {
    const mountinfo = ['22 27 0:21 / /proc rw,relatime - proc proc rw', '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw', '90 27 0:40 /@/var /var rw,relatime - btrfs /dev/loop0 rw,subvol=/@/var', '91 90 0:41 / /var/lib/my\\040dir rw - tmpfs tmpfs rw'].join('\n');
    assert.deepEqual(mountDevice('/var/lib/xennet/learned.lock', mountinfo), { major: 0n, minor: 40n });
    assert.deepEqual(mountDevice('/var/lib/my dir/x.lock', mountinfo), { major: 0n, minor: 41n });
    assert.deepEqual(mountDevice('/variant/x', mountinfo), { major: 254n, minor: 0n });
    const locks = '1: FLOCK  ADVISORY  WRITE 1000 00:28:257 0 EOF\n2: -> FLOCK  ADVISORY  WRITE 1001 00:2a:300 0 EOF\n';
    assert.equal(flockListed(locks, 257n, [{ major: 0n, minor: 0x29n }]), false, 'the subvolume\'s device alone');
    assert.equal(flockListed(locks, 257n, [{ major: 0n, minor: 0x29n }, { major: 0n, minor: 0x28n }]), true, 'and the mount\'s');
    assert.equal(flockListed(locks, 300n, [{ major: 0n, minor: 0x2an }]), false, 'a waiter holds nothing');
    assert.equal(flockListed(locks, 258n, [{ major: 0n, minor: 0x28n }]), false);
    // A file in subvolume /var (its own device 0:41) whose inode number a locked file of the
    // filesystem (0:40, /proc/locks' 00:28) has too: held only when a descriptor of it holds it.
    const file = { locks, mountinfo: () => mountinfo, path: '/var/lib/xennet/learned.lock', dev: 41n, ino: 257n };
    assert.equal(flockedIn({ ...file, held: () => true }), true, 'listed by the mount\'s device, and held by a descriptor of it');
    assert.equal(flockedIn({ ...file, held: () => false }), false, 'another subvolume\'s file of the same inode number');
    assert.equal(flockedIn({ ...file, dev: 40n, held: () => false }), true, 'listed by its own device (ext4, xfs): no more to look at');
  });

  it('the daemon\'s lock (a pid file): a stale one whose takeover guard has a live holder is named, never spun on; a guard or a lock that is a directory goes', async function () {
    const path = join(dir, 'd.lock');
    writeFileSync(path, '1073741823\n'); // stale
    writeFileSync(`${path}.takeover`, `${process.pid}\t${currentBootId()}\n`); // a live holder (any blank between)
    assert.throws(() => tryAcquireLock(path), (e: unknown) => e instanceof Error && e.message === `${path} is stale, and could not be taken over: ${path}.takeover is held`);
    rmSync(`${path}.takeover`);
    mkdirSync(`${path}.takeover`);
    const taken = tryAcquireLock(path);
    assert.ok('release' in taken);
    taken.release();
    mkdirSync(path);
    writeFileSync(join(path, 'x'), '');
    const again = tryAcquireLock(path);
    assert.ok('release' in again);
    again.release();
    assert.deepEqual(readdirSync(dir), []);
    // A lock of an earlier boot names nobody, though its pid runs now.
    const earlier = currentBootId().replace(/^./, (c) => (c === '0' ? '1' : '0'));
    writeFileSync(path, `${process.pid} ${earlier}\n`);
    const over = tryAcquireLock(path, () => true);
    assert.ok('release' in over);
    over.release();
  });

  it('one holder at a time, also when several race for it, a lock file of a dead holder there', async function () {
    this.timeout(60_000);
    const racer = fileURLToPath(new URL('./lib/lock-racer.js', import.meta.url));
    for (let round = 0; round < 8; round++) {
      const path = join(dir, `race${round}.lock`);
      const log = join(dir, `race${round}.log`);
      writeFileSync(path, '1073741823\n'); // a pid nobody has: stale
      writeFileSync(log, '');
      const startAt = Date.now() + 400;
      const racers = await Promise.all(Array.from({ length: 5 }, () => run(process.execPath, [racer, path, log, String(startAt)], { timeoutMs: 30_000 })));
      for (const r of racers) assert.equal(r.code, 0, r.stderr);
      const events = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' ') as [string, string]).map(([k, t]) => [Number(t), k === 'enter' ? 1 : -1] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      let holders = 0;
      for (const [, d] of events) {
        holders += d;
        assert.ok(holders <= 1, `round ${round}: two holders at once\n${readFileSync(log, 'utf8')}`);
      }
      assert.equal(events.length, 10);
    }
  });
});
