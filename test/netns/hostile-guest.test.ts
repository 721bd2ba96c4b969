/**
 * What an adversarial review of the firewall found, replayed with crafted frames on the simulated
 * host: paths around the rules (link-local group addresses, VLAN 0, ARP of other hardware types),
 * xenstore values that pointed the hooks or `apply` at someone else's interface, and rules of other
 * tools that `status` did not see. Each case first shows the hole is real (a control with the
 * protection taken away) where that can be done, then that it is closed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimHost, type GuestSpec, type SimGuest } from '../../src/sim/host.js';
import { findProgram, start } from '../../src/sys/exec.js';
import { arrives, framesPy, hex } from './lib/frames.js';
import { LineWaiter } from './lib/lines.js';
import { sweepLeftovers } from './lib/netns.js';

const macOf = (d: number): string => `00:16:3e:00:02:${d.toString(16).padStart(2, '0')}`;
const spec = (d: number, extra: Partial<GuestSpec> = {}): GuestSpec => ({ domid: d, name: `g${d}`, mac: macOf(d), addresses: [`192.168.0.${100 + d}/24`], xenstoreIp: `192.168.0.${100 + d}`, ...extra });
const LLDP = '01:80:c2:00:00:0e';

interface StatusJson {
  ok: boolean;
  problems: string[];
}

for (const backend of ['xtables', 'nftables'] as const)
describe(`hostile guests and careless operators (netns, ${backend} backend): the review's findings stay closed`, function () {
  this.timeout(300_000);
  const native = backend === 'nftables';
  // What does not depend on the firewall backend (the bridge's and the ports' own settings, the
  // MTU) runs once, with xtables; everything that is the firewall runs on both.
  let host: SimHost;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  const sh = async (tool: string, args: string[]): Promise<string> => {
    const r = await host.dom0.exec(tool, args);
    assert.equal(r.code, 0, `${tool} ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const xennet = (args: string[]) => host.xennet(args, env);
  const status = async (): Promise<{ code: number; s: StatusJson }> => {
    const r = await xennet(['status', '--json']);
    return { code: r.code, s: JSON.parse(r.stdout) as StatusJson };
  };
  const hook = (g: SimGuest, cmd: string) => host.runVifScript('vif-xennet', g, cmd, 'libxl', { env });
  const online = async (g: SimGuest): Promise<void> => {
    const r = await hook(g, 'online');
    assert.equal(r.code, 0, `online ${g.vif}: ${r.stderr}`);
  };
  const fdb = async (): Promise<{ mac: string; ifname: string; state?: string }[]> => JSON.parse(await sh('bridge', ['-j', 'fdb', 'show', 'br', 'xenbr0']) || '[]') as { mac: string; ifname: string; state?: string }[];
  const portOf = async (m: string): Promise<string | undefined> => (await fdb()).find((e) => e.mac === m && e.state !== 'permanent')?.ifname;
  const send = async (g: SimGuest, kind: string, args: string[]): Promise<void> => {
    const r = await g.ns.exec('python3', [framesPy, 'send', 'eth0', kind, ...args]);
    assert.equal(r.code, 0, r.stderr);
  };
  const gatewayMac = async (): Promise<string> => (await host.lan.ipJson<{ address: string }[]>('link', 'show', 'lan0'))[0]!.address;
  const has = (s: StatusJson, re: RegExp): boolean => s.problems.some((p) => re.test(p));
  /** Every rule of xennet's in the backend's tables, as the tools print them. */
  const rules = async (): Promise<string> => (native ? (await host.dom0.exec('nft', ['list', 'table', 'bridge', 'xennet'])).stdout : [await sh('iptables-save', []), await sh('ebtables-save', ['-t', 'nat'])].join('\n'));

  before(async () => {
    await sweepLeftovers();
    dir = mkdtempSync(join(tmpdir(), 'xnt-hostile-'));
    writeFileSync(join(dir, 'xennet.yaml'), `version: 1\nbackend: ${backend}\nguests:\n  iso:\n    isolation: true\n  web:\n    inbound: drop\n  db:\n    inbound: drop\n`);
    env = { XENNET_RULES: join(dir, 'xennet.yaml') };
  });

  beforeEach(async () => {
    host = await SimHost.create({ autostart: false });
    await host.takeover();
  });

  afterEach(async () => {
    await host?.destroy();
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  if (!native) it('frames to the link-local group addresses move no forwarding entry (no_linklocal_learn); status sees the bridge without it', async () => {
    const attacker = await host.addGuest(spec(40));
    const victim = await host.addGuest(spec(41));
    await online(attacker);
    await online(victim);
    const gw = await gatewayMac();
    assert.ok(await victim.ns.ping('192.168.0.1'));
    assert.equal(await portOf(gw), 'peth0');
    assert.match(await sh('ip', ['-d', 'link', 'show', 'xenbr0']), /no_linklocal_learn 1/);
    for (const code of ['02', '03', '0d', '0e', '0f']) {
      await send(attacker, `ether@dst=01:80:c2:00:00:${code}`, [gw, '88cc', `poison-${code}`]);
      assert.equal(await portOf(gw), 'peth0', `a frame to 01:80:c2:00:00:${code} with the gateway's source moved its entry`);
    }
    // The control: without the bridge option the same frame takes the gateway's entry.
    await sh('ip', ['link', 'set', 'xenbr0', 'type', 'bridge', 'no_linklocal_learn', '0']);
    // The gateway's own frames (ND, MLD) move its entry back at any moment: the hole is shown once
    // the entry is seen on the attacker's port after a poisoning frame, within a few tries.
    let moved = false;
    for (let i = 0; i < 5 && !moved; i++) {
      await send(attacker, `ether@dst=${LLDP}`, [gw, '88cc', `poison-control-${i}`]);
      moved = (await portOf(gw)) === attacker.vif;
    }
    assert.ok(moved, 'control: the hole is real without no_linklocal_learn');
    const st = await status();
    assert.equal(st.code, 1);
    assert.ok(has(st.s, /bridge xenbr0 learns source MACs from link-local frames/), JSON.stringify(st.s.problems));
    assert.equal((await xennet(['apply'])).code, 0);
    assert.match(await sh('ip', ['-d', 'link', 'show', 'xenbr0']), /no_linklocal_learn 1/, 'apply sets it again');
    assert.equal((await status()).code, 0);
  });

  if (!native) it('dom0\'s IP stack is closed on guest ports: a router advertisement or forged-source UDP in link-local frames reaches no dom0 route or socket', async () => {
    const attacker = await host.addGuest(spec(42));
    await online(attacker);
    const read = async (p: string): Promise<string> => (await sh('cat', [p])).trim();
    assert.equal(await read(`/proc/sys/net/ipv6/conf/${attacker.vif}/disable_ipv6`), '1');
    assert.equal(await read(`/proc/sys/net/ipv4/conf/${attacker.vif}/drop_unicast_in_l2_multicast`), '1');
    await send(attacker, `ra@dst=${LLDP}`, [attacker.mac, 'fe80::216:3eff:fe00:22a']);
    await new Promise((r) => setTimeout(r, 300));
    assert.doesNotMatch(await sh('ip', ['-6', 'route', 'show']), new RegExp(`dev ${attacker.vif.replace('.', '\\.')}`), 'no route through the guest');
    // Forged-source UDP in a link-local frame, to dom0's address, to the broadcast address and to
    // the all-hosts group: how many reach a socket bound to all addresses.
    const forged = async (marker: string): Promise<number> => {
      const receiver = start('ip', ['netns', 'exec', host.dom0.name, 'python3', framesPy, 'udprecv', '5555', hex(marker), 'stdin:0.5']);
      try {
        const w = new LineWaiter(receiver);
        await w.waitFor('ready', 30_000);
        for (const dst of ['192.168.0.2', '255.255.255.255', '224.0.0.1']) await send(attacker, `udp4@dst=${LLDP}`, [attacker.mac, LLDP, '192.168.0.250', dst, '4000', '5555', marker]);
        receiver.stdin?.end('stop\n');
        return Number((await w.waitFor(/^got \d+$/, 30_000)).split(' ')[1]);
      } finally {
        receiver.kill('SIGKILL');
      }
    };
    assert.equal(await read(`/proc/sys/net/ipv4/conf/${attacker.vif}/rp_filter`), '1');
    assert.equal(await forged('forged-to-dom0'), 0, 'unicast, broadcast and multicast with a forged source reach no dom0 socket');
    // The control: without reverse path filtering on the port, the broadcast and the multicast do.
    await sh('sysctl', ['-qw', `net.ipv4.conf.${attacker.vif.replace('.', '/')}.rp_filter=0`, 'net.ipv4.conf.all.rp_filter=0']);
    assert.ok((await forged('forged-control')) > 0, 'control: the hole is real');
    // The control: a port with dom0's stack open is reported.
    await sh('sysctl', ['-qw', `net.ipv6.conf.${attacker.vif.replace('.', '/')}.disable_ipv6=0`]);
    const st = await status();
    assert.ok(has(st.s, new RegExp(`${attacker.vif.replace('.', '\\.')}: dom0's IP stack is open`)), JSON.stringify(st.s.problems));
    assert.equal((await xennet(['apply'])).code, 0);
    assert.equal(await read(`/proc/sys/net/ipv6/conf/${attacker.vif}/disable_ipv6`), '1');
    assert.equal(await read(`/proc/sys/net/ipv4/conf/${attacker.vif}/rp_filter`), '1');
  });

  it('VLAN 0 (priority-tagged) traffic is filtered like untagged: inbound: drop holds, forged sources stay out', async () => {
    const web = await host.addGuest(spec(43, { name: 'web' }));
    const nomac = await host.addGuest(spec(44));
    await online(web);
    host.xenstored.write(`${nomac.backendPath}/mac`, ''); // no MAC known: no L2 checks, IP checks only
    await online(nomac);
    const gw = await gatewayMac();
    const toWeb = (kind: string, marker: string) => arrives(host.lan, web.ns, 'eth0', hex(marker), kind, [gw, web.mac, '192.168.0.1', '192.168.0.143', '4000', '4001', marker], 'lan0');
    assert.equal(await toWeb('udp4', 'untagged-in'), false, 'inbound: drop, untagged');
    assert.equal(await toWeb('udp4@vlan=0', 'vlan0-in'), false, 'inbound: drop, VLAN 0');
    const forged = (kind: string, marker: string) => arrives(nomac.ns, host.lan, 'lan0', hex(marker), kind, [nomac.mac, gw, '192.168.0.77', '192.168.0.1', '4000', '4001', marker]);
    assert.equal(await forged('udp4@vlan=0', 'vlan0-out'), false, 'a forged source in a VLAN 0 frame');
    if (native) {
      // The control: without the guest's chain the tagged forged frame gets out; apply puts it back.
      await sh('nft', ['flush', 'chain', 'bridge', 'xennet', `XN-O-${nomac.vif}`]);
      assert.equal(await forged('udp4@vlan=0', 'vlan0-control'), true, 'control: the hole is real');
      assert.equal((await xennet(['apply'])).code, 0);
      assert.equal(await forged('udp4@vlan=0', 'vlan0-after'), false);
      return;
    }
    // The control: with tagged IP kept from iptables the tagged frame gets in, and status says so.
    await sh('sysctl', ['-qw', 'net.bridge.bridge-nf-filter-vlan-tagged=0']);
    assert.equal(await toWeb('udp4@vlan=0', 'vlan0-control'), true, 'control: the hole is real');
    const st = await status();
    assert.ok(has(st.s, /bridge-nf-filter-vlan-tagged/), JSON.stringify(st.s.problems));
    assert.equal((await xennet(['apply'])).code, 0);
    assert.equal(await toWeb('udp4@vlan=0', 'vlan0-after'), false);
  });

  it('allow_out and allow_in of `icmp` are ICMP for IPv4 only, of `icmpv6` ICMPv6 for IPv6 only: that protocol number in the other family stays dropped (controls: the allowed ones pass)', async () => {
    const file = join(dir, 'icmp.yaml');
    writeFileSync(file, `version: 1\nbackend: ${backend}\nguests:\n  v4icmp:\n    outbound: drop\n    allow_out: [ { proto: icmp } ]\n  v6icmp:\n    outbound: drop\n    allow_out: [ { proto: icmpv6 } ]\n    inbound: drop\n    allow_in: [ { proto: icmpv6 } ]\n`);
    const e = { XENNET_RULES: file };
    const a = await host.addGuest(spec(61, { name: 'v4icmp', xenstoreIp: '192.168.0.161 2001:db8::161' }));
    const b = await host.addGuest(spec(62, { name: 'v6icmp', xenstoreIp: '192.168.0.162 2001:db8::162' }));
    for (const g of [a, b]) assert.equal((await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env: e })).code, 0);
    const gw = await gatewayMac();
    const out = (g: SimGuest, kind: string, src: string, dst: string, proto: number, marker: string) => arrives(g.ns, host.lan, 'lan0', hex(marker), kind, [g.mac, gw, src, dst, String(proto), marker]);
    assert.equal(await out(a, 'ip4proto', '192.168.0.161', '192.168.0.1', 1, 'out-icmp4'), true, 'control: ICMP out passes');
    assert.equal(await out(a, 'ip4proto', '192.168.0.161', '192.168.0.1', 17, 'out-udp4'), false, 'control: outbound: drop holds');
    assert.equal(await out(a, 'ip6proto', '2001:db8::161', '2001:db8::1', 1, 'out-v6-nh1'), false, 'IPv6 with next header 1 is not ICMP');
    assert.equal(await out(b, 'ip6proto', '2001:db8::162', '2001:db8::1', 58, 'out-icmp6'), true, 'control: ICMPv6 out passes');
    assert.equal(await out(b, 'ip4proto', '192.168.0.162', '192.168.0.1', 58, 'out-v4-p58'), false, 'IPv4 with protocol 58 is not ICMPv6');
    const toB = (kind: string, src: string, dst: string, proto: number, marker: string) => arrives(host.lan, b.ns, 'eth0', hex(marker), kind, [gw, b.mac, src, dst, String(proto), marker], 'lan0');
    assert.equal(await toB('ip6proto', '2001:db8::1', '2001:db8::162', 58, 'in-icmp6'), true, 'control: ICMPv6 in passes');
    assert.equal(await toB('ip4proto', '192.168.0.1', '192.168.0.162', 58, 'in-v4-p58'), false, 'inbound: IPv4 with protocol 58 is not ICMPv6');
  });

  if (native) it('a guest allowed to send 802.1ad cannot send IP as untagged through a priority tag (VLAN 0, alone or with a second one inside); a real S-VLAN passes (the control)', async () => {
    const file = join(dir, 'qinq.yaml');
    writeFileSync(file, `version: 1\nbackend: ${backend}\nguests:\n  qinq:\n    allow_ethertypes: [0x88a8]\n`);
    const g = await host.addGuest(spec(63, { name: 'qinq' }));
    assert.equal((await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env: { XENNET_RULES: file } })).code, 0);
    const gw = await gatewayMac();
    const forged = (mods: string, marker: string) => arrives(g.ns, host.lan, 'lan0', hex(marker), `udp4@${mods}`, [g.mac, gw, '192.168.0.150', '192.168.0.1', '4000', '4001', marker]);
    assert.equal(await forged('svlan=5', 'svlan5'), true, 'control: traffic on an S-VLAN passes');
    assert.equal(await forged('svlan=0', 'svlan0'), false, 'a forged source under an 802.1ad priority tag');
    assert.equal(await forged('vlan=0,svlan=0', 'svlan0-vlan0'), false, 'and under two priority tags');
  });

  it('ARP of another hardware type carries no claim past the ARP checks', async () => {
    const attacker = await host.addGuest(spec(45));
    await online(attacker);
    // The first frames of a port just attached can be lost (the kernel settles it): wait for it.
    assert.ok(await attacker.ns.ping('192.168.0.1'));
    const claim = (htype: string, sender: string) => arrives(attacker.ns, host.lan, 'lan0', sender.replace(/:/g, ''), 'arp-hw', [attacker.mac, sender, '192.168.0.145', htype]);
    assert.equal(await claim('1', attacker.mac), true, 'its own gratuitous ARP passes');
    assert.equal(await claim('1', 'de:ad:be:ef:00:01'), false, 'another MAC, Ethernet: dropped');
    assert.equal(await claim('6', 'de:ad:be:ef:00:02'), false, 'another MAC, hardware type 6: dropped');
  });

  it('offline finds a renamed vif by its mark when xenstore no longer names it; rules of an attached port are never removed', async () => {
    const g = await host.addGuest(spec(46, { name: 'web', vifname: 'web46' }));
    await online(g);
    host.xenstored.write(`${g.backendPath}/vifname`, '');
    const off = await hook(g, 'offline');
    assert.equal(off.code, 0, off.stderr);
    const l = (await host.dom0.ipJson<{ master?: string }[]>('link', 'show', 'web46'))[0];
    assert.equal(l?.master, undefined, 'detached');
    assert.doesNotMatch(await rules(), /web46/, 'its rules went once it was off the bridge');

    // A port whose mark is gone cannot be found: offline then removes nothing of it and says so.
    const h = await host.addGuest(spec(47, { name: 'db', vifname: 'db47' }));
    await online(h);
    await sh('ip', ['link', 'set', 'db47', 'alias', '']);
    host.xenstored.write(`${h.backendPath}/vifname`, '');
    const off2 = await hook(h, 'offline');
    assert.equal(off2.code, 1, off2.stderr);
    assert.match(off2.stderr, /db47 is still attached to xenbr0: its firewall rules stay in place/);
    assert.match(await rules(), /XN-I-db47/, 'the attached port keeps its rules');
  });

  it('apply trusts the mark over a xenstore vifname: dom0\'s uplink and another guest\'s port are never given an attacker\'s policy', async () => {
    const victim = await host.addGuest(spec(48, { name: 'db', vifname: 'db48' }));
    await online(victim);
    const attacker = await host.addGuest(spec(49));
    await online(attacker);
    // A second interface of the attacker's whose vifname names dom0's uplink, another the victim's port.
    // A third one names the uplink too, and its own device is gone (an unmarked link is never a
    // guest's on a vifname alone, as the hooks hold).
    for (const [devid, name] of [[1, 'peth0'], [2, 'db48'], [3, 'peth0']] as const) {
      const be = `/local/domain/0/backend/vif/49/${devid}`;
      for (const [k, v] of Object.entries({ vifname: name, mac: macOf(49), ip: '192.168.0.149', bridge: 'xenbr0', online: '1', state: '2', 'hotplug-status': '' })) host.xenstored.write(`${be}/${k}`, v);
      if (devid !== 3) await host.dom0.ip('link', 'add', `vif49.${devid}`, 'type', 'veth', 'peer', 'name', `x49p${devid}`);
    }
    const r = await xennet(['apply']);
    assert.equal(r.code, 0, r.stderr);
    if (native) {
      const t = await rules();
      assert.doesNotMatch(t, /peth0/, 'the uplink gets no guest chain and no dispatch entry');
      assert.match(t, new RegExp(`chain XN-O-db48 \\{\\s*ether saddr != ${macOf(48)} counter packets \\d+ bytes \\d+ drop`), 'the victim keeps its own MAC check');
      for (const c of ['XN-I4-db48', 'XN-I6-db48']) {
        const inbound = t.split(`chain ${c} {`)[1]?.split('\n\t}')[0] ?? '';
        assert.match(inbound, /^\s*counter packets \d+ bytes \d+ drop( comment "xn:[^"]+")?$/m, `and its inbound: drop (${c})`);
      }
    } else {
      const eb = await sh('ebtables-save', ['-t', 'nat']);
      assert.doesNotMatch(eb, /XN-E-peth0/, 'the uplink gets no guest chain');
      assert.match(eb, new RegExp(`-A XN-E-db48 -s ! ${macOf(48)} -j DROP`), 'the victim keeps its own MAC check');
      assert.match(await sh('iptables-save', []), /-A XN-I-db48 .*-j DROP/, 'and its inbound: drop');
    }
    assert.ok(await victim.ns.ping('192.168.0.1'), 'the LAN still works');
    assert.match(r.stderr + r.stdout, /peth0 is the vifname of 2 backends \(49\/1, 49\/3\): not treated as a guest interface/);
    // The device-gone case alone: still refused.
    host.xenstored.rm('/local/domain/0/backend/vif/49/1');
    const r2 = await xennet(['apply']);
    assert.equal(r2.code, 0, r2.stderr);
    assert.doesNotMatch(await rules(), /peth0/);
    assert.match(r2.stderr + r2.stdout, /backend 49\/3 names peth0 as its vifname, but peth0 does not carry xennet's mark/);
    assert.ok(await victim.ns.ping('192.168.0.1'), 'the LAN still works');
  });

  if (!native) it('an mtu below what IPv6 needs is refused before anything changes; a lower one is attached with a warning', async () => {
    const g = await host.addGuest(spec(50, { mtu: 1000 }));
    const r = await hook(g, 'online');
    assert.equal(r.code, 1);
    assert.match(host.xenstored.read(`${g.backendPath}/hotplug-error`) ?? '', /mtu 1000 is below 1280/);
    assert.equal((await host.dom0.ipJson<{ mtu: number }[]>('link', 'show', 'xenbr0'))[0]!.mtu, 1500, 'the bridge keeps its MTU');
    host.xenstored.write(`${g.backendPath}/mtu`, '1400');
    const ok = await hook(g, 'online');
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /mtu 1400 is below bridge xenbr0's 1500/);
  });

  // Bridge-family matches cannot read an ICMPv6 header that is not in the first fragment (and
  // without conntrack in the namespace nothing reassembles and drops such a first fragment: no
  // guest here has inbound: drop).
  if (native) it('an RA split over two fragments (its ICMPv6 header only in the second) is dropped like a whole one (control: without the guest\'s chain it arrives)', async () => {
    const attacker = await host.addGuest(spec(55));
    const victim = await host.addGuest(spec(56));
    await online(attacker);
    await online(victim);
    const send = () => arrives(attacker.ns, victim.ns, 'eth0', '0badcafe', 'ra-frag', [attacker.mac, 'fe80::216:3eff:fe00:237']);
    assert.equal(await send(), false, 'split RA');
    await sh('nft', ['flush', 'chain', 'bridge', 'xennet', `XN-O-${attacker.vif}`]);
    assert.equal(await send(), true, 'control: the fragments themselves get through');
    assert.equal((await xennet(['apply'])).code, 0);
    assert.equal(await send(), false);
  });

  if (native) it('status sees a rule of another table that may forge the established mark; with a mask without that bit it is fine', async function () {
    // (Part of it makes iptables-legacy rules: test:nft-only hides the program.)
    if (!findProgram('iptables-legacy')) this.skip();
    const web = await host.addGuest(spec(54, { name: 'web' }));
    await online(web);
    assert.equal((await status()).code, 0);
    await sh('nft', ['add', 'table', 'ip', 'marks']);
    await sh('nft', ['add', 'chain', 'ip', 'marks', 'pre', '{ type filter hook prerouting priority -160; policy accept; }']);
    await sh('nft', ['add', 'rule', 'ip', 'marks', 'pre', 'meta mark set 0x00400000']);
    const st = await status();
    assert.ok(has(st.s, /chain ip marks pre .* may set mark bit 0x400000/), JSON.stringify(st.s.problems));
    await sh('nft', ['flush', 'chain', 'ip', 'marks', 'pre']);
    await sh('nft', ['add', 'rule', 'ip', 'marks', 'pre', 'meta mark set meta mark & 0xffffff00 | 0x00000001']);
    assert.equal((await status()).code, 0, 'a mask without that bit is fine');
    // Through a jump into a regular chain of that table.
    await sh('nft', ['add', 'chain', 'ip', 'marks', 'setter']);
    await sh('nft', ['add', 'rule', 'ip', 'marks', 'setter', 'meta mark set 0x00400000']);
    await sh('nft', ['add', 'rule', 'ip', 'marks', 'pre', 'jump setter']);
    assert.ok(has((await status()).s, /chain ip marks pre .* rule "meta mark set 0x00400000" may set mark bit 0x400000/));
    await sh('nft', ['delete', 'table', 'ip', 'marks']);
    // iptables-legacy's tables are invisible to nft: read with its own tool, whichever iptables
    // the system's default is. Other software's rules there are a note; a DROP policy drops the
    // guests' bridged traffic (shown by traffic), and is a problem.
    assert.ok(await web.ns.ping('192.168.0.1'), 'control: the guest reaches the gateway');
    await sh('iptables-legacy', ['-A', 'FORWARD', '-s', '203.0.113.7', '-j', 'DROP']);
    try {
      const noted = await xennet(['status', '--json']);
      assert.equal(noted.code, 0, noted.stdout);
      assert.ok((JSON.parse(noted.stdout) as StatusJson & { notes: string[] }).notes.some((n) => /^iptables-legacy FORWARD has 1 rule of other software: with bridge-nf-call-iptables on, the guests' bridged IPv4 traffic passes them too/.test(n)), noted.stdout);
      // A rule that drops everything is as bad as the policy.
      await sh('iptables-legacy', ['-A', 'FORWARD', '-j', 'DROP']);
      assert.equal(await web.ns.ping('192.168.0.1'), false, 'iptables-legacy\'s `-j DROP` drops what xennet accepts');
      const dropsAll = await xennet(['status', '--json']);
      assert.equal(dropsAll.code, 1, dropsAll.stdout);
      assert.ok((JSON.parse(dropsAll.stdout) as StatusJson).problems.some((p) => /iptables-legacy FORWARD has a rule that drops everything/.test(p)), dropsAll.stdout);
      await sh('iptables-legacy', ['-D', 'FORWARD', '-j', 'DROP']);
      await sh('iptables-legacy', ['-P', 'FORWARD', 'DROP']);
      assert.equal(await web.ns.ping('192.168.0.1'), false, 'iptables-legacy\'s DROP policy drops what xennet accepts');
      for (const e of [env, { ...env, XENNET_IPTABLES: 'legacy' }]) {
        const r = await host.xennet(['status', '--json'], e);
        assert.equal(r.code, 1, r.stdout);
        assert.ok((JSON.parse(r.stdout) as StatusJson).problems.some((p) => /iptables-legacy FORWARD has policy DROP: it drops the guests' forwarded traffic/.test(p)), r.stdout);
      }
    } finally {
      await sh('iptables-legacy', ['-P', 'FORWARD', 'ACCEPT']);
      await sh('iptables-legacy', ['-F', 'FORWARD']);
    }
    assert.equal((await status()).code, 0, 'nothing once the legacy rules are gone');
  });

  if (!native) it('status sees what lets traffic past: a queue above the jump, a rule rewriting the marks isolation reads, a table iptables cannot show', async () => {
    const iso = await host.addGuest(spec(51, { name: 'iso' }));
    await online(iso);
    assert.equal((await status()).code, 0);
    await sh('iptables', ['-I', 'FORWARD', '1', '-j', 'NFQUEUE', '--queue-num', '0', '--queue-bypass']);
    let st = await status();
    assert.ok(has(st.s, /iptables FORWARD rule 1 \(-j NFQUEUE/), JSON.stringify(st.s.problems));
    assert.equal((await xennet(['apply'])).code, 0, 'apply lifts the jump above it');
    assert.match(await sh('iptables-save', []), /-A FORWARD -o xenbr0 -m physdev --physdev-is-bridged -j XN-FORWARD\n-A FORWARD -j NFQUEUE/);
    assert.equal((await status()).code, 0);

    await sh('iptables', ['-t', 'mangle', '-A', 'PREROUTING', '-j', 'MARK', '--set-mark', '0x1']);
    st = await status();
    assert.ok(has(st.s, /iptables mangle PREROUTING rule 1 \(-j MARK --set-xmark 0x1\/0xffffffff\) may change the packet mark bits 0x300000/), JSON.stringify(st.s.problems));
    await sh('iptables', ['-t', 'mangle', '-D', 'PREROUTING', '-j', 'MARK', '--set-mark', '0x1']);
    await sh('iptables', ['-t', 'mangle', '-A', 'PREROUTING', '-j', 'MARK', '--set-xmark', '0x1/0xff']);
    assert.equal((await status()).code, 0, 'a mask without those bits is fine');

    const nft = await host.dom0.exec('nft', ['add', 'rule', 'ip', 'filter', 'FORWARD', 'numgen', 'inc', 'mod', '1000', '==', '999', 'counter']);
    if (nft.code === 0) {
      st = await status();
      assert.ok(has(st.s, /cannot show the filter table: it holds native nftables rules/), JSON.stringify(st.s.problems));
    }
  });

  if (!native) it('a vif xennet does not manage keeps the rules of whoever manages it (Xen\'s vif-bridge side by side, FORWARD policy DROP)', async () => {
    const xen = await host.addGuest(spec(52));
    // What vif-bridge does for it: attach, and per-vif physdev rules under a DROP policy.
    await host.dom0.ip('link', 'set', xen.vif, 'master', 'xenbr0', 'up');
    await sh('iptables', ['-P', 'FORWARD', 'DROP']);
    await sh('iptables', ['-A', 'FORWARD', '-m', 'physdev', '--physdev-in', xen.vif, '--physdev-is-bridged', '-s', '192.168.0.152', '-j', 'ACCEPT']);
    await sh('iptables', ['-A', 'FORWARD', '-m', 'physdev', '--physdev-out', xen.vif, '--physdev-is-bridged', '-j', 'ACCEPT']);
    const ours = await host.addGuest(spec(53));
    await online(ours);
    // Both ports settled (the first frames of a port just attached can be lost).
    assert.ok(await xen.ns.ping('192.168.0.1'));
    assert.ok(await ours.ns.ping('192.168.0.1'));
    const gw = await gatewayMac();
    const from = (g: SimGuest, src: string, marker: string) => arrives(g.ns, host.lan, 'lan0', hex(marker), 'udp4', [g.mac, gw, src, '192.168.0.1', '4000', '4001', marker]);
    assert.equal(await from(xen, '192.168.0.152', 'xen-legit'), true, 'its own address: Xen\'s rule accepts it');
    assert.equal(await from(xen, '192.168.0.99', 'xen-forged'), false, 'a forged source: Xen\'s policy drops it, xennet does not accept it');
    assert.equal(await from(ours, '192.168.0.153', 'ours-legit'), true, 'xennet\'s guest works under the DROP policy');
    assert.equal(await from(ours, '192.168.0.98', 'ours-forged'), false);
    assert.ok(await host.dom0.ping('192.168.0.1'), 'dom0 (its own port vif0.0) too');
  });
});
