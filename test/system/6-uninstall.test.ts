/**
 * `xennet uninstall` as installed (the Debian package), every path at its default, while the
 * daemon from the package's unit runs: it stops the daemon first (which would otherwise put
 * removed rules back within a second), and nothing comes back afterwards. The package's own files
 * stay (they are dpkg's: `apt remove`), and `install-hooks` refuses on a package installation.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SimGuest, SimHost } from '../../src/sim/host.js';
import { run } from '../../src/sys/exec.js';
import { DAEMON_UNIT_FILE as UNIT, guestSpec, hook, installedHost, operatorEnv, tables, teardown, VIF_XENNET, xennetBin, xnChains } from './lib/world.js';

const NETWORK_XENNET = VIF_XENNET.replace('vif-xennet', 'network-xennet');

describe('system: xennet uninstall with the daemon running, default paths', function () {
  this.timeout(120_000);
  let host: SimHost;
  let g: SimGuest;
  const xennet = (...args: string[]) => run('ip', ['netns', 'exec', host.dom0.name, xennetBin(), ...args], { env: operatorEnv(), timeoutMs: 90_000 });
  const everything = async (): Promise<string> => {
    const parts: string[] = [];
    for (const t of tables) parts.push((await xnChains(host, t)).join(' '));
    parts.push((await host.dom0.exec('nft', ['list', 'ruleset'])).stdout.includes('xennet') ? 'nftables: xennet' : '');
    return parts.join(' ').trim();
  };

  before(async () => {
    host = await installedHost();
    const exec = /^ExecStart=(.+)$/m.exec(readFileSync(UNIT, 'utf8'))![1]!.split(' ');
    await host.startDaemon({}, exec);
    g = await host.addGuest(guestSpec(31));
    const r = await hook(host, g, 'online');
    assert.equal(r.code, 0, r.stderr);
  });

  after(async () => {
    await host?.stopDaemon('SIGTERM').catch(() => null);
    await teardown(host);
  });

  it('install-hooks refuses on the package\'s installation, writing nothing', async () => {
    const before = readFileSync(VIF_XENNET, 'utf8');
    const r = await run(xennetBin(), ['install-hooks'], { env: operatorEnv(), timeoutMs: 30_000 });
    assert.equal(r.code, 64, r.stdout + r.stderr);
    assert.match(r.stderr, /this xennet is the Debian package, which installed the hooks/);
    assert.equal(readFileSync(VIF_XENNET, 'utf8'), before);
  });

  it('control: the running daemon puts a flushed chain of xennet\'s back', async () => {
    const chain = ['chain', 'bridge', 'xennet', `XN-O-${g.vif}`];
    assert.equal((await host.dom0.exec('nft', ['flush', ...chain])).code, 0);
    let back = false;
    for (let i = 0; i < 100 && !back; i++) {
      await sleep(100);
      back = /\bdrop\b/.test((await host.dom0.exec('nft', ['list', ...chain])).stdout);
    }
    assert.ok(back, `the daemon repaired XN-O-${g.vif}`);
  });

  it('refused while the guest is attached; the daemon and the rules stay', async () => {
    const r = await xennet('uninstall');
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /1 guest interface is attached; removing the firewall would leave it unfiltered:\n +vif31\.0 \(guest31\) on xenbr0/);
    assert.ok(existsSync('/run/xennet/daemon.pid'));
    assert.match(await everything(), /nftables: xennet/);
  });

  it('--force stops the daemon first and removes the firewall, not the package\'s files; nothing comes back after 3 s', async () => {
    const pid = Number(readFileSync('/run/xennet/daemon.pid', 'utf8').trim());
    const r = await xennet('uninstall', '--force');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const lines = r.stdout.split('\n');
    assert.equal(lines[1], `  done: stop the daemon: SIGTERM to pid ${pid} and wait for it to exit`, r.stdout);
    assert.match(r.stdout, /note: 1 guest interface is now unfiltered: vif31\.0 \(guest31\)/);
    assert.equal(await host.stopDaemon(), 0, 'the daemon had exited cleanly');
    assert.equal(existsSync('/run/xennet/daemon.sock'), false);
    await sleep(3000);
    assert.equal(await everything(), '');
    for (const f of ['/var/lib/xennet/firewall', '/var/lib/xennet/originals']) assert.equal(existsSync(f), false, f);
    for (const f of [VIF_XENNET, NETWORK_XENNET, UNIT, xennetBin()]) assert.ok(existsSync(f), `${f}: the package's, left to apt`);
    assert.match(r.stdout, /The package's own files .* stay until `apt remove xennet`/);
    assert.ok(existsSync('/var/lib/xennet/takeover-xenbr0.json'), 'the takeover stays');
    assert.ok(await g.ns.ping('192.168.0.1'), 'the guest stays connected');
    const st = await xennet('status', '--json');
    const s = JSON.parse(st.stdout) as { installed: boolean; problems: string[] };
    assert.equal(s.installed, false);
    assert.deepEqual(s.problems, []);
    const again = await xennet('uninstall');
    assert.equal(again.code, 0);
    assert.match(again.stdout, /^nothing of xennet's is installed on this host; nothing to do/);
  });
});
