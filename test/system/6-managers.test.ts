/**
 * (f) `xennet bridge start` as installed, against the host's network manager, detected from its
 * configuration files in the suite's /etc overlay (the daemons do not run): a systemd-networkd
 * .network file or a NetworkManager keyfile that claims dom0's NIC makes it refuse, changing
 * nothing; ifupdown's /etc/network/interfaces does not.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { SimHost } from '../../src/sim/host.js';
import { STATE_DIR } from './lib/machine.js';
import { installedHost, linkOf, snapshotDiff, snapshotDom0, teardown } from './lib/world.js';

const NIC = 'eth0';
const NETWORKD_FILE = `/etc/systemd/network/10-${NIC}.network`;
const NM_FILE = '/etc/NetworkManager/system-connections/lan.nmconnection';
const INTERFACES = '/etc/network/interfaces';

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

describe('system: bridge start and the host\'s network manager (configuration in /etc)', function () {
  this.timeout(120_000);
  let host: SimHost;
  const written: string[] = [];
  const made: string[] = [];

  /** Writes a file into the /etc overlay, creating (and remembering) missing directories. */
  function put(path: string, text: string): void {
    const missing: string[] = [];
    for (let d = dirname(path); !existsSync(d); d = dirname(d)) missing.unshift(d);
    for (const d of missing) {
      mkdirSync(d);
      made.push(d);
    }
    writeFileSync(path, text, { mode: 0o600 });
    written.push(path);
  }

  function removeAll(): void {
    for (const f of written.splice(0).reverse()) rmSync(f, { force: true });
    for (const d of made.splice(0).reverse()) rmSync(d, { recursive: true, force: true });
  }

  before(async () => {
    host = await installedHost({ takeover: false });
  });

  afterEach(() => removeAll());

  after(async () => {
    removeAll();
    await teardown(host);
  });

  /** Runs the installed `xennet bridge start`, expects the refusal, and proves nothing changed. */
  async function refuses(manager: string, file: string, match: string, advice: RegExp): Promise<void> {
    const before = await snapshotDom0(host);
    const r = await host.xennet(['bridge', 'start']);
    assert.equal(r.code, 1, `start must refuse: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, new RegExp(`${NIC} is managed by ${manager} \\(${escape(file)}: ${escape(match)}\\); nothing was changed`));
    assert.match(r.stderr, advice);
    assert.match(r.stderr, /To take eth0 over anyway, pass --force/);
    const after = await snapshotDom0(host);
    assert.equal(after, before, `dom0 changed:\n${snapshotDiff(before, after)}`);
    assert.deepEqual(existsSync(STATE_DIR) ? readdirSync(STATE_DIR).filter((f) => f.endsWith('.json')) : [], [], 'no journal');
    assert.equal(await linkOf(host.dom0, 'peth0'), undefined, 'no peth0');
  }

  it(`systemd-networkd: ${NETWORKD_FILE} with [Match] Name=${NIC} makes start refuse, naming the file, and change nothing`, async () => {
    put(NETWORKD_FILE, `[Match]\nName=${NIC}\n\n[Network]\nDHCP=yes\n`);
    await refuses('systemd-networkd', NETWORKD_FILE, `Name=${NIC}`, /let systemd-networkd build the bridge: a xenbr0\.netdev with \[NetDev\] Name=xenbr0 Kind=bridge/);
    // --force takes it over anyway, with the claim as a warning.
    const forced = await host.xennet(['bridge', 'start', '--force']);
    assert.equal(forced.code, 0, `start --force: ${forced.stderr}`);
    assert.match(forced.stdout, /warning: eth0 is claimed by systemd-networkd \(\/etc\/systemd\/network\/10-eth0\.network: Name=eth0\); taken over anyway \(--force\)/);
    assert.equal((await linkOf(host.dom0, 'peth0'))?.master, 'xenbr0');
    const stop = await host.xennet(['bridge', 'stop']);
    assert.equal(stop.code, 0, `stop: ${stop.stderr}`);
  });

  it('NetworkManager: a keyfile with the NIC\'s mac-address makes start refuse, naming the file, and change nothing', async () => {
    const mac = (await linkOf(host.dom0, NIC))?.address;
    assert.ok(mac, 'dom0 NIC MAC');
    put(NM_FILE, `[connection]\nid=lan\ntype=ethernet\n\n[ethernet]\nmac-address=${mac.toUpperCase()}\n\n[ipv4]\nmethod=auto\n`);
    await refuses('NetworkManager', NM_FILE, `mac-address=${mac.toUpperCase()}`, /nmcli connection add type bridge ifname xenbr0/);
  });

  it(`ifupdown: ${INTERFACES} with \`iface ${NIC} inet dhcp\` does not stop the takeover`, async () => {
    put(INTERFACES, `auto lo\niface lo inet loopback\n\nallow-hotplug ${NIC}\niface ${NIC} inet dhcp\n`);
    const r = await host.xennet(['bridge', 'start']);
    assert.equal(r.code, 0, `start: ${r.stderr}`);
    assert.match(r.stdout, /xenbr0: took over eth0/);
    assert.equal((await linkOf(host.dom0, 'peth0'))?.master, 'xenbr0');
    const stop = await host.xennet(['bridge', 'stop']);
    assert.equal(stop.code, 0, `stop: ${stop.stderr}`);
    removeAll();
    assert.ok(!existsSync(INTERFACES), 'cleaned up');
  });
});
