/**
 * Address learning (netns, both backends, the daemon running): a guest with no declared
 * address (learning is the default) may send from an address only once it is bound to its port:
 * from a trusted server's DHCPACK (dnsmasq on the LAN, dhclient in the guest), or first come first
 * served from its own duplicate address detection. Bindings live in the kernel with their lease
 * (they end without the daemon), survive a daemon restart and end with the vif. Each check has
 * its positive control.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SimHost, type GuestSpec, type SimGuest } from '../../src/sim/host.js';
import { start, type ExecResult } from '../../src/sys/exec.js';
import type { SimNetns } from '../../src/sim/netns.js';
import { arrives, framesPy, hex } from './lib/frames.js';
import { killByPidFiles, sweepLeftovers } from './lib/netns.js';

const macOf = (d: number): string => `00:16:3e:00:05:${d.toString(16).padStart(2, '0')}`;
const spec = (d: number, name: string): GuestSpec => ({ domid: d, name, mac: macOf(d), addresses: [] });

interface VifJson {
  name: string;
  addressSource: string;
  learned: { address: string; how: string; expiresInSeconds: number | null }[];
}
interface StatusJson {
  ok: boolean;
  problems: string[];
  notes: string[];
  vifs: VifJson[];
}

for (const backend of ['nftables', 'xtables'] as const)
describe(`address learning (netns, ${backend} backend): DHCP, DHCPv6 and first-come bindings, in the kernel with their lease`, function () {
  this.timeout(300_000);
  let host: SimHost;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  const rulesFile = (): string => join(dir, 'xennet.yaml');
  // Learning is the default: dyn1 and dyn2 are not in the file; plain is open by the file.
  const writeRules = (guests = '  plain:\n    learn_addresses: false\n'): void => writeFileSync(rulesFile(), `version: 1\nbackend: ${backend}\nguests:\n${guests}`);
  const xennet = (args: string[]) => host.xennet(args, env);
  const online = async (g: SimGuest): Promise<void> => {
    const r = await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env });
    assert.equal(r.code, 0, `online ${g.vif}: ${r.stderr}`);
  };
  const status = async (): Promise<StatusJson> => JSON.parse((await xennet(['status', '--json'])).stdout) as StatusJson;
  /** Its bindings but the link-local ones (its kernel's own DAD binds those too). */
  const learned = async (g: SimGuest): Promise<string[]> => ((await status()).vifs.find((v) => v.name === g.vif)?.learned ?? []).filter((b) => !b.address.startsWith('fe80:')).map((b) => `${b.address} ${b.how}`).sort();
  const until = async (what: string, ok: () => Promise<boolean>, ms = 8000): Promise<void> => {
    const t0 = performance.now();
    while (!(await ok())) {
      if (performance.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  /** Whether the guest reaches the gateway from this source address. */
  const reaches = async (g: SimGuest, source: string): Promise<boolean> => g.ns.ping(source.includes(':') ? '2001:db8::1' : '192.168.0.1', { source, waitSeconds: 1 });
  /**
   * That the guest reaches the gateway from this source address within a few seconds: on
   * xtables a binding's ARP rules follow it a moment after it is recorded (ebtables has no
   * sets), and a ping's ARP lost in that moment fails the ping; the negative checks stay single.
   */
  const passes = async (g: SimGuest, source: string, what = `${source} passes`): Promise<void> => until(what, () => reaches(g, source), 8000);
  const addAddress = async (g: SimGuest, cidr: string, dad = false): Promise<void> => {
    await g.ns.ip('addr', 'add', cidr, 'dev', 'eth0', ...(cidr.includes(':') && !dad ? ['nodad'] : []));
  };
  /** Sends crafted frames (frames.py) from a guest's eth0. */
  const sendFrom = async (x: SimGuest, kind: string, args: string[]): Promise<void> => {
    const r = await x.ns.exec('python3', [framesPy, 'send', 'eth0', kind, ...args], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
  };
  const ack = async (from: 'lan' | SimGuest, to: SimGuest, address: string, seconds: number): Promise<void> => {
    const ns = from === 'lan' ? host.lan : from.ns;
    const iface = from === 'lan' ? 'lan0' : 'eth0';
    const srcMac = from === 'lan' ? (await host.lan.ipJson<{ address: string }[]>('link', 'show', 'lan0'))[0]!.address : from.mac;
    const r = await ns.exec('python3', [framesPy, 'send', iface, 'dhcpack', srcMac, to.mac, from === 'lan' ? '192.168.0.1' : '192.168.0.250', address, String(seconds)]);
    assert.equal(r.code, 0, r.stderr);
  };

  /**
   * Runs `fn` with dnsmasq serving `ranges` on `iface` of `ns`; `dhclient` runs the guest's client
   * once (`-4 -1` and so on). The server and every client started are killed after.
   */
  const withDhcp = async (ns: SimNetns, iface: string, ranges: string[], fn: (dhclient: (g: SimGuest, args: string[]) => Promise<ExecResult>) => Promise<void>): Promise<void> => {
    const leases = mkdtempSync(join(tmpdir(), 'xnt-dhcp-'));
    const dnsmasq = start('ip', ['netns', 'exec', ns.name, 'dnsmasq', '--no-daemon', '--conf-file=/dev/null', '--port=0', `--interface=${iface}`, '--bind-interfaces', '--user=root', '--group=root', `--dhcp-leasefile=${join(leases, 'dnsmasq.leases')}`, ...ranges.map((r) => `--dhcp-range=${r}`)]);
    const pidFiles: string[] = [];
    try {
      await new Promise((r) => setTimeout(r, 500));
      writeFileSync(join(leases, 'dhclient.conf'), 'timeout 15;\nretry 1;\n');
      await fn((g, args) => {
        const tag = `${g.vif}${args.join('')}`;
        pidFiles.push(join(leases, `${tag}.pid`));
        return g.ns.exec('dhclient', [...args, '-v', '-sf', '/bin/true', '-cf', join(leases, 'dhclient.conf'), '-lf', join(leases, `${tag}.leases`), '-pf', join(leases, `${tag}.pid`), 'eth0'], { timeoutMs: 30_000 });
      });
    } finally {
      dnsmasq.kill('SIGKILL');
      await killByPidFiles(pidFiles);
      rmSync(leases, { recursive: true, force: true });
    }
  };

  before(async () => {
    await sweepLeftovers();
    dir = mkdtempSync(join(tmpdir(), 'xnt-learning-'));
    env = { XENNET_RULES: rulesFile() };
  });

  beforeEach(async () => {
    writeRules();
    host = await SimHost.create({ autostart: false });
    await host.takeover();
    await host.startDaemon(env);
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && process.env['XNT_DEBUG']) console.error(host.daemonLog.join(''));
    await host?.destroy();
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('before a lease only DHCP passes; the leased address then passes and no other; DHCPRELEASE ends the binding (dnsmasq on the LAN, dhclient in the guest)', async function () {
    if (!existsSync('/usr/sbin/dnsmasq') || !existsSync('/usr/sbin/dhclient')) this.skip();
    const g = await host.addGuest(spec(30, 'dyn1'));
    const open = await host.addGuest(spec(31, 'plain'));
    await online(g);
    await online(open);
    const plan = await xennet(['plan']);
    assert.equal(plan.code, 0, `the learning guest's rules are what its policy compiles to:\n${plan.stdout}${plan.stderr}`);
    // The control: a guest the rule file leaves open (learn_addresses: false) sends from anything.
    await addAddress(open, '192.168.0.99/24');
    await passes(open, '192.168.0.99', 'control: an open guest sends from a made-up address');
    let s = await status();
    assert.ok(s.notes.some((n) => n.includes(`${open.vif} (plain) has no address anti-spoofing: it may send from any IP address (learn_addresses: false`)), JSON.stringify(s, null, 1));
    assert.equal(s.vifs.find((v) => v.name === open.vif)?.addressSource, 'open');
    assert.ok(s.notes.some((n) => n.includes(`${g.vif} (dyn1) learns its addresses and has none yet (link-local aside)`)), s.notes.join('\n'));
    // Before its lease the learning guest reaches nothing from that address.
    await addAddress(g, '192.168.0.151/24');
    assert.equal(await reaches(g, '192.168.0.151'), false, 'no binding: its traffic is dropped');
    await g.ns.ip('addr', 'flush', 'dev', 'eth0', 'scope', 'global');
    const leases = mkdtempSync(join(tmpdir(), 'xnt-dhcp-'));
    const dnsmasq = start('ip', ['netns', 'exec', host.lan.name, 'dnsmasq', '--no-daemon', '--conf-file=/dev/null', '--port=0', '--interface=lan0', '--bind-interfaces', '--user=root', '--group=root', `--dhcp-leasefile=${join(leases, 'dnsmasq.leases')}`, '--dhcp-range=192.168.0.151,192.168.0.151,1h', '--dhcp-range=2001:db8::151,2001:db8::151,64,1h']);
    const dhclient = (args: string[]) => g.ns.exec('dhclient', [...args, '-v', '-sf', '/bin/true', '-cf', join(leases, 'dhclient.conf'), '-lf', join(leases, `${args[0]}.leases`), '-pf', join(leases, `${args[0]}.pid`), 'eth0'], { timeoutMs: 30_000 });
    try {
      await new Promise((r) => setTimeout(r, 500));
      writeFileSync(join(leases, 'dhclient.conf'), 'timeout 15;\nretry 1;\n');
      const v4 = await dhclient(['-4', '-1']);
      assert.equal(v4.code, 0, v4.stderr);
      assert.match(readFileSync(join(leases, '-4.leases'), 'utf8'), /fixed-address 192\.168\.0\.151;/);
      await until('the DHCPACK\'s binding', async () => (await learned(g)).includes('192.168.0.151 dhcp'));
      await addAddress(g, '192.168.0.151/24');
      await passes(g, '192.168.0.151', 'the leased address passes');
      await addAddress(g, '192.168.0.98/24');
      assert.equal(await reaches(g, '192.168.0.98'), false, 'any other address is dropped');
      s = await status();
      const v = s.vifs.find((x) => x.name === g.vif)!;
      assert.equal(v.addressSource, 'learned');
      const b = v.learned.find((x) => x.address === '192.168.0.151')!;
      assert.ok(b.expiresInSeconds !== null && b.expiresInSeconds > 3000 && b.expiresInSeconds <= 3600, JSON.stringify(b));
      // The operator's screen: the address in the vif's line, the binding in the LEARNED table.
      const text = (await xennet(['status'])).stdout;
      assert.match(text, new RegExp(`^${g.vif.replace('.', '\\.')} .* learned: 192\\.168\\.0\\.151`, 'm'), text);
      assert.match(text, /^LEARNED +ADDRESS +HOW +ENDS$/m, text);
      assert.match(text, new RegExp(`^${g.vif.replace('.', '\\.')} +192\\.168\\.0\\.151 +dhcp +in `, 'm'), text);
      assert.match(text, new RegExp(`^${open.vif.replace('.', '\\.')} .* - \\(open\\)`, 'm'), text);
      // DHCPv6 likewise.
      const v6 = await dhclient(['-6', '-1']);
      assert.equal(v6.code, 0, v6.stderr);
      await until('the DHCPv6 Reply\'s binding', async () => (await learned(g)).includes('2001:db8::151 dhcpv6'));
      await addAddress(g, '2001:db8::151/64');
      await passes(g, '2001:db8::151', 'the DHCPv6 address passes');
      await addAddress(g, '2001:db8::98/64');
      assert.equal(await reaches(g, '2001:db8::98'), false, 'any other IPv6 address is dropped');
      // The guest gives its IPv4 lease back: the binding ends at once.
      const rel = await dhclient(['-4', '-r']);
      assert.equal(rel.code, 0, rel.stderr);
      await until('the release to end the binding', async () => !(await learned(g)).includes('192.168.0.151 dhcp'));
      assert.equal(await reaches(g, '192.168.0.151'), false, 'after DHCPRELEASE the address is dropped');
    } finally {
      dnsmasq.kill('SIGKILL');
      await killByPidFiles(['-4.pid', '-6.pid'].map((f) => join(leases, f)));
      rmSync(leases, { recursive: true, force: true });
    }
  });

  it('a running guest the policy switches to learning: plan warns; its held address stops until its DHCP renewal from that address binds it again; no guest sends client messages with another\'s chaddr', async function () {
    if (!existsSync('/usr/sbin/dnsmasq') || !existsSync('/usr/sbin/dhclient')) this.skip();
    // (The daemon reads its rule file at start: it hands the hooks this one.)
    await host.stopDaemon();
    writeRules('  held:\n    learn_addresses: false\n  plain:\n    learn_addresses: false\n');
    await host.startDaemon(env);
    const g = await host.addGuest(spec(36, 'held'));
    const other = await host.addGuest(spec(37, 'dyn2'));
    await online(g);
    await online(other);
    await withDhcp(host.lan, 'lan0', ['192.168.0.165,192.168.0.165,1h'], async (dhclient) => {
      const v4 = await dhclient(g, ['-4', '-1']);
      assert.equal(v4.code, 0, v4.stderr);
      await addAddress(g, '192.168.0.165/24');
      await passes(g, '192.168.0.165', 'control: open, its leased address passes');
      // The policy now leaves it to learning (the default): plan says what that does to it.
      writeRules();
      const plan = await xennet(['plan']);
      assert.match(plan.stdout + plan.stderr, new RegExp(`${g.vif.replace('.', '\\.')} \\(held\\) switches to address learning with no binding`), plan.stdout + plan.stderr);
      const applied = await xennet(['apply']);
      assert.equal(applied.code, 0, applied.stderr);
      assert.equal(await reaches(g, '192.168.0.165'), false, 'learning, no binding: its held address is dropped');
      assert.doesNotMatch((await xennet(['plan'])).stdout, /switch(es)? to address learning/, 'once installed, no warning');
      // Its renewal: a DHCPREQUEST from the address it holds, unicast to the server.
      const lanMac = (await host.lan.ipJson<{ address: string }[]>('link', 'show', 'lan0'))[0]!.address;
      const sent = await g.ns.exec('python3', [framesPy, 'send', 'eth0', `dhcprequest@dst=${lanMac}`, g.mac, g.mac, '192.168.0.165', '192.168.0.1', lanMac]);
      assert.equal(sent.code, 0, sent.stderr);
      await until('the renewal\'s answer to bind the held address', async () => (await learned(g)).includes('192.168.0.165 dhcp'), 15_000);
      await passes(g, '192.168.0.165', 'bound again by the server\'s answer to its renewal');
      // Another guest's client message with g's chaddr never reaches the server (it would take
      // g's lease slot, or renew g's binding from another port); with its own chaddr it does.
      const marker = '00005eef0000'; // the crafted request's xid and secs
      assert.equal(await arrives(other.ns, host.lan, 'lan0', marker, 'dhcprequest', [other.mac, g.mac, '0.0.0.0', '255.255.255.255', 'ff:ff:ff:ff:ff:ff']), false, 'a client message with another guest\'s chaddr is dropped');
      assert.ok(await arrives(other.ns, host.lan, 'lan0', marker, 'dhcprequest', [other.mac, other.mac, '0.0.0.0', '255.255.255.255', 'ff:ff:ff:ff:ff:ff']), 'control: with its own chaddr it passes');
      // From an address it does not hold, only a client message with its own chaddr: not one too
      // short to carry any (a spoofed source to the servers' port, and nothing more).
      assert.equal(await arrives(other.ns, host.lan, 'lan0', hex('short-from-anywhere'), 'udp4', [other.mac, lanMac, '192.168.0.99', '192.168.0.1', '68', '67', 'short-from-anywhere']), false, 'a short datagram to port 67 from an address it does not hold is dropped');
    });
  });

  it('a DHCP server on dom0 itself (behind its eth0, the takeover\'s vif0.0 port) is trusted like the LAN\'s', async function () {
    if (!existsSync('/usr/sbin/dnsmasq') || !existsSync('/usr/sbin/dhclient')) this.skip();
    const g = await host.addGuest(spec(41, 'dyn1'));
    await online(g);
    await withDhcp(host.dom0, 'eth0', ['192.168.0.181,192.168.0.181,1h'], async (dhclient) => {
      const v4 = await dhclient(g, ['-4', '-1']);
      assert.equal(v4.code, 0, v4.stderr);
      await until('the binding from dom0\'s server', async () => (await learned(g)).includes('192.168.0.181 dhcp'));
      await addAddress(g, '192.168.0.181/24');
      await until('the lease from dom0 to pass', () => g.ns.ping('192.168.0.2', { source: '192.168.0.181', waitSeconds: 1 }), 8000);
    });
  });

  it('a lease ends in the kernel without the daemon; a restart keeps the bindings; a rogue server on another guest binds nothing; offline ends them', async () => {
    const g = await host.addGuest(spec(32, 'dyn1'));
    const rogue = await host.addGuest(spec(33, 'dyn2'));
    await online(g);
    await online(rogue);
    await addAddress(g, '192.168.0.160/24');
    await addAddress(g, '192.168.0.161/24');
    // A rogue server on another guest: its DHCPACK is dropped at its port and binds nothing.
    await ack(rogue, g, '192.168.0.160', 3600);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await learned(g), []);
    assert.equal(await reaches(g, '192.168.0.160'), false, 'a rogue server\'s lease gives nothing');
    // The control: the same ACK from the LAN binds.
    await ack('lan', g, '192.168.0.160', 3600);
    await until('the LAN server\'s binding', async () => (await learned(g)).includes('192.168.0.160 dhcp'));
    await passes(g, '192.168.0.160');
    // A short lease ends in the kernel, with no daemon to end it.
    await ack('lan', g, '192.168.0.161', 4);
    await until('the short lease\'s binding', async () => (await learned(g)).includes('192.168.0.161 dhcp'));
    await host.stopDaemon();
    const t0 = performance.now();
    // Ended in the kernel: no longer among its elements (a lost ping is no proof), and dropped.
    await until('the short lease to end in the kernel', async () => !(await learned(g)).some((b) => b.startsWith('192.168.0.161 ')), 10_000);
    assert.equal(await reaches(g, '192.168.0.161'), false, 'the ended lease is dropped');
    assert.ok(performance.now() - t0 < 10_000);
    await passes(g, '192.168.0.160', 'the long lease still passes without the daemon');
    // Without the daemon nothing new is learned: a guest that comes now gets no address from
    // its lease; one whose hook runs again keeps its recorded bindings (its rules are made
    // from the record); status says so.
    const late = await host.addGuest(spec(48, 'dyn3'));
    await online(late);
    await addAddress(late, '192.168.0.162/24');
    await ack('lan', late, '192.168.0.162', 3600);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await reaches(late, '192.168.0.162'), false, 'no daemon: a new lease binds nothing');
    await online(g);
    await passes(g, '192.168.0.160', 'a repeated online without the daemon keeps the recorded binding');
    const s = await status();
    assert.equal(s.ok, false);
    assert.ok(s.problems.some((p) => p.includes(`${g.vif}, ${rogue.vif}, ${late.vif} learn their addresses, but no daemon runs`)), s.problems.join('\n'));
    // A restarted daemon keeps the record: the long lease still passes, the ended one is gone.
    await host.startDaemon(env);
    assert.deepEqual(await learned(g), ['192.168.0.160 dhcp']);
    await passes(g, '192.168.0.160');
    // Offline ends them.
    const off = await host.runVifScript('vif-xennet', g, 'offline', 'libxl', { env });
    assert.equal(off.code, 0, off.stderr);
    await until('offline to end the bindings', async () => {
      // (xtables: the guest's own sets go with it.)
      const r = backend === 'nftables' ? await host.dom0.exec('nft', ['list', 'set', 'bridge', 'xennet', 'learned_ip4']) : await host.dom0.exec('ipset', ['list', '-n']);
      assert.equal(r.code, 0, r.stderr);
      return !r.stdout.includes(g.vif);
    });
  });

  it(`bindings are state the firewall puts back: after ${backend === 'nftables' ? '`nft flush ruleset`, apply and the next hook restore them' : '`ipset flush`, apply restores them'}`, async () => {
    const g = await host.addGuest(spec(42, 'dyn1'));
    await online(g);
    await addAddress(g, '192.168.0.190/24');
    await ack('lan', g, '192.168.0.190', 3600);
    await until('the binding', async () => (await learned(g)).includes('192.168.0.190 dhcp'));
    await passes(g, '192.168.0.190');
    for (const repair of ['apply', 'the next hook'] as const) {
      if (backend === 'nftables') {
        const f = await host.dom0.exec('nft', ['flush', 'ruleset']);
        assert.equal(f.code, 0, f.stderr);
      } else {
        if (repair !== 'apply') continue; // the rules are intact: a hook has nothing to repair
        const f = await host.dom0.exec('ipset', ['flush']);
        assert.equal(f.code, 0, f.stderr);
        assert.equal(await reaches(g, '192.168.0.190'), false, 'control: with the sets flushed the lease no longer passes');
        const s = await status();
        assert.equal(s.ok, false);
        assert.ok(s.problems.some((p) => p.includes(`recorded but not in the kernel (a set flushed by hand?): ${g.vif} 192.168.0.190`)), s.problems.join('\n'));
      }
      if (repair === 'apply') {
        const r = await xennet(['apply']);
        assert.equal(r.code, 0, r.stderr);
      } else {
        await online(await host.addGuest(spec(43, 'plain')));
      }
      assert.deepEqual(await learned(g), ['192.168.0.190 dhcp'], `after ${repair}`);
      await passes(g, '192.168.0.190', `the lease passes again after ${repair}`);
      await addAddress(g, `192.168.0.${repair === 'apply' ? 191 : 192}/24`);
      assert.equal(await reaches(g, `192.168.0.${repair === 'apply' ? 191 : 192}`), false, `and no other after ${repair}`);
    }
  });

  if (backend === 'xtables') it('xtables: a guest\'s ARP rules follow its bindings: made with its lease, gone when the lease ends; plan stays empty', async () => {
    const g = await host.addGuest(spec(49, 'dyn1'));
    await online(g);
    const arpRule = async (): Promise<boolean> => (await host.dom0.exec('ebtables-save', ['-t', 'nat'])).stdout.includes(`-A XN-E-${g.vif} -p ARP --arp-ip-src 192.168.0.163 -j RETURN`);
    assert.equal(await arpRule(), false);
    await ack('lan', g, '192.168.0.163', 3);
    await until('the ARP rule of the lease', arpRule, 15_000);
    // (The daemon installs a guest's rules a moment after its record changes: its link-local's
    // DAD may have been bound just before.)
    await until('plan to find the rules made from the record what it compiles', async () => (await xennet(['plan'])).code === 0, 15_000);
    await until('the lease\'s end to take its ARP rule', async () => !(await arpRule()), 20_000);
    const plan = await xennet(['plan']);
    assert.equal(plan.code, 0, plan.stdout);
    // Its sets go when it no longer learns, and every one of them with uninstall.
    const sets = async (): Promise<string[]> => (await host.dom0.exec('ipset', ['list', '-n'])).stdout.split('\n').filter((n) => n.startsWith('xn'));
    const other = await host.addGuest(spec(50, 'dyn2'));
    await online(other);
    assert.deepEqual((await sets()).sort(), [`xn4-${g.vif}`, `xn6-${g.vif}`, `xn4-${other.vif}`, `xn6-${other.vif}`].sort());
    writeRules('  dyn1:\n    learn_addresses: false\n');
    assert.equal((await xennet(['apply'])).code, 0);
    assert.deepEqual((await sets()).sort(), [`xn4-${other.vif}`, `xn6-${other.vif}`].sort());
    assert.equal((await xennet(['plan'])).code, 0, 'the control: nothing left');
    // A set of xennet's name that no guest learns into (left by a crash, or made by hand): plan
    // names it, apply removes it.
    assert.equal((await host.dom0.exec('ipset', ['create', 'xn4-vif9.0', 'hash:ip'])).code, 0);
    const stray = await xennet(['plan']);
    assert.equal(stray.code, 2, stray.stdout + stray.stderr);
    assert.match(stray.stdout, /learned address set of no learning guest left in the kernel: xn4-vif9\.0; apply removes it/);
    assert.equal((await xennet(['apply'])).code, 0);
    assert.deepEqual((await sets()).sort(), [`xn4-${other.vif}`, `xn6-${other.vif}`].sort());
    assert.equal((await xennet(['plan'])).code, 0);
    const record = join(host.env()['XENNET_STATE_DIR']!, 'learned.json');
    assert.ok(existsSync(record));
    const un = await xennet(['uninstall', '--force']);
    assert.equal(un.code, 0, un.stderr);
    assert.deepEqual(await sets(), []);
    assert.equal(existsSync(record), false, 'the record of bindings goes with the firewall');
  });

  it('DAD binds an address first come first served; another guest can neither take it nor send from it, and the holder keeps working', async () => {
    const a = await host.addGuest(spec(34, 'dyn1'));
    const b = await host.addGuest(spec(35, 'dyn2'));
    await online(a);
    await online(b);
    await addAddress(a, '2001:db8::77/64', true);
    await until('a\'s DAD binding', async () => (await learned(a)).includes('2001:db8::77 dad'));
    await until('a\'s address to pass', () => reaches(a, '2001:db8::77'));
    // b tries the same address: its DAD is seen but refused, and it cannot send from it.
    await addAddress(b, '2001:db8::77/64', true);
    await new Promise((r) => setTimeout(r, 2500));
    assert.deepEqual(await learned(b), []);
    await b.ns.ip('addr', 'del', '2001:db8::77/64', 'dev', 'eth0');
    await addAddress(b, '2001:db8::77/64');
    assert.equal(await reaches(b, '2001:db8::77'), false, 'b cannot send from a\'s address');
    await passes(a, '2001:db8::77', 'the holder keeps working');
    // The control: a free address binds for b as well.
    await addAddress(b, '2001:db8::78/64', true);
    await until('b\'s own DAD binding', async () => (await learned(b)).includes('2001:db8::78 dad'));
    await until('b\'s own address to pass', () => reaches(b, '2001:db8::78'));
  });

  it('SLAAC: the kernel\'s own addresses from dnsmasq\'s router advertisements, privacy address included, bind through their DAD; a made-up one stays dropped', async function () {
    if (!existsSync('/usr/sbin/dnsmasq')) this.skip();
    const g = await host.addGuest(spec(40, 'dyn1'));
    await online(g);
    await g.ns.exec('sysctl', ['-q', '-w', 'net.ipv6.conf.eth0.use_tempaddr=2', 'net.ipv6.conf.eth0.accept_ra=1']);
    const leases = mkdtempSync(join(tmpdir(), 'xnt-ra-'));
    const dnsmasq = start('ip', ['netns', 'exec', host.lan.name, 'dnsmasq', '--no-daemon', '--conf-file=/dev/null', '--port=0', '--interface=lan0', '--bind-interfaces', '--user=root', '--group=root', `--dhcp-leasefile=${join(leases, 'dnsmasq.leases')}`, '--enable-ra', '--dhcp-range=2001:db8::,ra-only,64,1h']);
    try {
      const globals = async (): Promise<{ local: string; temporary?: boolean; tentative?: boolean }[]> => {
        const a = await g.ns.ipJson<{ addr_info: { local: string; scope: string; temporary?: boolean; tentative?: boolean; dynamic?: boolean }[] }[]>('addr', 'show', 'dev', 'eth0');
        return (a[0]?.addr_info ?? []).filter((x) => x.scope === 'global' && x.dynamic === true);
      };
      await g.ns.exec('ip', ['link', 'set', 'eth0', 'down']);
      await g.ns.exec('ip', ['link', 'set', 'eth0', 'up']); // a router solicitation now
      await until('a SLAAC address and a privacy address', async () => {
        const a = await globals();
        return a.some((x) => x.temporary === true && !x.tentative) && a.some((x) => !x.temporary && !x.tentative);
      }, 30_000);
      const addrs = (await globals()).map((x) => x.local);
      await until('both bound through their DAD', async () => {
        const l = await learned(g);
        return addrs.every((a) => l.includes(`${a} dad`));
      }, 10_000);
      for (const a of addrs) await passes(g, a, `${a} passes`);
      await addAddress(g, '2001:db8::dead/64');
      assert.equal(await reaches(g, '2001:db8::dead'), false, 'a made-up address (no DAD) is dropped');
      // Link-local likewise: its own went through DAD and is bound; one added without DAD is not.
      const all = (await status()).vifs.find((v) => v.name === g.vif)!.learned.map((b) => `${b.address} ${b.how}`);
      assert.ok(all.includes('fe80::216:3eff:fe00:528 dad'), all.join());
      const lanLl = (await host.lan.ipJson<{ addr_info: { local: string; scope: string }[] }[]>('addr', 'show', 'dev', 'lan0'))[0]!.addr_info.find((a) => a.scope === 'link')!.local;
      await until('its bound link-local address to pass', () => g.ns.ping(`${lanLl}%eth0`, { source: 'fe80::216:3eff:fe00:528%eth0', waitSeconds: 1 }), 8000);
      await addAddress(g, 'fe80::dead/64');
      assert.equal(await g.ns.ping(`${lanLl}%eth0`, { source: 'fe80::dead%eth0', waitSeconds: 1 }), false, 'a link-local address without DAD is dropped');
    } finally {
      dnsmasq.kill('SIGKILL');
      rmSync(leases, { recursive: true, force: true });
    }
  });

  it('a guest received by live migration gets its addresses back from its first announcement (gratuitous ARP, unsolicited NA); an unannounced address stays dropped', async () => {
    const g = await host.addGuest(spec(36, 'dyn1--incoming'));
    await online(g);
    // It runs here now: xl renames it; the daemon follows.
    host.xenstored.write('/local/domain/36/name', 'dyn1');
    await until('the daemon to follow the rename', async () => host.daemonLog.some((l) => l.includes(`${g.vif} was received by live migration`)));
    assert.equal((await status()).vifs.find((v) => v.name === g.vif)?.addressSource, 'learned');
    assert.ok(!(await xennet(['status', '--json'])).stdout.includes('"policySource": "incoming"'));
    // Its addresses came with it; its lease was made on the other host.
    await addAddress(g, '192.168.0.170/24');
    await addAddress(g, '2001:db8::170/64');
    await addAddress(g, '192.168.0.171/24');
    assert.equal(await reaches(g, '192.168.0.170'), false, 'no binding here yet');
    // Linux announces its addresses when it resumes (netdev_notify_peers): the first of each binds.
    const send = async (kind: string, args: string[]): Promise<void> => {
      const r = await g.ns.exec('python3', [framesPy, 'send', 'eth0', kind, ...args]);
      assert.equal(r.code, 0, r.stderr);
    };
    await send('garp', [g.mac, g.mac, '192.168.0.170']);
    await send('na', [g.mac, 'fe80::216:3eff:fe00:524', '2001:db8::170']);
    await until('the announcements\' bindings', async () => (await learned(g)).join() === '192.168.0.170 announce,2001:db8::170 announce');
    // (Its neighbour entry of the gateway failed while it had no binding: resolving it again
    // takes the kernel a retransmission or two.)
    await until('the announced IPv4 address to pass', () => reaches(g, '192.168.0.170'));
    await until('the announced IPv6 address to pass', () => reaches(g, '2001:db8::170'));
    // The control: a guest not received by migration announces an address, and binds nothing.
    const other = await host.addGuest(spec(44, 'dyn2'));
    await online(other);
    await addAddress(other, '192.168.0.172/24');
    const r = await other.ns.exec('python3', [framesPy, 'send', 'eth0', 'garp', other.mac, other.mac, '192.168.0.172']);
    assert.equal(r.code, 0, r.stderr);
    await new Promise((res) => setTimeout(res, 500));
    assert.deepEqual(await learned(other), [], 'an announcement from a guest that was not received binds nothing');
    assert.equal(await reaches(other, '192.168.0.172'), false);
    // And an address it only uses (ARP requests from it, no announcement) binds nothing either.
    assert.equal(await reaches(g, '192.168.0.171'), false);
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(!(await learned(g)).some((b) => b.startsWith('192.168.0.171')), 'no binding from a plain ARP request');
  });

  // (nftables only: the xtables backend does not guard learned addresses against other ports.)
  if (backend === 'nftables') it('a leased address is the guest\'s own on the bridge: a LAN host cannot claim it (gratuitous ARP, arpspoof); with identity_guard: false it can (the control)', async () => {
    await host.stopDaemon();
    writeRules('  dyn2:\n    identity_guard: false\n  peer: {}\n');
    await host.startDaemon(env);
    const victim = await host.addGuest(spec(37, 'dyn1'));
    const open = await host.addGuest(spec(38, 'dyn2'));
    const peer = await host.addGuest({ ...spec(39, 'peer'), addresses: ['192.168.0.139/24', '2001:db8::139/64'], xenstoreIp: '192.168.0.139 2001:db8::139' });
    for (const g of [victim, open, peer]) await online(g);
    const lan = (await host.lan.ipJson<{ address: string }[]>('link', 'show', 'lan0'))[0]!.address;
    const neighbour = async (addr: string): Promise<string | undefined> => (await peer.ns.ipJson<{ dst: string; lladdr?: string }[]>('neigh', 'show', addr)).find((n) => n.dst === addr)?.lladdr;
    const lanTool = async (file: string, args: string[], ms: number): Promise<void> => {
      const child = start('ip', ['netns', 'exec', host.lan.name, file, ...args]);
      child.stdout?.resume();
      child.stderr?.resume();
      await new Promise((r) => setTimeout(r, ms));
      child.kill('SIGKILL');
    };
    for (const [g, a4] of [[victim, '192.168.0.137'], [open, '192.168.0.138']] as const) {
      await ack('lan', g, a4, 3600);
      await until(`${g.vif}'s binding`, async () => (await learned(g)).length === 1);
      await addAddress(g, `${a4}/24`);
    }
    for (const [g, a4, guarded] of [[victim, '192.168.0.137', true], [open, '192.168.0.138', false]] as const) {
      await until(`${a4} to answer the peer`, () => peer.ns.ping(a4), 8000);
      assert.equal(await neighbour(a4), g.mac);
      // Gratuitous ARP from the LAN host for the guest's address (after the neighbour entry's
      // lock time of 1 s, in which Linux takes no override), then arpspoof's directed replies.
      await new Promise((r) => setTimeout(r, 1200));
      for (let i = 0; i < 3; i++) {
        const r = await host.lan.exec('python3', [framesPy, 'send', 'lan0', 'garp', lan, lan, a4]);
        assert.equal(r.code, 0, r.stderr);
        await new Promise((res) => setTimeout(res, 300));
      }
      await lanTool('arpspoof', ['-i', 'lan0', '-t', '192.168.0.139', a4], 5000);
      const expected = guarded ? g.mac : lan;
      const dump = async (): Promise<string> => (await host.dom0.exec('nft', ['list', 'table', 'bridge', 'xennet'])).stdout;
      assert.equal(await neighbour(a4), expected, `arpspoof against ${g.vif} (guard ${guarded ? 'on' : 'off'})\n${await dump()}`);
    }
  });

  it('a defence counts as the kernel logged it: not lost behind the tester\'s own flood of what it hands the daemon, and not from a guest that may not claim the address (the control: the LAN host\'s)', async () => {
    const g = await host.addGuest(spec(38, 'dyn1'));
    const b = await host.addGuest(spec(39, 'dyn2'));
    await online(g);
    await online(b);
    const send = async (from: SimGuest | 'lan', kind: string, args: string[]): Promise<void> => {
      const r = await (from === 'lan' ? host.lan : from.ns).exec('python3', [framesPy, 'send', from === 'lan' ? 'lan0' : 'eth0', kind, ...args]);
      assert.equal(r.code, 0, r.stderr);
    };
    const lan = (await host.lan.ipJson<{ address: string }[]>('link', 'show', 'lan0'))[0]!.address;
    await host.lan.ip('addr', 'add', '2001:db8::87/64', 'dev', 'lan0', 'nodad');
    // The tester fills its share of the daemon's queue (DHCPRELEASEs it hands over, as fast as the
    // kernel lets it), then tests the LAN host's address: the host's defence still refuses it.
    const flood = g.ns.exec('python3', [framesPy, 'send', 'eth0', `dhcprelease@dst=${lan},repeat=200`, g.mac, '192.168.0.170', '192.168.0.1', lan]);
    await send(g, 'ns-dad@repeat=1', [g.mac, '2001:db8::87']);
    assert.equal((await flood).code, 0);
    // Another guest answers the tester's DAD of a free address with a forged NA (its own chains
    // drop it: it may not claim the address): that is no defence, the address binds.
    await send(g, 'ns-dad@repeat=1', [g.mac, '2001:db8::88']);
    await send(b, 'na@repeat=1', [b.mac, 'fe80::216:3eff:fe00:527', '2001:db8::88']);
    await until('the free address\'s binding, despite the forged defence', async () => (await learned(g)).includes('2001:db8::88 dad'));
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(await learned(g), ['2001:db8::88 dad'], 'the LAN host\'s address is not bound');
  });

  it('a guest that makes the LAN defend one address, as fast as it can, cannot hide the defence of another (a second guest tests a LAN host\'s address meanwhile); the control: a free address binds', async () => {
    const g = await host.addGuest(spec(43, 'dyn1'));
    const b = await host.addGuest(spec(44, 'dyn2'));
    await online(g);
    await online(b);
    await host.lan.ip('addr', 'add', '192.168.0.77/24', 'dev', 'lan0');
    await host.lan.ip('addr', 'add', '2001:db8::77/64', 'dev', 'lan0', 'nodad');
    const test = (kind: string, address: string): Promise<void> => sendFrom(g, `${kind}@repeat=1`, [g.mac, address]);
    // b tests the gateway's addresses thousands of times a second: the LAN defends every test.
    const flood = Promise.all([
      b.ns.exec('python3', [framesPy, 'send', 'eth0', 'arp-probe@repeat=4000', b.mac, '192.168.0.1'], { timeoutMs: 60_000 }),
      b.ns.exec('python3', [framesPy, 'send', 'eth0', 'ns-dad@repeat=4000', b.mac, '2001:db8::1'], { timeoutMs: 60_000 }),
    ]);
    await new Promise((r) => setTimeout(r, 800));
    await test('arp-probe', '192.168.0.77');
    await test('ns-dad', '2001:db8::77');
    await test('arp-probe', '192.168.0.89');
    await test('ns-dad', '2001:db8::89');
    for (const r of await flood) assert.equal(r.code, 0, r.stderr);
    await until('the free addresses\' bindings', async () => (await learned(g)).join() === '192.168.0.89 arp-probe,2001:db8::89 dad');
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(await learned(g), ['192.168.0.89 arp-probe', '2001:db8::89 dad'], 'the LAN host\'s addresses are not bound');
    assert.deepEqual(await learned(b), [], 'nor the gateway\'s');
  });

  it('a guest flooding tests of an address the LAN holds (using up its defences\' rate) hides that defence from no other guest\'s test, nor do its ARP replies to the tester; the control: a free address binds', async () => {
    const g = await host.addGuest(spec(52, 'dyn1'));
    const b = await host.addGuest(spec(53, 'dyn2'));
    await online(g);
    await online(b);
    await host.lan.ip('addr', 'add', '192.168.0.77/24', 'dev', 'lan0');
    await host.lan.ip('addr', 'add', '2001:db8::77/64', 'dev', 'lan0', 'nodad');
    const send = sendFrom;
    await send(b, 'arp-probe@repeat=1', [b.mac, '192.168.0.93']);
    await until('b\'s own address', async () => (await learned(b)).includes('192.168.0.93 arp-probe'));
    // b floods until T; g tests just before T, when the rate of the defences is used up and no
    // defence of b's tests follows within g's tentative time.
    const T = Date.now() / 1000 + 3;
    await Promise.all([
      send(b, `arp-probe@until=${T}`, [b.mac, '192.168.0.77']),
      send(b, `ns-dad@until=${T}`, [b.mac, '2001:db8::77']),
      // Replies to g's probes, from b's own address: they pass b's checks.
      send(b, `arp-reply@until=${T}`, [b.mac, '192.168.0.93', g.mac, '0.0.0.0']),
      ...([['arp-probe', '192.168.0.77'], ['ns-dad', '2001:db8::77'], ['arp-probe', '192.168.0.94'], ['ns-dad', '2001:db8::94']] as const).map(([kind, a]) => send(g, `${kind}@repeat=1,at=${T - 0.003}`, [g.mac, a])),
    ]);
    await until('the free addresses\' bindings', async () => (await learned(g)).join() === '192.168.0.94 arp-probe,2001:db8::94 dad', 10_000);
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(await learned(g), ['192.168.0.94 arp-probe', '2001:db8::94 dad'], 'the LAN host\'s addresses are not bound');
    assert.deepEqual(await learned(b), ['192.168.0.93 arp-probe']);
  });

  it('a vif name outlives its domain: what an earlier domain learned on it (its offline never ran) is not the next one\'s, with or without the daemon', async () => {
    const a = await host.addGuest({ ...spec(61, 'dyn1'), vifname: 'web0' });
    await online(a);
    await addAddress(a, '192.168.0.171/24');
    // (The server sends its ACK again until it is bound, as a client retransmits its request.)
    await until('the lease\'s binding', async () => {
      await ack('lan', a, '192.168.0.171', 3600);
      await new Promise((r) => setTimeout(r, 1000));
      return ((await status()).vifs.find((v) => v.name === 'web0')?.learned ?? []).some((b) => b.address === '192.168.0.171');
    }, 15_000);
    await passes(a, '192.168.0.171', 'control: domain 61 sends from its lease');
    // Domain 61 goes without its offline (a crash of the toolstack), and domain 62 gets the
    // same vif name; no daemon runs to follow it.
    await host.stopDaemon();
    await host.dom0.ip('link', 'del', 'web0');
    host.removeDevice(a);
    const b = await host.addGuest({ ...spec(62, 'dyn2'), vifname: 'web0' });
    await online(b);
    await addAddress(b, '192.168.0.171/24');
    assert.equal(await reaches(b, '192.168.0.171'), false, 'domain 62 does not inherit domain 61\'s lease');
    const record = JSON.parse(readFileSync(join(host.env()['XENNET_STATE_DIR']!, 'learned.json'), 'utf8')) as { bindings: { vif: string; address: string }[] };
    assert.ok(!record.bindings.some((x) => x.vif === 'web0' && x.address === '192.168.0.171'), JSON.stringify(record));
  });

  if (backend === 'nftables') it('the learned record\'s lock held by a process that does not let go (a `status` stopped mid-read): the offlines of learning guests wait for it at most 2 s under the hotplug lock, and the next guest comes online in its time', async function () {
    const guests = [await host.addGuest(spec(71, 'dyn1')), await host.addGuest(spec(72, 'dyn2')), await host.addGuest(spec(73, 'dyn3'))];
    for (const g of guests) await online(g);
    const holder = start('flock', ['--close', join(host.env()['XENNET_STATE_DIR']!, 'learned.lock'), 'sleep', '60']);
    try {
      await new Promise((r) => setTimeout(r, 300));
      for (const g of guests) {
        const r = await host.runVifScript('vif-xennet', g, 'offline', 'libxl', { env });
        assert.equal(r.code, 0, r.stderr);
      }
      const plain = await host.addGuest({ ...spec(74, 'plain'), addresses: ['192.168.0.174/24'], xenstoreIp: '192.168.0.174' });
      const t0 = performance.now();
      await online(plain);
      const took = performance.now() - t0;
      // One wait of 10 s per learning guest under the hotplug lock made it 30 s.
      assert.ok(took < 12_000, `the online took ${Math.round(took)} ms`);
      assert.ok(host.daemonLog.join('').includes('the learned bindings could not be removed'), 'the offlines said what they could not do');
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('never the gateway\'s or dom0\'s address, nor one inside another guest\'s (guard or not, its MAC\'s link-local too); a LAN host defends its own against a single DAD or ARP probe; an ACK for another client binds nothing, and a flood of them leaves the guest its own', async () => {
    await host.stopDaemon();
    writeRules('  unguarded:\n    identity_guard: false\n');
    await host.startDaemon(env);
    const g = await host.addGuest(spec(45, 'dyn1'));
    const prefixed = await host.addGuest({ ...spec(46, 'prefixed'), addresses: ['192.168.0.97/24'], xenstoreIp: '192.168.0.96/28' });
    const unguarded = await host.addGuest({ ...spec(47, 'unguarded'), addresses: ['192.168.0.139/24'], xenstoreIp: '192.168.0.139' });
    for (const x of [g, prefixed, unguarded]) await online(x);
    const send = async (kind: string, args: string[], from: 'guest' | 'lan' = 'guest'): Promise<void> => {
      const r = await (from === 'guest' ? g.ns : host.lan).exec('python3', [framesPy, 'send', from === 'guest' ? 'eth0' : 'lan0', kind, ...args]);
      assert.equal(r.code, 0, r.stderr);
    };
    await host.lan.ip('addr', 'add', '192.168.0.77/24', 'dev', 'lan0');
    await host.lan.ip('addr', 'add', '2001:db8::77/64', 'dev', 'lan0', 'nodad');
    // The gateway's and dom0's addresses are refused at once, and so is what another guest's
    // addresses take in; the LAN host defends .77, ::77 and the gateway's ::1 against one probe
    // each (Linux's DAD sends one: the defence comes back within a millisecond).
    for (const a of ['192.168.0.1', '192.168.0.2', '192.168.0.100', '192.168.0.139']) await send('arp-probe@repeat=1', [g.mac, a]);
    await send('ns-dad@repeat=1', [g.mac, 'fe80::216:3eff:fe00:52e']); // prefixed's link-local
    await send('arp-probe@repeat=1', [g.mac, '192.168.0.77']);
    await send('ns-dad@repeat=1', [g.mac, '2001:db8::77']);
    await send('ns-dad@repeat=1', [g.mac, '2001:db8::1']);
    // The control: a free address binds the same way.
    await send('arp-probe@repeat=1', [g.mac, '192.168.0.78']);
    await send('ns-dad@repeat=1', [g.mac, '2001:db8::78']);
    await until('the free addresses\' bindings', async () => (await learned(g)).join() === '192.168.0.78 arp-probe,2001:db8::78 dad');
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(await learned(g), ['192.168.0.78 arp-probe', '2001:db8::78 dad'], 'nothing but the free addresses');
    const all = (await status()).vifs.find((v) => v.name === g.vif)!.learned.map((b) => b.address);
    assert.ok(all.includes('fe80::216:3eff:fe00:52d'), `control: its own link-local is bound (${all.join()})`);
    assert.ok(!all.includes('fe80::216:3eff:fe00:52e'), 'another guest\'s link-local is not');
    assert.ok(await host.dom0.ping('192.168.0.1'), 'dom0 keeps its gateway');
    // A DHCPACK broadcast for another client (chaddr not the guest's) binds nothing, however many.
    const lan = (await host.lan.ipJson<{ address: string }[]>('link', 'show', 'lan0'))[0]!.address;
    await send('dhcpack@dst=ff:ff:ff:ff:ff:ff,repeat=300', [lan, '02:00:00:00:00:99', '192.168.0.1', '192.168.0.79', '3600'], 'lan');
    await ack('lan', g, '192.168.0.80', 3600);
    await until('its own lease\'s binding after the flood', async () => (await learned(g)).includes('192.168.0.80 dhcp'), 5000);
    assert.ok(!(await learned(g)).some((b) => b.startsWith('192.168.0.79 ')), 'the other client\'s lease is not the guest\'s');
  });

});
