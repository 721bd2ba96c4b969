/**
 * (d) Hostile xenstore values. Each value is written with Debian's own xenstore-write (which
 * finds the default socket itself) into guest 5's backend node; dom0 is snapshotted before and
 * after `vif-xennet online`, which must refuse: exit 1, hotplug-status error, a hotplug-error
 * naming the value or the node, and not one byte of dom0's network state changed. Then the
 * offline half: a refused vifname must not make `offline` take dom0's eth0 down, and a vif that
 * is gone must not make `online` adopt eth0.
 */
import assert from 'node:assert/strict';
import type { SimGuest, SimHost } from '../../src/sim/host.js';
import { ended } from './lib/proc.js';
import { addressesOf, guestSpec, hook, hotplug, installedHost, linkOf, noProblems, snapshotDiff, snapshotDom0, teardown, withOutcome, xs, type HookRun } from './lib/world.js';

type Node = 'vifname' | 'mac' | 'ip' | 'mtu' | 'bridge';

const rows: [Node, string, string][] = [
  ['vifname', 'eth0', 'dom0\'s NIC (the host-side eth0 after the takeover)'],
  ['vifname', 'peth0', 'the physical NIC'],
  ['vifname', 'xenbr0', 'the bridge'],
  ['vifname', 'vif0.0', 'dom0\'s bridge port'],
  ['vifname', 'lo', 'loopback'],
  ['vifname', 'vif7.0', 'another running guest\'s vif'],
  ['vifname', 'a;reboot', 'a shell command'],
  ['vifname', 'abcdefghijklmnop', '16 characters'],
  ['vifname', 'web\neth0', 'a newline'],
  ['mac', '00:00:00:00:00:00', 'all zero'],
  ['mac', 'ff:ff:ff:ff:ff:ff', 'broadcast'],
  ['mac', '01:00:5e:00:00:01', 'multicast'],
  ['mac', '00:16:3e:00:00:01\n-A FORWARD -j ACCEPT', 'newline injection'],
  ['ip', '0.0.0.0/0', 'everything (IPv4)'],
  ['ip', '::/0', 'everything (IPv6)'],
  ['ip', 'fe80::1%eth0', 'a zone id'],
  ['ip', '10.1', 'a short form'],
  ['ip', '167772161', 'a number'],
  ['ip', '0xa.0.0.1', 'hex'],
  ['ip', '010.0.0.1', 'octal-looking'],
  ['ip', '10.0.0.5/24', 'host bits set'],
  ['ip', '224.0.0.1', 'multicast'],
  ['mtu', '15x0', 'not a number'],
  ['mtu', '40', 'below the minimum'],
  ['mtu', '99999', 'above the maximum'],
  ['bridge', 'eth0', 'not a bridge'],
];

const HOSTILE_KILL_MS = 10_000; // a refusal is immediate; an accepted value would hang on (or get past) the lock

function mentions(error: string | undefined, node: Node, value: string): boolean {
  if (error === undefined) return false;
  const forms = [value, JSON.stringify(value).slice(1, -1)];
  return forms.some((f) => f.length > 0 && error.includes(f)) || new RegExp(`(^|[/ ])${node}\\b`).test(error);
}

function refusal(r: HookRun, g: SimGuest, host: SimHost, node: Node, value: string): string[] {
  const problems: string[] = [];
  if (r.code !== 1) problems.push(`want exit 1: ${ended(r)}`);
  const hp = hotplug(host, g);
  if (hp.status !== 'error') problems.push(`hotplug-status ${JSON.stringify(hp.status)} (want "error")`);
  if (!mentions(hp.error, node, value)) problems.push(`hotplug-error ${JSON.stringify(hp.error)} names neither the value nor the node ${node}`);
  return problems;
}

describe('system: xennet as installed, hostile xenstore values', function () {
  this.timeout(60_000);

  describe('(d) online refuses every hostile value and changes nothing in dom0', () => {
    let host: SimHost;
    let g: SimGuest;
    let other: SimGuest;
    let otherOnline: HookRun;

    before(async () => {
      host = await installedHost();
      other = await host.addGuest(guestSpec(7));
      otherOnline = await hook(host, other, 'online', { killAfterMs: 15_000 });
      g = await host.addGuest(guestSpec(5, { addresses: ['192.168.0.105/24', '2001:db8::105/64'] }));
    });

    after(async () => {
      await teardown(host);
    });

    it('setup: guest 7 is online through vif-xennet (its vif7.0 is "another running guest")', () => {
      assert.equal(otherOnline.code, 0, `guest 7 online: ${ended(otherOnline)}`);
      assert.equal(hotplug(host, other).status, 'connected');
    });

    it('harness: snapshots of an unchanged dom0 are identical (nothing volatile is compared)', async () => {
      const a = await snapshotDom0(host);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const b = await snapshotDom0(host);
      assert.equal(b, a, snapshotDiff(a, b));
    });

    for (const [node, value, what] of rows) {
      it(`${node} = ${JSON.stringify(value)} (${what}): exit 1, hotplug-status error, hotplug-error names it, dom0 byte-identical`, async () => {
        // Guest 5 as libxl left it: vif5.0 down and detached, good nodes, hotplug-status "".
        const vif = await linkOf(host.dom0, g.vif);
        if (vif && (vif.master !== undefined || vif.flags.includes('UP'))) await host.dom0.ip('link', 'set', g.vif, 'down', 'nomaster');
        for (const n of ['vifname', 'ip', 'mtu', 'hotplug-error']) await xs.rm(`${g.backendPath}/${n}`);
        await xs.write(`${g.backendPath}/mac`, g.mac);
        await xs.write(`${g.backendPath}/bridge`, 'xenbr0');
        await xs.write(`${g.backendPath}/hotplug-status`, '');
        await xs.write(`${g.backendPath}/${node}`, value);
        assert.equal(host.xenstored.read(`${g.backendPath}/${node}`), value, 'xenstore-write stored the value as given');
        const before = await snapshotDom0(host);
        const r = await hook(host, g, 'online', { killAfterMs: HOSTILE_KILL_MS });
        const after = await snapshotDom0(host);
        const problems = refusal(r, g, host, node, value);
        if (after !== before) problems.push(`dom0 changed:\n${snapshotDiff(before, after)}`);
        noProblems(withOutcome(problems, r), `online with ${node}=${JSON.stringify(value)}`);
      });
    }
  });

  describe('(d) the offline half: dom0\'s eth0 is never taken for a guest\'s vif', () => {
    let host: SimHost;
    let g: SimGuest;

    beforeEach(async () => {
      host = await installedHost();
      g = await host.addGuest(guestSpec(5));
    });

    afterEach(async () => {
      await teardown(host);
    });

    async function eth0(): Promise<{ mac: string | undefined; master: string | undefined; up: boolean; addresses: string[] }> {
      const l = await linkOf(host.dom0, 'eth0');
      return { mac: l?.address, master: l?.master, up: l?.flags.includes('UP') ?? false, addresses: await addressesOf(host.dom0, 'eth0') };
    }

    it('after a refused online with vifname=eth0, the toolstack\'s offline leaves eth0 up, with its addresses, not enslaved', async () => {
      const was = await eth0();
      assert.ok(was.up && was.master === undefined && was.addresses.includes('192.168.0.2/24'), `dom0's eth0 before: ${JSON.stringify(was)}`);
      await xs.write(`${g.backendPath}/vifname`, 'eth0');
      const online = await hook(host, g, 'online', { killAfterMs: HOSTILE_KILL_MS });
      const offline = await hook(host, g, 'offline', { killAfterMs: 15_000 });
      const problems: string[] = [];
      if (online.code !== 1) problems.push(`online: want exit 1: ${ended(online)}`);
      if (offline.killedAtDeadline || offline.code === null) problems.push(`offline: ${ended(offline)}`);
      const now = await eth0();
      if (!now.up) problems.push('eth0 is down');
      if (now.master !== undefined) problems.push(`eth0 is enslaved to ${now.master}`);
      if (JSON.stringify(now.addresses) !== JSON.stringify(was.addresses)) problems.push(`eth0's addresses ${JSON.stringify(was.addresses)} -> ${JSON.stringify(now.addresses)}`);
      if (now.mac !== was.mac) problems.push(`eth0's MAC ${was.mac} -> ${now.mac}`);
      if (problems.length > 0) problems.push(`online: ${ended(online)}`);
      noProblems(problems, 'vifname=eth0, online then offline');
    });

    it('with the guest\'s vif gone (ip link del vif5.0) and vifname=eth0, online exits 1 and leaves eth0 untouched (MAC, addresses, master, up)', async () => {
      const was = await eth0();
      await host.dom0.ip('link', 'del', g.vif);
      await xs.write(`${g.backendPath}/vifname`, 'eth0');
      const r = await hook(host, g, 'online', { killAfterMs: HOSTILE_KILL_MS });
      const problems: string[] = [];
      if (r.code !== 1) problems.push(`want exit 1: ${ended(r)}`);
      if (hotplug(host, g).status !== 'error') problems.push(`hotplug-status ${JSON.stringify(hotplug(host, g).status)} (want "error")`);
      const now = await eth0();
      if (JSON.stringify(now) !== JSON.stringify(was)) problems.push(`eth0 changed: ${JSON.stringify(was)} -> ${JSON.stringify(now)}`);
      noProblems(withOutcome(problems, r), 'vif gone, vifname=eth0, online');
    });
  });
});
