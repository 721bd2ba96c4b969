/**
 * vif-xennet as the toolstack runs it, on the simulated Xen host: real namespaces, real netlink,
 * the in-memory xenstored, traffic between guests, dom0 and the LAN gateway.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { start } from '../../src/sys/exec.js';
import { SimHost, type GuestSpec, type SimGuest } from '../../src/sim/host.js';
import { arrives, hex } from './lib/frames.js';
import { LineWaiter } from './lib/lines.js';
import type { LinkRow } from './lib/links.js';
import { installedOnce } from './lib/installed.js';
import { sweepLeftovers } from './lib/netns.js';


const guestSpec = (domid: number, extra: Partial<GuestSpec> = {}): GuestSpec => ({
  domid,
  name: `guest${domid}`,
  mac: `00:16:3e:00:00:${domid.toString(16).padStart(2, '0')}`,
  addresses: [`192.168.0.${100 + domid}/24`],
  // Its address in the vif configuration (ip=), as a host without the daemon needs: a guest with
  // none learns its addresses, which only the daemon does.
  xenstoreIp: `192.168.0.${100 + domid}`,
  ...extra,
});

describe('vif-xennet hook (netns, simulated Xen host)', function () {
  this.timeout(180_000);
  let host: SimHost;

  before(async () => {
    await sweepLeftovers();
  });

  beforeEach(async () => {
    host = await SimHost.create({ mtu: 1400, autostart: false });
    await host.takeover();
  });

  afterEach(async () => {
    await host.destroy();
  });

  async function link(name: string): Promise<LinkRow | undefined> {
    const rows = await host.dom0.ipJson<LinkRow[]>('link', 'show');
    return rows.find((r) => r.ifname === name);
  }

  const status = (g: SimGuest): string | undefined => host.xenstored.read(`${g.backendPath}/hotplug-status`);
  const hotplugError = (g: SimGuest): string | undefined => host.xenstored.read(`${g.backendPath}/hotplug-error`);

  function ok(r: { code: number; stdout: string; stderr: string }, what: string): void {
    assert.equal(r.code, 0, `${what} exited ${r.code}: ${r.stderr}${r.stdout}`);
  }

  async function assertOnline(g: SimGuest, name = g.vif, mtu = 1400, bridge = 'xenbr0'): Promise<void> {
    const l = await link(name);
    assert.ok(l, `${name} exists`);
    assert.equal(l.master, bridge, `${name} is attached to ${bridge}`);
    assert.ok(l.flags.includes('UP'), `${name} is up`);
    assert.equal(l.address, 'fe:ff:ff:ff:ff:ff');
    assert.equal(l.mtu, mtu);
    assert.equal(status(g), 'connected');
  }

  for (const form of ['libxl', 'xend'] as const) {
    it(`online as ${form} calls it: attached, up, fe:ff MAC, bridge MTU, connected; the guest reaches the gateway and dom0`, async () => {
      const g = await host.addGuest(guestSpec(1));
      ok(await host.runVifScript('vif-xennet', g, 'online', form), 'online');
      await assertOnline(g);
      assert.equal(host.xenstored.read(`/local/domain/1/device/vif/0/mtu`), '1400', 'MTU written for the frontend');
      assert.ok(await g.ns.ping('192.168.0.1', { count: 1, waitSeconds: 3 }), 'guest pings the LAN gateway');
      assert.ok(await g.ns.ping('192.168.0.2'), 'guest pings dom0');
    });
  }

  it('honours xenstore mtu and vifname', async () => {
    const g = await host.addGuest(guestSpec(2, { mtu: 1280, vifname: 'web-eth0' }));
    ok(await host.runVifScript('vif-xennet', g, 'online'), 'online');
    assert.equal(await link('vif2.0'), undefined, 'renamed away');
    await assertOnline(g, 'web-eth0', 1280);
    ok(await host.runVifScript('vif-xennet', g, 'online'), 'a repeated online');
    await assertOnline(g, 'web-eth0', 1280);
    ok(await host.runVifScript('vif-xennet', g, 'offline'), 'offline');
    assert.equal((await link('web-eth0'))?.master, undefined);
  });

  it('offline detaches and takes the vif down; twice is fine; a vif already gone is fine; the guest loses connectivity', async () => {
    const g = await host.addGuest(guestSpec(3));
    ok(await host.runVifScript('vif-xennet', g, 'online'), 'online');
    assert.ok(await g.ns.ping('192.168.0.1', { waitSeconds: 3 }));
    ok(await host.runVifScript('vif-xennet', g, 'offline'), 'offline');
    const l = await link(g.vif);
    assert.equal(l?.master, undefined, 'detached');
    assert.ok(!l?.flags.includes('UP'), 'down');
    assert.equal(await g.ns.ping('192.168.0.1', { waitSeconds: 1 }), false, 'the guest is cut off');
    ok(await host.runVifScript('vif-xennet', g, 'offline'), 'offline again');
    await host.dom0.ip('link', 'del', g.vif);
    const gone = await host.runVifScript('vif-xennet', g, 'offline');
    ok(gone, 'offline of a vif that is gone');
    assert.match(gone.stderr, /already gone/);
  });

  it('bridge precedence: environment < argv < xenstore; xenbrN falls back to a bridge named ethN', async () => {
    await host.dom0.ip('link', 'add', 'xenbr1', 'type', 'bridge');
    await host.dom0.ip('link', 'set', 'xenbr1', 'up');
    const g = await host.addGuest(guestSpec(4));
    host.xenstored.write(`${g.backendPath}/bridge`, '');
    ok(await host.runVifScript('vif-xennet', g, 'online', 'xend', { env: { bridge: 'nonexistent' }, argv: ['bridge=xenbr0'] }), 'argv beats env');
    assert.equal((await link(g.vif))?.master, 'xenbr0');
    host.xenstored.write(`${g.backendPath}/bridge`, 'xenbr1');
    ok(await host.runVifScript('vif-xennet', g, 'online', 'xend', { argv: ['bridge=xenbr0'] }), 'xenstore beats argv');
    assert.equal((await link(g.vif))?.master, 'xenbr1', 'moved to the bridge xenstore names');
    const first = await host.addGuest(guestSpec(5, { bridge: null }));
    ok(await host.runVifScript('vif-xennet', first, 'online', 'xend'), 'no bridge anywhere: the first bridge');
    assert.equal((await link(first.vif))?.master, 'xenbr0');
    await host.dom0.ip('link', 'add', 'eth7', 'type', 'bridge');
    host.xenstored.write(`${g.backendPath}/bridge`, 'xenbr7');
    ok(await host.runVifScript('vif-xennet', g, 'online'), 'xenbr7 -> eth7');
    assert.equal((await link(g.vif))?.master, 'eth7');
  });

  const failures: [string, Partial<GuestSpec>, (g: SimGuest) => Promise<void> | void, RegExp][] = [
    ['a missing bridge', { bridge: 'xenbr5' }, () => undefined, /^Could not find bridge device xenbr5/],
    ['a vifname collision', { vifname: 'web9' }, async () => {
      await host.dom0.ip('link', 'add', 'web9', 'type', 'veth', 'peer', 'name', 'web9p');
    }, /^Cannot rename interface vif6.0. An interface with name web9 already exists./],
    ['a vifname that is another link\'s alternative name', { vifname: 'web8' }, async () => {
      await host.dom0.ip('link', 'add', 'alt8', 'type', 'veth', 'peer', 'name', 'alt8p');
      await host.dom0.ip('link', 'property', 'add', 'dev', 'alt8', 'altname', 'web8');
    }, /^rename vif6.0 to web8 failed: .*EEXIST: the name web8 is taken by another link, as its name or an alternative name/],
    ['a vifname naming another guest\'s device', { vifname: 'vif9.0' }, () => undefined, /vifname "vif9.0" names the Xen interface of another domain/],
    ['a malformed mac', {}, (g) => host.xenstored.write(`${g.backendPath}/mac`, 'zz:16:3e:00:00:01'), /is not a MAC address/],
    ['a malformed ip', { xenstoreIp: '192.168.0.106 not-an-ip' }, () => undefined, /"not-an-ip" is not an IPv4 or IPv6 address/],
    ['a malformed mtu', { mtu: 1500 }, (g) => host.xenstored.write(`${g.backendPath}/mtu`, '15x0'), /mtu "15x0" is not a number/],
    ['a hostile vifname', {}, (g) => host.xenstored.write(`${g.backendPath}/vifname`, 'a;reboot'), /is not a valid interface name/],
  ];
  for (const [what, extra, setup, message] of failures) {
    it(`reports ${what} as hotplug-status error with a clear hotplug-error, exit 1, nothing attached`, async () => {
      const g = await host.addGuest(guestSpec(6, extra));
      await setup(g);
      const r = await host.runVifScript('vif-xennet', g, 'online');
      assert.equal(r.code, 1, r.stderr);
      assert.equal(status(g), 'error');
      assert.match(hotplugError(g) ?? '', message);
      assert.equal((await link(g.vif))?.master, undefined, 'nothing attached');
      assert.match(r.stderr, /vif-xennet: error: online vif6.0:/);
    });
  }

  it('an online that comes after the toolstack removed the device (the daemon\'s call for a client killed at its timeout) attaches nothing and writes nothing where the backend was', async () => {
    const g = await host.addGuest(guestSpec(8));
    host.removeDevice(g);
    const r = await host.runVifScript('vif-xennet', g, 'online');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /the backend \/local\/domain\/0\/backend\/vif\/8\/0 is gone: the toolstack removed the device; nothing is brought online/);
    assert.match(r.stderr, /is gone \(the toolstack removed the device\): nothing reported there/);
    assert.equal(host.xenstored.read(`${g.backendPath}/hotplug-status`), undefined, 'the backend is not made again');
    assert.equal(host.xenstored.read(`${g.backendPath}/hotplug-error`), undefined);
    assert.equal((await link(g.vif))?.master, undefined, 'nothing attached');
    const st = JSON.parse((await host.xennet(['status', '--json'])).stdout) as { problems: string[] };
    assert.ok(!st.problems.some((p) => p.startsWith('backend 8/0')), st.problems.join('\n'));
  });

  it('ignores add/remove for type_if=vif and rejects an unknown command with exit 1', async () => {
    const g = await host.addGuest(guestSpec(7));
    const ignored = await host.runVifScript('vif-xennet', g, 'add');
    assert.equal(ignored.code, 0);
    assert.equal(status(g), '', 'nothing reported');
    assert.equal((await link(g.vif))?.master, undefined);
    const bad = await host.runVifScript('vif-xennet', g, 'explode', 'xend');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /invalid command "explode"/);
  });

  it('64 hooks started at once for 64 guests: all connected and attached', async () => {
    const guests: SimGuest[] = [];
    for (let d = 10; d < 74; d++) guests.push(await host.addGuest(guestSpec(d, { addresses: [] })));
    const results = await Promise.all(guests.map((g) => host.runVifScript('vif-xennet', g, 'online')));
    results.forEach((r, i) => assert.equal(r.code, 0, `${guests[i]!.vif}: ${r.stderr}`));
    const rows = await host.dom0.ipJson<LinkRow[]>('link', 'show');
    for (const g of guests) {
      assert.equal(status(g), 'connected', g.vif);
      assert.equal(rows.find((r) => r.ifname === g.vif)?.master, 'xenbr0', g.vif);
    }
    // Group commit with the real backend (the default): every vif's rules exactly once.
    assert.deepEqual(await installedOnce(host.dom0, guests.map((g) => g.vif)), []);
    assert.equal((await host.xennet(['plan'])).code, 0, 'what the hooks left is what apply would make');
    for (const g of [guests[0]!, guests[31]!, guests[63]!]) {
      assert.equal(await arrives(g.ns, host.lan, 'lan0', hex(`storm-spoof-${g.domid}`), 'udp4', ['00:16:3e:99:99:99', 'ff:ff:ff:ff:ff:ff', '192.168.0.200', '192.168.0.1', '4000', '4001', `storm-spoof-${g.domid}`]), false, `${g.vif}: a foreign MAC is dropped`);
    }
  });

  it('waits for the host-wide hotplug lock that Xen scripts hold (flock on the same file)', async () => {
    const g = await host.addGuest(guestSpec(8));
    const lockDir = host.env()['XENNET_HOTPLUG_LOCK_DIR']!;
    mkdirSync(lockDir, { recursive: true });
    const lockFile = `${lockDir}/iptables`;
    const holder = start('flock', ['--exclusive', lockFile, 'sh', '-c', 'echo held; read x']);
    const w = new LineWaiter(holder);
    await w.waitFor('held');
    const hook = host.runVifScript('vif-xennet', g, 'online');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(status(g), '', 'not connected while another script holds the lock');
    holder.stdin?.end('\n');
    ok(await hook, 'online after the lock was released');
    assert.equal(status(g), 'connected');
    assert.ok(existsSync(lockFile));
  });

  it('leaves a vif in the same link state as Xen\'s own vif-bridge (side by side, same xenstore)', async () => {
    const a = await host.addGuest(guestSpec(20, { mtu: 1300 }));
    const b = await host.addGuest(guestSpec(21, { mtu: 1300 }));
    ok(await host.runVifScript('/etc/xen/scripts/vif-bridge', a, 'online'), 'Xen vif-bridge online');
    ok(await host.runVifScript('vif-xennet', b, 'online'), 'vif-xennet online');
    const shape = (l: LinkRow | undefined) => l && { master: l.master, mac: l.address, mtu: l.mtu, flags: l.flags.filter((f) => f !== 'LOWER_UP' && f !== 'NO-CARRIER').sort() };
    assert.deepEqual(shape(await link(b.vif)), shape(await link(a.vif)));
    assert.equal(status(a), 'connected');
    assert.equal(status(b), 'connected');
    assert.equal(host.xenstored.read('/local/domain/20/device/vif/0/mtu'), '1300');
    assert.equal(host.xenstored.read('/local/domain/21/device/vif/0/mtu'), '1300');
    ok(await host.runVifScript('/etc/xen/scripts/vif-bridge', a, 'offline'), 'Xen vif-bridge offline');
    ok(await host.runVifScript('vif-xennet', b, 'offline'), 'vif-xennet offline');
    assert.deepEqual(shape(await link(b.vif)), shape(await link(a.vif)));
  });
});
