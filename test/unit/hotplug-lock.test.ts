/**
 * The hotplug lock against Xen's own `claim_lock`/`release_lock` (/etc/xen/scripts/locking.sh),
 * through a symlinked directory as Debian has it (/var/run -> /run).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Deadline } from '../../src/sys/deadline.js';
import { start } from '../../src/sys/exec.js';
import { acquireHotplugLock, withHotplugLock } from '../../src/sys/hotplug-lock.js';
import { DaemonLock } from '../../src/daemon/lock.js';
import { LineWaiter } from '../netns/lib/lines.js';

const locking = '/etc/xen/scripts/locking.sh';

describe('hotplug lock (flock, as Xen\'s claim_lock takes it)', function () {
  this.timeout(20_000);
  let root: string;
  let viaSymlink: string;
  before(function () {
    if (!existsSync(locking)) this.skip();
  });
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'xnt-lock-'));
    mkdirSync(join(root, 'run'));
    symlinkSync('run', join(root, 'var-run'));
    viaSymlink = join(root, 'var-run', 'xen-hotplug');
  });
  const children: ReturnType<typeof start>[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });

  /** Xen's claim_lock in bash, holding until stdin closes, then release_lock (unlink). */
  function xenHolder(dir: string): { waiter: LineWaiter; release(): void; done: Promise<number> } {
    const child = start('bash', ['-c', `. ${locking}; LOCK_BASEDIR="$1"; claim_lock iptables; echo held; read x; release_lock iptables; echo released`, 'xen', dir]);
    children.push(child);
    const done = new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
    return { waiter: new LineWaiter(child), release: () => child.stdin?.end('\n'), done };
  }

  it('takes the lock through a symlinked path (the /var/run -> /run case that hung forever)', async () => {
    const t0 = Date.now();
    const held = await acquireHotplugLock('iptables', { dir: viaSymlink, deadline: Deadline.in(5000) });
    held.release();
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
  });

  it('excludes Xen\'s claim_lock both ways, and survives Xen\'s release-by-unlink', async () => {
    const xen = xenHolder(join(root, 'run', 'xen-hotplug'));
    await xen.waiter.waitFor('held');
    let ours = false;
    const p = withHotplugLock('iptables', async () => {
      ours = true;
    }, { dir: viaSymlink, deadline: Deadline.in(10_000) });
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(ours, false, 'waits while Xen holds it');
    xen.release();
    await xen.waiter.waitFor('released');
    await p;
    assert.equal(ours, true);
    // Now we hold it; Xen waits for us.
    const held = await acquireHotplugLock('iptables', { dir: viaSymlink, deadline: Deadline.in(5000) });
    const xen2 = xenHolder(join(root, 'run', 'xen-hotplug'));
    await new Promise((r) => setTimeout(r, 700));
    await assert.rejects(xen2.waiter.waitFor('held', 10), /no line/);
    held.release();
    await xen2.waiter.waitFor('held', 5000);
    xen2.release();
    assert.equal(await xen2.done, 0);
  });

  it('creates the lock directory 0700 and the file 0600: a user who can open the file could hold it (flock needs only a read descriptor)', async () => {
    for (const [label, take] of [
      ['in-process', (dir: string) => acquireHotplugLock('iptables', { dir, deadline: Deadline.in(5000) })],
      ['daemon', async (dir: string) => {
        const lock = new DaemonLock(dir);
        const held = await lock.acquire('iptables', { deadline: Deadline.in(5000), env: { XENNET_HOTPLUG_LOCK_DIR: dir } });
        return { ...held, release: () => { held.release(); lock.close(); } };
      }],
    ] as const) {
      const dir = join(root, `modes-${label}`);
      const held = await take(dir);
      assert.equal(statSync(dir).mode & 0o777, 0o700, `${label}: directory`);
      assert.equal(statSync(join(dir, 'iptables')).mode & 0o777, 0o600, `${label}: file`);
      held.release();
    }
  });

  it('gives up at its deadline and says what it waited for and who holds it', async () => {
    const xen = xenHolder(join(root, 'run', 'xen-hotplug'));
    await xen.waiter.waitFor('held');
    const t0 = Date.now();
    await assert.rejects(acquireHotplugLock('iptables', { dir: viaSymlink, deadline: Deadline.in(1500) }), (e: Error) => /waiting for the hotplug lock .*xen-hotplug\/iptables \(held by pid \d+ \(bash/.test(e.message) && /no result within/.test(e.message));
    const took = Date.now() - t0;
    assert.ok(took >= 1400 && took < 4000, `gave up after ${took} ms`);
    xen.release();
    await xen.done;
  });

  it('a missing flock(1) is an error with a message, not a crash', async () => {
    const saved = process.env['PATH'];
    process.env['PATH'] = join(root, 'empty');
    try {
      await assert.rejects(acquireHotplugLock('iptables', { dir: viaSymlink, deadline: Deadline.in(2000) }), /cannot take the hotplug lock .*could not run flock: it is not installed/);
    } finally {
      process.env['PATH'] = saved;
    }
  });
});
