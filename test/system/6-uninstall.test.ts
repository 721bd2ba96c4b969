/**
 * `xennet uninstall` as installed, every path at its default, while the daemon from the installed
 * unit runs: it stops the daemon first (which would otherwise put removed rules back within a
 * second), and nothing comes back afterwards. Runs last: it removes what install-hooks wrote.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SimGuest, SimHost } from '../../src/sim/host.js';
import { run } from '../../src/sys/exec.js';
import { guestSpec, hook, installedHost, operatorEnv, tables, teardown, VIF_XENNET, xennetBin, xnChains } from './lib/world.js';

const UNIT = '/etc/systemd/system/xennet.service';
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
    // Each host starts from an empty /var/lib/xennet: install the files again, so this
    // installation's list of what it wrote is there (files already present are not listed).
    for (const f of [VIF_XENNET, NETWORK_XENNET, UNIT]) rmSync(f, { force: true });
    const inst = await run(xennetBin(), ['install-hooks'], { env: operatorEnv(), timeoutMs: 30_000 });
    assert.equal(inst.code, 0, inst.stderr);
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

  it('control: the running daemon puts a flushed chain of xennet\'s back', async () => {
    assert.equal((await host.dom0.exec('iptables', ['-F', 'XN-FORWARD'])).code, 0);
    let back = false;
    for (let i = 0; i < 100 && !back; i++) {
      await sleep(100);
      back = (await host.dom0.exec('iptables', ['-S', 'XN-FORWARD'])).stdout.includes('-A XN-FORWARD');
    }
    assert.ok(back, 'the daemon repaired XN-FORWARD');
  });

  it('refused while the guest is attached; the daemon and the rules stay', async () => {
    const r = await xennet('uninstall');
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /1 guest interface is attached; removing the firewall would leave it unfiltered:\n +vif31\.0 \(guest31\) on xenbr0/);
    assert.ok(existsSync('/run/xennet/daemon.pid'));
    assert.match(await everything(), /XN-FORWARD/);
  });

  it('--force stops the daemon first, removes the firewall and the files; nothing comes back after 3 s', async () => {
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
    for (const f of [VIF_XENNET, NETWORK_XENNET, UNIT, '/var/lib/xennet/installed-files.json', '/var/lib/xennet/firewall']) assert.equal(existsSync(f), false, f);
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
