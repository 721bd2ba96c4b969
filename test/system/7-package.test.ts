/**
 * The Debian package's life on a host (last of the suite: it removes and purges the package).
 * Its units are checked by systemd's own tools, the boot takeover unit's ExecStart/ExecStop run
 * in dom0, a guest is served by the installed hook and daemon, and `dpkg -r` / `dpkg -P` leave
 * the host as it was: a running guest stays filtered after `dpkg -r`; after `xennet uninstall`,
 * `dpkg -r` and `dpkg -P`, dom0 (links, addresses, routes, every table) and every file outside
 * dpkg's own database are what they were before `dpkg -i`.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { SimGuest, SimHost } from '../../src/sim/host.js';
import { run } from '../../src/sys/exec.js';
import { arrives, hex } from '../netns/lib/frames.js';
import { RULES_FILE, XEN_SCRIPTS } from './lib/machine.js';
import {
  BRIDGE_UNIT_FILE,
  changedFiles,
  DAEMON_UNIT_FILE,
  ensureInstalled,
  filesBeforeInstall,
  guestSpec,
  hook,
  hotplug,
  installedHost,
  linkOf,
  operatorEnv,
  packagePaths,
  rulesMentioning,
  snapshotDiff,
  saveTable,
  snapshotDom0,
  teardown,
  nftTables,
  xnChains,
} from './lib/world.js';

const execOf = (unit: string, key: 'ExecStart' | 'ExecStop'): string[] => new RegExp(`^${key}=(.+)$`, 'm').exec(readFileSync(unit, 'utf8'))![1]!.split(' ');

describe('system: the Debian package (units, boot takeover, remove and purge)', function () {
  this.timeout(180_000);

  describe('units and documentation as installed', () => {
    before(async () => {
      await ensureInstalled();
    });

    it('systemd-analyze verify accepts both units (their programs and man page exist)', async () => {
      for (const unit of [DAEMON_UNIT_FILE, BRIDGE_UNIT_FILE]) {
        const r = await run('systemd-analyze', ['verify', '--man=yes', unit], { env: operatorEnv(), timeoutMs: 60_000 });
        const own = r.stderr.split('\n').filter((l) => l.includes('xennet'));
        assert.equal(r.code, 0, `${unit}: ${r.stderr}`);
        assert.deepEqual(own, [], `${unit}: ${r.stderr}`);
      }
    });

    it('xennet.service is exposed at 4.0 or less (systemd-analyze security --offline)', async () => {
      const r = await run('systemd-analyze', ['security', '--offline=true', '--threshold=40', DAEMON_UNIT_FILE], { env: operatorEnv(), timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const level = Number(/Overall exposure level for xennet\.service: ([\d.]+)/.exec(r.stdout)?.[1]);
      assert.ok(level <= 4.0, `exposure ${level}`);
    });

    it('man xennet and man xennet.yaml render without warnings; bash completion loads', async () => {
      for (const page of ['/usr/share/man/man8/xennet.8.gz', '/usr/share/man/man5/xennet.yaml.5.gz']) {
        const r = await run('man', ['--warnings', '-l', page], { env: { ...operatorEnv(), MANWIDTH: '80', MAN_KEEP_FORMATTING: '0' }, timeoutMs: 60_000 });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr.trim(), '', `${page}: ${r.stderr}`);
      }
      const eight = (await run('man', ['-l', '/usr/share/man/man8/xennet.8.gz'], { env: { ...operatorEnv(), MANWIDTH: '200' } })).stdout;
      for (const c of ['status', 'bridge <action>', 'plan', 'apply', 'check [file]', 'daemon']) assert.ok(eight.includes(`xennet ${c}`), `xennet.8 documents xennet ${c}`);
      assert.match(eight, /XENNET_RULES/);
      const five = (await run('man', ['-l', '/usr/share/man/man5/xennet.yaml.5.gz'], { env: { ...operatorEnv(), MANWIDTH: '200' } })).stdout;
      for (const k of ['defaults.inbound', 'guests.<name>.allow_in', 'identity_guard']) assert.ok(five.includes(k), `xennet.yaml.5 documents ${k}`);
      const c = await run('bash', ['-c', 'source /usr/share/bash-completion/completions/xennet && complete -p xennet'], { env: operatorEnv() });
      assert.match(c.stdout, /-F _xennet_yargs_completions xennet/);
    });
  });

  describe('the boot takeover unit on a host that was never taken over', () => {
    let host: SimHost;
    after(async () => {
      await teardown(host);
    });

    it('ExecStart takes the NIC over; ExecStop restores dom0 exactly', async () => {
      host = await installedHost({ takeover: false });
      const before = await snapshotDom0(host);
      const start = await host.dom0.exec(execOf(BRIDGE_UNIT_FILE, 'ExecStart')[0]!, execOf(BRIDGE_UNIT_FILE, 'ExecStart').slice(1), { env: operatorEnv(), timeoutMs: 60_000 });
      assert.equal(start.code, 0, start.stderr);
      const st = JSON.parse((await host.xennet(['bridge', 'status', '--json'])).stdout) as { state: string };
      assert.equal(st.state, 'taken-over');
      assert.ok(await host.lan.ping('192.168.0.2'), 'dom0 answers the LAN through the bridge');
      const stop = await host.dom0.exec(execOf(BRIDGE_UNIT_FILE, 'ExecStop')[0]!, execOf(BRIDGE_UNIT_FILE, 'ExecStop').slice(1), { env: operatorEnv(), timeoutMs: 60_000 });
      assert.equal(stop.code, 0, stop.stderr);
      assert.equal(snapshotDiff(before, await snapshotDom0(host)), '');
    });
  });

  describe('remove and purge', () => {
    let host: SimHost;
    let g: SimGuest;
    let before: string;
    after(async () => {
      await host?.stopDaemon('SIGTERM').catch(() => null);
      await teardown(host);
    });

    it('dpkg -r with a guest running: the daemon is stopped, the guest stays filtered, and the output says how to remove the firewall', async () => {
      host = await installedHost({ takeover: false });
      before = await snapshotDom0(host);
      assert.equal((await host.xennet(['bridge', 'start'])).code, 0);
      g = await host.addGuest(guestSpec(31));
      const online = await hook(host, g, 'online');
      assert.equal(online.code, 0, online.stderr);
      assert.equal(hotplug(host, g).status, 'connected');
      const rules = await rulesMentioning(host, g.vif);
      assert.ok(rules.length > 0);
      const spoof = (src: string, marker: string): Promise<boolean> =>
        arrives(g.ns, host.lan, 'lan0', hex(marker), 'udp4', [g.mac, 'ff:ff:ff:ff:ff:ff', src, '192.168.0.1', '4000', '4001', marker]);
      assert.equal(await spoof('192.168.0.200', 'pkg-spoof-before'), false, 'control: the spoofed source is dropped while installed');
      const r = await run('dpkg', ['-r', 'xennet'], { env: operatorEnv(), timeoutMs: 120_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout + r.stderr, /xennet uninstall/);
      assert.equal(existsSync('/usr/lib/xennet'), false, 'the program is gone');
      assert.ok(existsSync(`${XEN_SCRIPTS}/vif-xennet`), 'the hook stays until purge (a conffile)');
      assert.match(readFileSync('/run/xennet/autostart.off', 'utf8'), /set by the xennet package \(remove\)/, 'prerm keeps hooks from starting a daemon');
      assert.deepEqual(await rulesMentioning(host, g.vif), rules, 'the guest\'s rules are all still there');
      assert.equal(await spoof('192.168.0.200', 'pkg-spoof-after'), false, 'the spoofed source is still dropped');
      assert.equal(await spoof(g.xenstoreIp!, 'pkg-own-after'), true, 'control: its own source passes');
      // A guest started now (xl.conf still names vif-xennet, a conffile until purge) fails to
      // start: it never comes up unfiltered.
      const late = await host.addGuest(guestSpec(32));
      const r2 = await hook(host, late, 'online');
      assert.notEqual(r2.code, 0, 'the hook fails without the program');
      assert.match(r2.stderr, /vif-xennet: error: xennet is not installed \(\/usr\/lib\/xennet\/vif-entry\.mjs is missing\)/);
      assert.notEqual(hotplug(host, late).status, 'connected');
      assert.equal((await linkOf(host.dom0, late.vif))?.master, undefined, 'its vif is on no bridge');
      host.removeDevice(late);
      await host.dom0.ip('link', 'del', late.vif);
    });

    it('reinstalled, `xennet uninstall --force`, the NIC given back, dpkg -r and dpkg -P: dom0 and every file are as before dpkg -i', async () => {
      const deb = await ensureInstalled();
      const again = await run('dpkg', ['-i', deb.file], { env: operatorEnv(), timeoutMs: 120_000 });
      assert.equal(again.code, 0, again.stderr);
      assert.equal(existsSync('/run/xennet/autostart.off'), false, 'postinst lets hooks start the daemon again');
      const off = await hook(host, g, 'offline');
      assert.equal(off.code, 0, off.stderr);
      const un = await host.xennet(['uninstall', '--force']);
      assert.equal(un.code, 0, un.stderr);
      for (const t of ['iptables', 'ip6tables', 'ebtables'] as const) assert.deepEqual(await xnChains(host, t), [], `no XN- chain left in ${t}`);
      assert.equal(await nftTables(host), '', 'xennet\'s nftables tables are gone');
      for (const t of ['iptables', 'ip6tables', 'ebtables'] as const) assert.equal(await saveTable(host, t), '', `${t}: the tables xennet made are gone too (uninstall said: ${un.stdout})`);
      assert.equal((await host.xennet(['bridge', 'stop'])).code, 0);
      host.removeDevice(g);
      await host.dom0.ip('link', 'del', g.vif);
      assert.equal((await run('dpkg', ['-r', 'xennet'], { env: operatorEnv(), timeoutMs: 120_000 })).code, 0);
      const purge = await run('dpkg', ['-P', 'xennet'], { env: operatorEnv(), timeoutMs: 120_000 });
      assert.equal(purge.code, 0, purge.stderr);
      assert.equal(snapshotDiff(before, await snapshotDom0(host)), '', 'dom0: links, addresses, routes and every table as before');
      const now = changedFiles(await packagePaths(deb.file));
      const was = filesBeforeInstall!;
      const dpkgOwn = (p: string): boolean => p.startsWith('/var/lib/dpkg/') || p === RULES_FILE.replace('/etc/xen', '/etc/xen(tmpfs)');
      const diff = [...new Set([...was.keys(), ...now.keys()])].filter((p) => !dpkgOwn(p) && was.get(p) !== now.get(p)).map((p) => `${p}: ${was.get(p) ?? '(absent)'} -> ${now.get(p) ?? '(absent)'}`);
      assert.deepEqual(diff, [], 'files outside dpkg\'s database');
    });
  });

  describe('purge while the NIC is taken over', () => {
    let host: SimHost;
    after(async () => {
      await teardown(host);
    });

    it('keeps the takeover\'s journal and says so; reinstalled, `bridge stop` gives the NIC back', async () => {
      const deb = await ensureInstalled();
      assert.equal((await run('dpkg', ['-i', deb.file], { env: operatorEnv(), timeoutMs: 120_000 })).code, 0);
      host = await installedHost({ takeover: false });
      const before = await snapshotDom0(host);
      assert.equal((await host.xennet(['bridge', 'start'])).code, 0);
      const purge = await run('dpkg', ['-P', 'xennet'], { env: operatorEnv(), timeoutMs: 120_000 });
      assert.equal(purge.code, 0, purge.stderr);
      assert.match(purge.stdout + purge.stderr, /kept \/var\/lib\/xennet\/takeover-\*\.json: the NIC is still taken over/);
      assert.deepEqual(readdirSync('/var/lib/xennet').filter((f) => !f.startsWith('.')), ['takeover-xenbr0.json']);
      assert.equal((await run('dpkg', ['-i', deb.file], { env: operatorEnv(), timeoutMs: 120_000 })).code, 0);
      const stop = await host.xennet(['bridge', 'stop']);
      assert.equal(stop.code, 0, stop.stderr);
      assert.equal(snapshotDiff(before, await snapshotDom0(host)), '', 'dom0 as before the takeover');
      assert.equal((await run('dpkg', ['-P', 'xennet'], { env: operatorEnv(), timeoutMs: 120_000 })).code, 0);
      assert.equal(existsSync('/var/lib/xennet'), false, 'with no takeover left, purge removes the state directory');
    });
  });
});
