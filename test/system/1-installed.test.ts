/**
 * (a) the installed layout (the Debian package) and (b) one guest through /etc/xen/scripts/vif-xennet, with every
 * default path: /etc/xen/xennet.yaml, /var/lib/xennet, /var/run/xen-hotplug/iptables and the
 * xenstored on /var/run/xenstored/socket.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { SimGuest, SimHost } from '../../src/sim/host.js';
import { run } from '../../src/sys/exec.js';
import { arrives, hex } from '../netns/lib/frames.js';
import { LOCK_FILE, RULES_FILE, XEN_SCRIPTS } from './lib/machine.js';
import { ended } from './lib/proc.js';
import {
  guestSpec,
  hook,
  hotplug,
  installedHost,
  installedPackage,
  launcher,
  linkOf,
  noProblems,
  operatorEnv,
  root,
  rulesMentioning,
  secs,
  tables,
  teardown,
  withOutcome,
  VIF_XENNET,
  xennetBin,
  nftChains,
  xnChains,
} from './lib/world.js';

const GUEST_MAC = '00:16:3e:00:00:01';
const BCAST = 'ff:ff:ff:ff:ff:ff';

describe('system: xennet as installed (dpkg -i of the package, default paths)', function () {
  this.timeout(60_000);
  let host: SimHost;
  let g: SimGuest;

  before(async () => {
    host = await installedHost();
    g = await host.addGuest(guestSpec(1, { mac: GUEST_MAC }));
  });

  after(async () => {
    await teardown(host);
  });

  describe('(a) installed layout', () => {
    it('the launchers are in /etc/xen/scripts, executable, next to Xen\'s own scripts, and load the global installation', () => {
      for (const name of ['vif-xennet', 'network-xennet']) {
        const path = join(XEN_SCRIPTS, name);
        assert.ok(existsSync(path), `${path} exists`);
        assert.ok((statSync(path).mode & 0o111) !== 0, `${path} is executable`);
        assert.ok(launcher(name).includes(installedPackage() + '/'), `${path} loads ${installedPackage()}: ${launcher(name)}`);
        assert.ok(launcher(name).includes('/usr/bin/node'), `${path} runs Debian's node: ${launcher(name)}`);
      }
      assert.ok(existsSync(join(XEN_SCRIPTS, 'vif-bridge')), 'Xen\'s vif-bridge is still there');
      assert.ok(existsSync(RULES_FILE), 'the rule file is at its default path');
    });

    it('`xennet --version` works from /usr/bin, found through PATH', async () => {
      const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
      assert.ok(realpathSync(xennetBin()).startsWith(installedPackage() + '/'), `${xennetBin()} -> ${realpathSync(xennetBin())}`);
      for (const file of [xennetBin(), 'xennet']) {
        const r = await run(file, ['--version'], { env: operatorEnv(), timeoutMs: 30_000 });
        assert.equal(r.code, 0, `${file} --version: ${r.stderr}`);
        assert.equal(r.stdout.trim(), version);
      }
    });

    it('the hook process gets the toolstack\'s environment only: no XENNET_*, no XENSTORED_*', async () => {
      const call = host.vifScriptCall(VIF_XENNET, g, 'online', 'libxl');
      assert.deepEqual(call.argv, ['online', 'type_if=vif']);
      assert.equal(call.file, '/etc/xen/scripts/vif-xennet');
      assert.deepEqual(Object.keys(call.env).sort(), ['HOME', 'PATH', 'XENBUS_BASE_PATH', 'XENBUS_PATH', 'XENBUS_TYPE', 'netdev', 'script', 'vif']);
      assert.deepEqual(
        { vif: call.env['vif'], XENBUS_PATH: call.env['XENBUS_PATH'], XENBUS_TYPE: call.env['XENBUS_TYPE'], XENBUS_BASE_PATH: call.env['XENBUS_BASE_PATH'], script: call.env['script'], netdev: call.env['netdev'] },
        { vif: 'vif1.0', XENBUS_PATH: 'backend/vif/1/0', XENBUS_TYPE: 'vif', XENBUS_BASE_PATH: 'backend', script: '/etc/xen/scripts/vif-xennet', netdev: '' },
      );
      // What a process started that way in dom0 really sees (ip netns exec adds nothing).
      const seen = await host.dom0.exec('env', [], { env: call.env });
      const names = seen.stdout.split('\n').filter((l) => l.includes('=')).map((l) => l.slice(0, l.indexOf('=')));
      assert.deepEqual(names.filter((n) => /^(XENNET_|XENSTORED_)/.test(n)), []);
      assert.deepEqual(names.sort(), Object.keys(call.env).sort());
    });
  });

  describe('(b) a guest comes online through /etc/xen/scripts/vif-xennet with default paths', () => {
    it('online: exit 0 within 10 s, hotplug-status connected, attached to xenbr0, its chains in xennet\'s nftables table (the default backend) and none in xtables, the lock file exists', async () => {
      const r = await hook(host, g, 'online', { killAfterMs: 15_000 });
      const problems: string[] = [];
      if (r.code !== 0) problems.push(`exit: ${ended(r)}`);
      if (r.ms >= 10_000) problems.push(`took ${secs(r.ms)} (limit 10 s)`);
      const hp = hotplug(host, g);
      if (hp.status !== 'connected') problems.push(`hotplug-status ${JSON.stringify(hp.status)}, hotplug-error ${JSON.stringify(hp.error)}`);
      const l = await linkOf(host.dom0, g.vif);
      if (l?.master !== 'xenbr0' || !l.flags.includes('UP')) problems.push(`${g.vif}: master ${l?.master}, flags ${l?.flags.join(',')}`);
      const chains = await nftChains(host);
      for (const c of [`XN-O-${g.vif}`, `XN-S-${g.vif}`]) if (!chains.includes(c)) problems.push(`no chain ${c} in bridge xennet (it has: ${chains.join(' ')})`);
      for (const t of tables) if ((await xnChains(host, t)).length > 0) problems.push(`XN- chains in ${t}: xennet's default backend is nftables`);
      if (!existsSync(LOCK_FILE)) problems.push(`${LOCK_FILE} does not exist`);
      noProblems(withOutcome(problems, r), 'vif-xennet online');
    });

    it('the guest\'s own traffic passes (ping the LAN gateway, its own source); spoofed frames are dropped', async () => {
      assert.ok(await g.ns.ping('192.168.0.1', { count: 1, waitSeconds: 3 }), 'the guest pings the LAN gateway 192.168.0.1');
      const udp = (srcMac: string, src: string, marker: string): Promise<boolean> =>
        arrives(g.ns, host.lan, 'lan0', hex(marker), 'udp4', [srcMac, BCAST, src, '192.168.0.1', '4000', '4001', marker]);
      assert.equal(await udp(GUEST_MAC, '192.168.0.101', 'sys-own-source'), true, 'its own MAC and address pass');
      assert.equal(await udp(GUEST_MAC, '192.168.0.200', 'sys-spoofed-ip'), false, 'a foreign IPv4 source is dropped');
      assert.equal(await udp('00:16:3e:99:99:99', '192.168.0.101', 'sys-spoofed-mac'), false, 'a foreign source MAC is dropped');
      const garp = (ip: string): Promise<boolean> => arrives(g.ns, host.lan, 'lan0', GUEST_MAC.replace(/:/g, '') + Buffer.from(ip.split('.').map(Number)).toString('hex'), 'garp', [GUEST_MAC, GUEST_MAC, ip]);
      assert.equal(await garp('192.168.0.101'), true, 'ARP for its own address passes');
      assert.equal(await garp('192.168.0.2'), false, 'ARP claiming dom0\'s address is dropped');
    });

    it('offline: exit 0 within 10 s, detached, and no rule mentions the vif any more', async () => {
      const r = await hook(host, g, 'offline', { killAfterMs: 15_000 });
      const problems: string[] = [];
      if (r.code !== 0) problems.push(`exit: ${ended(r)}`);
      if (r.ms >= 10_000) problems.push(`took ${secs(r.ms)} (limit 10 s)`);
      const l = await linkOf(host.dom0, g.vif);
      if (l?.master !== undefined) problems.push(`${g.vif} still attached to ${l.master}`);
      problems.push(...(await rulesMentioning(host, g.vif)).map((x) => `left behind: ${x}`));
      noProblems(withOutcome(problems, r), 'vif-xennet offline');
    });
  });
});
