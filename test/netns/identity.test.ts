/**
 * A guest's identity, kept (netns, both backends): its policy follows its real name (xl's live
 * migration names, `xl rename`, a stub domain's guest), and its MAC and addresses are its own on
 * the bridge: a host on the LAN can neither take its forwarding entry, nor claim its address
 * (real tools: dsniff's arpspoof, THC-IPv6's fake_advertise6 and parasite6), nor prime conntrack
 * into it. Each LAN attack first works with the guard off (`identity_guard: false`): the control.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SimHost, type GuestSpec, type SimGuest } from '../../src/sim/host.js';
import { start } from '../../src/sys/exec.js';
import { arrives, framesPy, hex } from './lib/frames.js';
import { sweepLeftovers } from './lib/netns.js';

const macOf = (d: number): string => `00:16:3e:00:04:${d.toString(16).padStart(2, '0')}`;
const ip4 = (d: number): string => `192.168.0.${100 + d}`;
const ip6 = (d: number): string => `2001:db8::${(0x100 + d).toString(16)}`;
const spec = (d: number, extra: Partial<GuestSpec> = {}): GuestSpec => ({ domid: d, name: `g${d}`, mac: macOf(d), addresses: [`${ip4(d)}/24`, `${ip6(d)}/64`], xenstoreIp: `${ip4(d)} ${ip6(d)}`, ...extra });

interface VifJson {
  name: string;
  policy: string | null;
  policyName: string | null;
  policySource: string;
  firewall: string;
  claims: { mac: string[]; ipv4: string[]; ipv6: string[]; dropped: { packets: number } };
}
interface StatusJson {
  ok: boolean;
  problems: string[];
  notes: string[];
  vifs: VifJson[];
}

for (const backend of ['xtables', 'nftables'] as const)
describe(`a guest's identity (netns, ${backend} backend): its policy by its real name, its MAC and addresses its own`, function () {
  this.timeout(300_000);
  let host: SimHost;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  const rulesFile = (): string => join(dir, 'xennet.yaml');
  const writeRules = (extra = '', guests = ''): void => writeFileSync(rulesFile(), `version: 1\nbackend: ${backend}\n${extra}guests:\n  web:\n    inbound: drop\n${guests}`);
  const xennet = (args: string[]) => host.xennet(args, env);
  const hook = (g: SimGuest, cmd: string) => host.runVifScript('vif-xennet', g, cmd, 'libxl', { env });
  const online = async (g: SimGuest): Promise<void> => {
    const r = await hook(g, 'online');
    assert.equal(r.code, 0, `online ${g.vif}: ${r.stderr}`);
  };
  const status = async (): Promise<StatusJson> => JSON.parse((await xennet(['status', '--json'])).stdout) as StatusJson;
  const vifStatus = async (g: SimGuest): Promise<VifJson> => (await status()).vifs.find((v) => v.name === g.vif)!;
  const lanMac = async (): Promise<string> => (await host.lan.ipJson<{ address: string }[]>('link', 'show', 'lan0'))[0]!.address;
  const portOf = async (mac: string): Promise<string | undefined> => {
    const fdb = JSON.parse((await host.dom0.exec('bridge', ['-j', 'fdb', 'show', 'br', 'xenbr0'])).stdout || '[]') as { mac: string; ifname: string; state?: string }[];
    return fdb.find((e) => e.mac === mac && e.state !== 'permanent')?.ifname;
  };
  const lanSend = async (kind: string, args: string[]): Promise<void> => {
    const r = await host.lan.exec('python3', [framesPy, 'send', 'lan0', kind, ...args]);
    assert.equal(r.code, 0, r.stderr);
  };
  const neighbour = async (ns: SimGuest, addr: string): Promise<string | undefined> => (await ns.ns.ipJson<{ dst: string; lladdr?: string }[]>('neigh', 'show', addr)).find((n) => n.dst === addr)?.lladdr;
  const until = async (what: string, ok: () => Promise<boolean>, ms = 8000): Promise<void> => {
    const t0 = performance.now();
    while (!(await ok())) {
      if (performance.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  /** Runs a LAN-side tool for a while (it repeats its packets), then stops it. */
  const lanTool = async (file: string, args: string[], ms: number): Promise<void> => {
    const child = start('ip', ['netns', 'exec', host.lan.name, file, ...args]);
    child.stdout?.resume();
    child.stderr?.resume();
    await new Promise((r) => setTimeout(r, ms));
    child.kill('SIGKILL');
  };
  /** Whether the kernel's guard holds the guest's MAC as its port's own (read back from the tables). */
  const guarded = async (g: SimGuest): Promise<boolean> => {
    if (backend === 'nftables') return (await host.dom0.exec('nft', ['list', 'set', 'bridge', 'xennet', 'id_mac_port'])).stdout.includes(`${g.mac} . "${g.vif}"`);
    return (await host.dom0.exec('ebtables-save', ['-t', 'nat'])).stdout.includes(`-s ${g.mac} -i ${g.vif} -j RETURN`);
  };
  /** The guard off for every guest (the control), applied. */
  const guardOff = async (): Promise<void> => {
    writeRules('defaults:\n  identity_guard: false\n');
    const r = await xennet(['apply']);
    assert.equal(r.code, 0, r.stderr);
  };

  before(async () => {
    await sweepLeftovers();
    dir = mkdtempSync(join(tmpdir(), 'xnt-identity-'));
    env = { XENNET_RULES: rulesFile() };
  });

  beforeEach(async () => {
    writeRules();
    host = await SimHost.create({ autostart: false });
    await host.takeover();
  });

  afterEach(async () => {
    await host?.destroy();
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a LAN host cannot take a guest\'s forwarding entry: its frames with the guest\'s MAC are dropped before the bridge learns them, and counted', async () => {
    const victim = await host.addGuest(spec(10));
    await online(victim);
    assert.ok(await victim.ns.ping('192.168.0.1'));
    assert.equal(await portOf(victim.mac), victim.vif);
    for (let i = 0; i < 3; i++) await lanSend('ether', [victim.mac, '88b5', `takeover-${i}`]);
    assert.equal(await portOf(victim.mac), victim.vif, 'the entry stays on the guest\'s port');
    const v = await vifStatus(victim);
    assert.deepEqual(v.claims.mac, [victim.mac]);
    assert.ok(v.claims.dropped.packets >= 3, JSON.stringify(v));
    assert.ok((await status()).notes.some((n) => n.includes(`${victim.vif} (g10): the identity guard dropped`)));
    // Another guest, trusted with any source MAC (anti-spoofing off), cannot take it either.
    writeRules('', '  rogue:\n    antispoof: false\n');
    const rogue = await host.addGuest(spec(19, { name: 'rogue' }));
    await online(rogue);
    const r = await rogue.ns.exec('python3', [framesPy, 'send', 'eth0', 'ether', victim.mac, '88b5', 'guest-takeover']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await portOf(victim.mac), victim.vif, 'not from another guest\'s port either');
    // The control: without the guard the same frame moves the entry to the uplink.
    await guardOff();
    // (The victim sends now and then, which moves its entry back: send until the move is seen.)
    await until('control: the hole is real (the uplink\'s frame moves the entry)', async () => {
      await lanSend('ether', [victim.mac, '88b5', 'takeover-control']);
      return (await portOf(victim.mac)) === 'peth0';
    }, 5000);
  });

  it('a guest whose policy lets it use others\' addresses (a prefix) meets the guard after its own chains: not another guest\'s address inside its prefix; its own pass', async () => {
    writeRules('', '  wide:\n    ipv4: [192.168.0.0/24]\n');
    const victim = await host.addGuest(spec(25));
    const wide = await host.addGuest(spec(26, { name: 'wide' }));
    await online(victim);
    await online(wide);
    assert.ok(await victim.ns.ping('192.168.0.1'), 'the victim\'s own traffic (it checks every source it may carry)');
    const lan = await lanMac();
    const from = (src: string, marker: string) => arrives(wide.ns, host.lan, 'lan0', hex(marker), 'udp4', [wide.mac, lan, src, '192.168.0.1', '4000', '4001', marker]);
    assert.equal(await from('192.168.0.77', 'inside-prefix'), true, 'an address of its prefix that nobody claims passes');
    assert.equal(await from(ip4(25), 'victims-address'), false, 'the victim\'s address, inside its prefix: the guard drops it');
    assert.ok((await vifStatus(victim)).claims.dropped.packets >= 1, 'counted as a claim from another port');
    // The control: with the guard off the prefix lets it through.
    writeRules('defaults:\n  identity_guard: false\n', '  wide:\n    ipv4: [192.168.0.0/24]\n');
    const r = await xennet(['apply']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await from(ip4(25), 'victims-address-control'), true, 'control: the prefix allows it');
  });

  it('a guest with identity_guard: false given a guarded guest\'s address or MAC (a duplicated ip= or mac=) meets the guard: the guarded guest\'s claim holds (found by an adversarial review)', async () => {
    writeRules('', '  g28:\n    identity_guard: false\n  g29:\n    identity_guard: false\n');
    const victim = await host.addGuest(spec(27));
    const dupIp = await host.addGuest(spec(28, { xenstoreIp: `${ip4(27)} ${ip6(28)}` }));
    const dupMac = await host.addGuest(spec(29, { mac: macOf(27) }));
    for (const g of [victim, dupIp, dupMac]) await online(g);
    const lan = await lanMac();
    const send = (g: SimGuest, src: string, marker: string) => arrives(g.ns, host.lan, 'lan0', hex(marker), 'udp4', [g.mac, lan, src, '192.168.0.1', '4000', '4001', marker]);
    assert.equal(await send(dupIp, ip4(27), 'dup-ip'), false, 'the victim\'s address from the unguarded guest that declares it too');
    assert.equal(await send(dupMac, ip4(29), 'dup-mac'), false, 'the victim\'s MAC from the unguarded guest that has it too');
    assert.ok((await vifStatus(victim)).claims.dropped.packets >= 2, 'counted as claims from other ports');
    // The control: with the guard off for all, both pass.
    await guardOff();
    assert.equal(await send(dupIp, ip4(27), 'dup-ip-control'), true, 'control: its address passes');
    assert.equal(await send(dupMac, ip4(29), 'dup-mac-control'), true, 'control: its MAC passes');
  });

  it('a LAN host cannot prime conntrack into an inbound: drop guest with a datagram from the guest\'s address', async () => {
    const web = await host.addGuest(spec(11, { name: 'web' }));
    await online(web);
    assert.ok(await web.ns.ping('192.168.0.1'), 'its own connections work (and its port has settled)');
    const lan = await lanMac();
    const prime = () => lanSend('udp4', [lan, 'ff:ff:ff:ff:ff:ff', ip4(11), '192.168.0.1', '5353', '4000', 'prime']);
    const reply = (marker: string) => arrives(host.lan, web.ns, 'eth0', hex(marker), 'udp4', [lan, web.mac, '192.168.0.1', ip4(11), '4000', '5353', marker], 'lan0');
    assert.equal(await reply('unprimed'), false, 'inbound: drop holds for an unsolicited datagram');
    await prime();
    assert.equal(await reply('primed'), false, 'the forged "reply" stays out');
    // The guard saw it (a datagram lost on the way would prove nothing).
    assert.ok((await vifStatus(web)).claims.dropped.packets >= 1, 'the guard dropped the priming datagram');
    // The control: with the guard off, the priming datagram makes the next "reply" established.
    await guardOff();
    await prime();
    assert.equal(await reply('primed-control'), true, 'control: the hole is real');
  });

  it('a LAN host cannot claim a guest\'s IPv4 address (arpspoof) or IPv6 address (fake_advertise6, parasite6) to another guest', async () => {
    const victim = await host.addGuest(spec(12));
    const peer = await host.addGuest(spec(13));
    await online(victim);
    await online(peer);
    const lan = await lanMac();
    assert.ok(await peer.ns.ping(ip4(12)));
    assert.ok(await peer.ns.ping(ip6(12)));
    assert.equal(await neighbour(peer, ip4(12)), victim.mac);
    // arpspoof tells the peer, every two seconds, that the victim's address is at the LAN host
    // (Linux takes an unsolicited reply only for an entry it has: the ping makes a fresh one).
    assert.ok(await peer.ns.ping(ip4(12)));
    await lanTool('arpspoof', ['-i', 'lan0', '-t', ip4(13), ip4(12)], 5000);
    assert.equal(await neighbour(peer, ip4(12)), victim.mac, 'arpspoof: the peer still reaches the victim');
    // fake_advertise6: an unsolicited NA with override for the victim's address, from the LAN
    // host's own address (so only the NA target says whose address it claims).
    await lanTool('atk6-fake_advertise6', ['-n', '2', '-w', '1', 'lan0', ip6(12), ip6(13), lan, '2001:db8::1'], 2500);
    // The same with a hop-by-hop header before the ICMPv6 header (an ND guard evasion).
    await lanTool('atk6-fake_advertise6', ['-H', '-n', '2', '-w', '1', 'lan0', ip6(12), ip6(13), lan, '2001:db8::1'], 2500);
    // parasite6 answers every neighbour solicitation on the link with its own MAC.
    await peer.ns.ip('neigh', 'flush', 'dev', 'eth0');
    const parasite = start('ip', ['netns', 'exec', host.lan.name, 'atk6-parasite6', 'lan0']);
    parasite.stdout?.resume();
    parasite.stderr?.resume();
    try {
      await new Promise((r) => setTimeout(r, 1000));
      assert.ok(await peer.ns.ping(ip6(12)));
    } finally {
      parasite.kill('SIGKILL');
    }
    assert.equal(await neighbour(peer, ip6(12)), victim.mac, 'fake_advertise6 and parasite6: the peer still reaches the victim');
    assert.ok((await vifStatus(victim)).claims.dropped.packets >= 3);
    // The control: with the guard off, the same tools take the address.
    await guardOff();
    await lanTool('atk6-fake_advertise6', ['-n', '2', '-w', '1', 'lan0', ip6(12), ip6(13), lan, '2001:db8::1'], 2500);
    assert.equal(await neighbour(peer, ip6(12)), lan, 'control: fake_advertise6 takes the IPv6 address');
    assert.ok(await peer.ns.ping(ip4(12)));
    await lanTool('arpspoof', ['-i', 'lan0', '-t', ip4(13), ip4(12)], 5000);
    assert.equal(await neighbour(peer, ip4(12)), lan, 'control: arpspoof takes the IPv4 address');
  });

  it('tagged frames from the LAN carry no claim either: ARP and NA in a priority tag or behind 802.1ad, IP inside VLAN and PPPoE headers', async () => {
    const victim = await host.addGuest(spec(22));
    const web = await host.addGuest(spec(23, { name: 'web' }));
    const peer = await host.addGuest(spec(24));
    for (const g of [victim, web, peer]) await online(g);
    const lan = await lanMac();
    const fresh = async (): Promise<void> => {
      assert.ok(await peer.ns.ping(ip4(22)));
      assert.ok(await peer.ns.ping(ip6(22)));
    };
    await fresh();
    // Receivers take a priority tag (VID 0), 802.1Q or 802.1ad, as untagged.
    for (const tag of ['vlan=0', 'svlan=0']) {
      await lanSend(`garp@${tag}`, [lan, lan, ip4(22)]);
      await lanSend(`na@${tag}`, [lan, '2001:db8::1', ip6(22)]);
    }
    assert.equal(await neighbour(peer, ip4(22)), victim.mac, 'ARP in a tag');
    assert.equal(await neighbour(peer, ip6(22)), victim.mac, 'NA in a tag');
    // A datagram from web's address inside a tag or a PPPoE header primes no connection into it.
    const reply = (marker: string) => arrives(host.lan, web.ns, 'eth0', hex(marker), 'udp4', [lan, web.mac, '192.168.0.1', ip4(23), '4000', '5353', marker], 'lan0');
    for (const wrap of ['vlan=0', 'vlan=7', 'svlan=0', 'pppoe']) {
      await lanSend(`udp4@${wrap}`, [lan, 'ff:ff:ff:ff:ff:ff', ip4(23), '192.168.0.1', '5353', '4000', `prime-${wrap}`]);
      assert.equal(await reply(`reply-${wrap}`), false, `priming through ${wrap}`);
    }
    // The controls: tagged claims do reach the guests, and PPPoE priming works when nothing stops it.
    if (backend === 'nftables') {
      // Here IP inside PPPoE never reaches conntrack: the br_netfilter setting status watches.
      await host.dom0.exec('sysctl', ['-qw', 'net.bridge.bridge-nf-filter-pppoe-tagged=1']);
      assert.ok((await status()).problems.some((p) => /bridge-nf-filter-pppoe-tagged is 1, not 0/.test(p)));
      await lanSend('udp4@pppoe', [lan, 'ff:ff:ff:ff:ff:ff', ip4(23), '192.168.0.1', '5353', '4000', 'prime-control']);
      assert.equal(await reply('reply-pppoe-control'), true, 'control: priming through PPPoE');
    }
    await guardOff();
    await fresh();
    // Linux takes no override of a neighbour entry within its lock time (1 s) of an update, which
    // the pings may just have made (on a busy machine, later than they returned): the control
    // announces again, past the lock time each time, until the peer takes it.
    await until('control: ARP in a priority tag poisons the peer', async () => {
      await new Promise((r) => setTimeout(r, 1200));
      await lanSend('garp@vlan=0', [lan, lan, ip4(22)]);
      return (await neighbour(peer, ip4(22))) === lan;
    }, 10_000);
    if (backend === 'xtables') {
      await lanSend('udp4@pppoe', [lan, 'ff:ff:ff:ff:ff:ff', ip4(23), '192.168.0.1', '5353', '4000', 'prime-control']);
      assert.equal(await reply('reply-pppoe-control'), true, 'control: priming through PPPoE');
    }
  });

  it('live migration, the host it leaves: the guard ends with the vif (offline), and the guest\'s gratuitous ARP from its new host is accepted', async () => {
    const g = await host.addGuest(spec(14));
    const peer = await host.addGuest(spec(15));
    await online(g);
    await online(peer);
    const lan = await lanMac();
    assert.ok(await peer.ns.ping(ip4(14)));
    // While it is attached here, its frames from the uplink are someone else's.
    await lanSend('garp', [g.mac, g.mac, ip4(14)]);
    assert.equal(await portOf(g.mac), g.vif);
    // It runs elsewhere now: the toolstack's offline removes its vif (and with it the guard).
    const off = await hook(g, 'offline');
    assert.equal(off.code, 0, off.stderr);
    await host.dom0.ip('link', 'del', g.vif);
    host.removeDevice(g);
    await lanSend('garp', [g.mac, g.mac, ip4(14)]);
    assert.equal(await portOf(g.mac), 'peth0', 'its new host\'s announcement is learned');
    // The peer reaches it through the uplink (the LAN host answers for it here).
    await host.lan.ip('addr', 'add', `${ip4(14)}/32`, 'dev', 'lan0');
    await host.lan.ip('link', 'set', 'lan0', 'address', g.mac);
    try {
      assert.ok(await peer.ns.ping(ip4(14)), 'reachable again as soon as offline has run');
    } finally {
      await host.lan.ip('link', 'set', 'lan0', 'address', lan);
    }
    // With the daemon the guard ends earlier: when xl renames the domain away, just before the
    // guest resumes on the other host, while its vif is still here.
    await host.startDaemon(env);
    const h = await host.addGuest(spec(18));
    await online(h);
    await until('the guard', () => guarded(h));
    host.xenstored.write('/local/domain/18/name', 'g18--migratedaway');
    await until('the guard to end at the rename', async () => !(await guarded(h)), 5000);
    // (The guest here still sends now and then, which moves its entry back: announce until it sticks.)
    await until('the destination\'s announcement to be learned before the offline', async () => {
      await lanSend('garp', [h.mac, h.mac, ip4(18)]);
      return (await portOf(h.mac)) === 'peth0';
    }, 5000);
    assert.equal((await vifStatus(h)).policySource, 'migratedaway');
  });

  it('a guest received by live migration (<name>--incoming) has its own policy before and after the rename; the guard starts once it runs here (with and without the daemon)', async () => {
    for (const daemon of [true, false]) {
      if (daemon) await host.startDaemon(env);
      const d = daemon ? 16 : 17;
      const g = await host.addGuest(spec(d, { name: 'web--incoming' }));
      await online(g);
      const lan = await lanMac();
      assert.equal(await host.lan.ping(ip4(d)), false, 'web\'s inbound: drop while it is received');
      let v = await vifStatus(g);
      assert.equal(v.policy, 'web');
      assert.equal(v.policySource, 'incoming');
      assert.deepEqual(v.claims.mac, [], 'no guard while it still runs on the other host');
      assert.equal(await guarded(g), false);
      // The other host's copy still sends: its frames come in through the uplink, and are learned.
      // (The simulated guest here already runs and sends now and then, which moves its entry back:
      // announce until it sticks. What matters is that nothing drops the uplink's frames.)
      await until('the other host\'s announcement to be learned', async () => {
        await lanSend('garp', [g.mac, g.mac, ip4(d)]);
        return (await portOf(g.mac)) === 'peth0';
      }, 5000);
      // Migration done: xl renames it.
      host.xenstored.write(`/local/domain/${d}/name`, 'web');
      if (daemon) {
        await until('the daemon to follow the rename', () => guarded(g), 5000);
      } else {
        assert.equal(await guarded(g), false, 'without the daemon, nothing looks before the next hook');
        assert.equal((await status()).ok, false, 'status sees the difference');
        const other = await host.addGuest(spec(d + 10));
        await online(other);
        assert.equal(await guarded(g), true, 'the next hook followed the rename');
      }
      v = await vifStatus(g);
      assert.equal(v.policy, 'web');
      assert.equal(v.policySource, 'name');
      assert.equal(v.firewall, 'in-sync');
      assert.deepEqual(v.claims.mac, [g.mac]);
      assert.equal(await host.lan.ping(ip4(d)), false, 'still web\'s inbound: drop');
      assert.ok(await g.ns.ping('192.168.0.1'), 'it runs here now');
      await lanSend('garp', [g.mac, g.mac, ip4(d)]);
      assert.equal(await portOf(g.mac), g.vif, 'now the guard keeps its entry');
      void lan;
      if (daemon) await host.stopDaemon();
    }
  });

  it('a rename written as the online hook finishes, before the daemon watches the domain, is followed all the same', async () => {
    await host.startDaemon(env);
    const d = 18;
    const g = await host.addGuest(spec(d, { name: 'web--incoming' }));
    // xl renames a received guest once it runs here: at the latest moment, here in the same
    // turn as the hook's "connected" (the daemon's watch of the domain comes after its exit).
    const renameAtConnected = (path: string, value: string | undefined): void => {
      if (path.endsWith(`/backend/vif/${d}/0/hotplug-status`) && value === 'connected') host.xenstored.write(`/local/domain/${d}/name`, 'web');
    };
    host.xenstored.on('write', renameAtConnected);
    try {
      await online(g);
    } finally {
      host.xenstored.off('write', renameAtConnected);
    }
    assert.equal(host.xenstored.read(`/local/domain/${d}/name`), 'web');
    await until('the daemon to follow the rename', () => guarded(g), 5000);
    const v = await vifStatus(g);
    assert.equal(v.policySource, 'name');
    assert.equal(v.firewall, 'in-sync');
    await host.stopDaemon();
  });

  it('xl rename moves a guest to the new name\'s policy: within 5 s with the daemon, at the next hook without it', async () => {
    for (const daemon of [true, false]) {
      if (daemon) await host.startDaemon(env);
      const d = daemon ? 20 : 21;
      const g = await host.addGuest(spec(d, { name: `plain${d}` }));
      await online(g);
      assert.ok(await host.lan.ping(ip4(d)), 'the defaults: inbound accept');
      host.xenstored.write(`/local/domain/${d}/name`, 'web');
      if (daemon) {
        const t0 = performance.now();
        await until('web\'s policy after the rename', async () => !(await host.lan.ping(ip4(d), { waitSeconds: 1 })), 5000);
        assert.ok(performance.now() - t0 < 5000);
      } else {
        assert.ok(await host.lan.ping(ip4(d)), 'without the daemon, nothing looks before the next hook');
        const other = await host.addGuest(spec(d + 10));
        await online(other);
        assert.equal(await host.lan.ping(ip4(d)), false, 'the next hook installed web\'s policy');
      }
      const v = await vifStatus(g);
      assert.equal(v.policy, 'web');
      assert.equal(v.firewall, 'in-sync');
      if (daemon) await host.stopDaemon();
    }
  });

  if (backend === 'nftables') it('a daemon killed while it follows a rename leaves the guest filtered (old rules or new, never none); restarted, it installs the new policy', async () => {
    const g = await host.addGuest(spec(32, { name: 'plain32' }));
    await online(g);
    assert.ok(await host.lan.ping(ip4(32)), 'the defaults: inbound accept');
    const pid = await host.startDaemon({ ...env, XENNET_TEST_KILL_AT: 'firewall:written-ahead' });
    const alive = (): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    host.xenstored.write('/local/domain/32/name', 'web');
    await until('the daemon to die at its kill point (the rename\'s commit written ahead)', async () => !alive(), 8000);
    await host.stopDaemon('SIGKILL');
    const lan = await lanMac();
    const forged = () => arrives(g.ns, host.lan, 'lan0', hex('forged-after-crash'), 'udp4', [g.mac, lan, '192.168.0.250', '192.168.0.1', '4000', '4001', 'forged-after-crash']);
    await host.startDaemon(env);
    assert.equal(await forged(), false, 'its anti-spoofing survived the crash');
    await until('web\'s policy after the restart', async () => !(await host.lan.ping(ip4(32), { waitSeconds: 1 })), 10_000);
    assert.equal((await vifStatus(g)).firewall, 'in-sync');
  });

  if (backend === 'xtables') it('status calls a guest given dom0\'s own address a problem (a typo in ip= whose guard would drop dom0\'s frames)', async () => {
    const g = await host.addGuest(spec(33, { xenstoreIp: '192.168.0.2' }));
    await online(g);
    const s = await status();
    assert.equal(s.ok, false);
    assert.ok(s.problems.some((p) => /vif33\.0 \(g33\) has 192\.168\.0\.2 as its address, which is dom0's own/.test(p)), JSON.stringify(s.problems));
  });

  it('a stub domain\'s vif has its guest\'s policy (followed through /local/domain/<dm>/target)', async () => {
    host.xenstored.write('/local/domain/30/name', 'web');
    const dm = await host.addGuest(spec(31, { name: 'web-dm' }));
    host.xenstored.write('/local/domain/31/target', '30');
    await online(dm);
    assert.equal(await host.lan.ping(ip4(31)), false, 'web\'s inbound: drop');
    const v = await vifStatus(dm);
    assert.equal(v.policy, 'web');
    assert.equal(v.policySource, 'stubdom');
    assert.ok((await status()).notes.some((n) => n.includes('stub domain of domain 30')));
    // The control: the same domain without its target is a guest of its own (the defaults).
    host.xenstored.rm('/local/domain/31/target');
    assert.equal((await xennet(['apply'])).code, 0);
    assert.ok(await host.lan.ping(ip4(31)));
  });
});
