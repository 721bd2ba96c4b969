/**
 * The guest firewall on the simulated Xen host, proven with traffic: what is allowed passes,
 * every spoofing attempt is dropped (each with a positive control sent the legitimate way),
 * allow rules open exactly what they list, and the firewall leaves nothing behind and touches
 * nothing of anyone else's.
 */
import assert from 'node:assert/strict';
import { findProgram } from '../../src/sys/exec.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { SimHost, xennetCli, type SimGuest } from '../../src/sim/host.js';
import { arrives, hex, listen, reaches } from './lib/frames.js';
import { sweepLeftovers } from './lib/netns.js';

const RULES = `version: 1
guests:
  web01:
    mac: "00:16:3e:00:00:05"
    ipv4: [192.168.0.105]
    ipv6: ["2001:db8::105"]
    inbound: drop
    allow_in:
      - { proto: tcp, ports: [80, 443] }
      - { proto: tcp, ports: [22], from: [192.168.0.0/24] }
      - { proto: udp, ports: [53] }
      - { proto: icmp, icmp_types: [8] }
      - { proto: icmpv6, icmp_types: [128] }
  db01:
    mac: "00:16:3e:00:00:06"
    ipv4: [192.168.0.106]
    ipv6: ["2001:db8::106"]
    isolation: true
    allow_ethertypes: [0x88b5]
  router01:
    mac: "00:16:3e:00:00:08"
    ipv4: [192.168.0.108]
    ipv6: ["2001:db8::108"]
    router_advertisements: true
    dhcp_server: true
`;

const WEB_MAC = '00:16:3e:00:00:05';
const GW_MAC_ANY = 'ff:ff:ff:ff:ff:ff';

/**
 * The same expectations on three backends: xtables with iptables-nft, xtables with
 * iptables-legacy, and native nftables (selected in the rule file, as an operator would).
 */
for (const backend of ['nft', 'legacy', 'nftables'] as const)
describe(`guest firewall (netns, simulated Xen host, real traffic, ${backend === 'nftables' ? 'nftables backend' : `iptables-${backend}`})`, function () {
  this.timeout(240_000);
  const native = backend === 'nftables';
  // What ebtables checks (MAC, ARP, ethertypes, isolation) is the same with either iptables
  // variant (ebtables is always ebtables-nft), and some IP cases repeat others: those run on
  // iptables-nft and nftables only, to keep CI within its time.
  const notOnLegacy = backend === 'legacy' ? (_title: string, _fn: () => Promise<void>): void => undefined : it;
  /** The iptables tools of this backend (ebtables is ebtables-nft either way). */
  const tool = (name: string): string => (backend === 'legacy' && name.startsWith('ip') ? name.replace(/^(ip6?tables)/, '$1-legacy') : name);
  const nft = async (...args: string[]): Promise<string> => {
    const r = await host.dom0.exec('nft', args);
    assert.equal(r.code, 0, `nft ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  /** Everything of xennet's in the kernel, as text (xtables tables and nftables tables). */
  const everything = async (): Promise<string> => [await save('iptables-save'), await save('ip6tables-save'), await save('ebtables-save'), (await host.dom0.exec('ebtables', ['-t', 'nat', '-L'])).stdout, (await host.dom0.exec('nft', ['list', 'ruleset'])).stdout].join('\n');
  let host: SimHost;
  let web: SimGuest;
  let db: SimGuest;
  let anon: SimGuest;
  let router: SimGuest;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  const save = async (name: string): Promise<string> => (await host.dom0.exec(tool(name), [])).stdout;
  const xennet = (args: string[]) => host.xennet(args, env);

  before(async () => {
    await sweepLeftovers();
    dir = mkdtempSync(join(tmpdir(), 'xnt-rules-'));
    writeFileSync(join(dir, 'xennet.yaml'), `backend: ${native ? 'nftables' : 'xtables'}\n${RULES}`);
    env = native ? { XENNET_RULES: join(dir, 'xennet.yaml') } : { XENNET_RULES: join(dir, 'xennet.yaml'), XENNET_IPTABLES: backend };
    host = await SimHost.create({ autostart: false });
    await host.takeover();
    web = await host.addGuest({ domid: 5, name: 'web01', mac: WEB_MAC, addresses: ['192.168.0.105/24', '2001:db8::105/64'] });
    db = await host.addGuest({ domid: 6, name: 'db01', mac: '00:16:3e:00:00:06', addresses: ['192.168.0.106/24', '2001:db8::106/64'] });
    anon = await host.addGuest({ domid: 7, name: 'anon', mac: '00:16:3e:00:00:07', addresses: ['192.168.0.107/24'], xenstoreIp: '192.168.0.107' });
    router = await host.addGuest({ domid: 8, name: 'router01', mac: '00:16:3e:00:00:08', addresses: ['192.168.0.108/24', '2001:db8::108/64'] });
    for (const g of [web, db, anon, router]) {
      const r = await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env });
      assert.equal(r.code, 0, r.stderr);
    }
    await host.lan.ip('addr', 'add', '10.5.0.1/32', 'dev', 'lan0');
  });

  after(async () => {
    await host?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the rules the hooks installed are exactly what the rule file compiles to (plan exit 0)', async () => {
    const r = await xennet(['plan']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /nothing to do/);
    assert.match(r.stdout, /bridge-nf-call-iptables=1 bridge-nf-call-ip6tables=1/);
  });

  it('allowed traffic passes: to the gateway (IPv4, IPv6), to dom0, between non-isolated guests', async () => {
    assert.ok(await web.ns.ping('192.168.0.1', { waitSeconds: 3 }));
    assert.ok(await web.ns.ping('2001:db8::1', { waitSeconds: 3 }));
    assert.ok(await web.ns.ping('192.168.0.2'));
    assert.ok(await anon.ns.ping('192.168.0.1'));
    assert.ok(await anon.ns.ping('192.168.0.105'), 'anon -> web01: icmp echo is allowed in');
  });

  it('drops IPv4 from a source that is not the guest\'s (control: its own source passes)', async () => {
    const send = (src: string, marker: string) => arrives(web.ns, host.lan, 'lan0', hex(marker), 'udp4', [WEB_MAC, GW_MAC_ANY, src, '192.168.0.1', '4000', '4001', marker]);
    assert.equal(await send('192.168.0.105', 'own-v4-source'), true);
    assert.equal(await send('192.168.0.200', 'spoofed-v4-src'), false);
    assert.equal(await send('192.168.0.106', 'other-guest-v4'), false);
  });

  notOnLegacy('anti-spoofing from xenstore for a guest absent from the rule file', async () => {
    const send = (src: string, marker: string) => arrives(anon.ns, host.lan, 'lan0', hex(marker), 'udp4', ['00:16:3e:00:00:07', GW_MAC_ANY, src, '192.168.0.1', '4000', '4001', marker]);
    assert.equal(await send('192.168.0.107', 'anon-own-src'), true);
    assert.equal(await send('192.168.0.105', 'anon-spoofs-web'), false);
  });

  notOnLegacy('drops frames with a foreign source MAC', async () => {
    const send = (srcMac: string, marker: string) => arrives(web.ns, host.lan, 'lan0', hex(marker), 'udp4', [srcMac, GW_MAC_ANY, '192.168.0.105', '192.168.0.1', '4000', '4001', marker]);
    assert.equal(await send(WEB_MAC, 'own-mac'), true);
    assert.equal(await send('00:16:3e:99:99:99', 'foreign-mac'), false);
  });

  notOnLegacy('drops gratuitous ARP for another guest\'s address, and ARP with a foreign sender MAC', async () => {
    const garp = (senderMac: string, ip: string) =>
      arrives(web.ns, host.lan, 'lan0', senderMac.replace(/:/g, '') + Buffer.from(ip.split('.').map(Number)).toString('hex'), 'garp', [WEB_MAC, senderMac, ip]);
    assert.equal(await garp(WEB_MAC, '192.168.0.105'), true, 'own address: passes');
    assert.equal(await garp(WEB_MAC, '192.168.0.106'), false, 'db01\'s address');
    assert.equal(await garp('00:16:3e:00:00:06', '192.168.0.105'), false, 'foreign sender MAC');
  });

  it('drops IPv6 from a foreign address (control: own address passes)', async () => {
    const send = (src: string, marker: string) => arrives(web.ns, host.lan, 'lan0', hex(marker), 'udp6', [WEB_MAC, '33:33:00:00:00:01', src, 'ff02::1', '4000', '4001', marker]);
    assert.equal(await send('2001:db8::105', 'own-v6-source'), true);
    assert.equal(await send('fe80::216:3eff:fe00:5', 'eui64-linklocal'), true, 'the EUI-64 link-local of the MAC');
    assert.equal(await send('2001:db8::999', 'foreign-v6-src'), false);
    assert.equal(await send('fe80::1234', 'other-linklocal'), false);
  });

  it('drops router advertisements and neighbour advertisements for foreign targets', async () => {
    const target = ipHex;
    assert.equal(await arrives(web.ns, host.lan, 'lan0', target('2001:db8::105'), 'na', [WEB_MAC, '2001:db8::105', '2001:db8::105']), true, 'NA for its own address');
    assert.equal(await arrives(web.ns, host.lan, 'lan0', target('2001:db8::106'), 'na', [WEB_MAC, '2001:db8::105', '2001:db8::106']), false, 'NA for db01\'s address');
    assert.equal(await arrives(web.ns, host.lan, 'lan0', '0badcafe', 'ra', [WEB_MAC, 'fe80::216:3eff:fe00:5']), false, 'router advertisement');
  });

  it('drops DHCP and DHCPv6 server replies from a guest (control: the DHCP client exchange from 0.0.0.0 passes)', async () => {
    assert.equal(await arrives(web.ns, host.lan, 'lan0', '00005eef0000', 'dhcprequest', [WEB_MAC, WEB_MAC, '0.0.0.0', '255.255.255.255', GW_MAC_ANY]), true, 'a client message with its own chaddr, from 0.0.0.0');
    assert.equal(await arrives(web.ns, host.lan, 'lan0', hex('dhcp-client'), 'udp4', [WEB_MAC, GW_MAC_ANY, '0.0.0.0', '255.255.255.255', '68', '67', 'dhcp-client']), false, 'but nothing to the server port without its chaddr');
    assert.equal(await arrives(web.ns, host.lan, 'lan0', hex('dhcp-offer'), 'udp4', [WEB_MAC, GW_MAC_ANY, '192.168.0.105', '255.255.255.255', '67', '68', 'dhcp-offer']), false);
    assert.equal(await arrives(web.ns, host.lan, 'lan0', hex('dhcp6-reply'), 'udp6', [WEB_MAC, '33:33:00:00:00:01', 'fe80::216:3eff:fe00:5', 'ff02::1', '547', '546', 'dhcp6-reply']), false);
    // A rogue server need not answer from the server port (10).
    assert.equal(await arrives(web.ns, host.lan, 'lan0', hex('dhcp-offer-1234'), 'udp4', [WEB_MAC, GW_MAC_ANY, '192.168.0.105', '255.255.255.255', '1234', '68', 'dhcp-offer-1234']), false);
    assert.equal(await arrives(web.ns, host.lan, 'lan0', hex('dhcp6-adv-34403'), 'udp6', [WEB_MAC, '33:33:00:00:00:01', 'fe80::216:3eff:fe00:5', 'ff02::1', '34403', '546', 'dhcp6-adv-34403']), false);
  });

  notOnLegacy('router_advertisements: true and dhcp_server: true let exactly that guest send RAs and DHCP/DHCPv6 replies', async () => {
    const R = '00:16:3e:00:00:08';
    assert.equal(await arrives(router.ns, host.lan, 'lan0', '0badcafe', 'ra', [R, 'fe80::216:3eff:fe00:8']), true, 'router advertisement');
    assert.equal(await arrives(router.ns, host.lan, 'lan0', hex('r-offer'), 'udp4', [R, GW_MAC_ANY, '192.168.0.108', '255.255.255.255', '67', '68', 'r-offer']), true, 'DHCP offer');
    assert.equal(await arrives(router.ns, host.lan, 'lan0', hex('r-dhcp6'), 'udp6', [R, '33:33:00:00:00:01', 'fe80::216:3eff:fe00:8', 'ff02::1', '547', '546', 'r-dhcp6']), true, 'DHCPv6 reply');
    assert.equal(await arrives(router.ns, host.lan, 'lan0', hex('r-spoof'), 'udp4', [R, GW_MAC_ANY, '192.168.0.250', '255.255.255.255', '67', '68', 'r-spoof']), false, 'still only from its own address');
  });

  it('lets through what a guest legitimately sends from no address: DAD, MLDv2 reports, ARP probes', async () => {
    assert.equal(await arrives(web.ns, host.lan, 'lan0', ipHex('2001:db8::105'), 'ns-dad', [WEB_MAC, '2001:db8::105']), true, 'DAD: NS from :: to the solicited-node group');
    assert.equal(await arrives(web.ns, host.lan, 'lan0', ipHex('ff02::1:3'), 'mld2', [WEB_MAC, 'ff02::1:3']), true, 'MLDv2 report from ::');
    assert.equal(await arrives(web.ns, host.lan, 'lan0', 'c0a80069', 'arp-probe', [WEB_MAC, '192.168.0.105']), true, 'ARP probe (sender 0.0.0.0)');
    assert.equal(await arrives(web.ns, host.lan, 'lan0', 'c0a8006a', 'arp-probe', ['00:16:3e:00:00:99', '192.168.0.106']), false, 'but not with a foreign MAC');
  });

  it('an NA behind a Destination Options header cannot claim another guest\'s address (7)', async () => {
    assert.equal(await arrives(web.ns, host.lan, 'lan0', ipHex('2001:db8::106'), 'na-dstopt', [WEB_MAC, '2001:db8::105', '2001:db8::106']), false, 'shifted target, another guest\'s address');
    assert.equal(await arrives(web.ns, host.lan, 'lan0', ipHex('2001:db8::105'), 'na-dstopt', [WEB_MAC, '2001:db8::105', '2001:db8::105']), false, 'no legitimate NA has an extension header');
    assert.equal(await arrives(web.ns, host.lan, 'lan0', ipHex('2001:db8::105'), 'na', [WEB_MAC, '2001:db8::105', '2001:db8::105']), true, 'control: a plain NA for its own address');
  });

  notOnLegacy('drops other ethertypes unless allowed for the guest', async () => {
    assert.equal(await arrives(web.ns, host.lan, 'lan0', hex('exp-ethertype-w'), 'ether', [WEB_MAC, '88b5', 'exp-ethertype-w']), false);
    assert.equal(await arrives(db.ns, host.lan, 'lan0', hex('exp-ethertype-d'), 'ether', ['00:16:3e:00:00:06', '88b5', 'exp-ethertype-d']), true, 'db01 allows 0x88b5');
  });

  it('allow_in opens exactly the listed ports and sources (inbound drop)', async () => {
    const stopTcp = await listen(web.ns, 'tcp', [80, 443, 22, 8080]);
    const stopUdp = await listen(web.ns, 'udp', [53, 54]);
    try {
      assert.equal(await reaches(host.lan, 'tcp', '192.168.0.105', 80), true, 'tcp 80');
      assert.equal(await reaches(host.lan, 'tcp', '192.168.0.105', 443), true, 'tcp 443');
      assert.equal(await reaches(host.lan, 'tcp', '192.168.0.105', 8080), false, 'tcp 8080 is not listed');
      assert.equal(await reaches(host.lan, 'tcp', '192.168.0.105', 22, '192.168.0.1'), true, 'tcp 22 from 192.168.0.0/24');
      assert.equal(await reaches(host.lan, 'tcp', '192.168.0.105', 22, '10.5.0.1'), false, 'tcp 22 from outside 192.168.0.0/24');
      assert.equal(await reaches(host.lan, 'udp', '192.168.0.105', 53), true, 'udp 53');
      assert.equal(await reaches(host.lan, 'udp', '192.168.0.105', 54), false, 'udp 54 is not listed');
      assert.equal(await reaches(host.lan, 'tcp', '2001:db8::105', 80), true, 'tcp 80 over IPv6');
      assert.equal(await reaches(host.lan, 'tcp', '2001:db8::105', 8080), false, 'tcp 8080 over IPv6');
      assert.ok(await host.lan.ping('2001:db8::105'), 'icmpv6 echo allowed');
      assert.ok(await web.ns.ping('192.168.0.1'), 'replies to the guest\'s own connections pass (conntrack)');
    } finally {
      stopTcp();
      stopUdp();
    }
  });

  notOnLegacy('isolation: db01 neither reaches nor is reached by other guests, but reaches the gateway and dom0 (through vif0.0)', async () => {
    assert.equal(await db.ns.ping('192.168.0.105', { waitSeconds: 1 }), false);
    assert.equal(await anon.ns.ping('192.168.0.106', { waitSeconds: 1 }), false);
    assert.ok(await db.ns.ping('192.168.0.1'));
    assert.ok(await db.ns.ping('192.168.0.2'), 'dom0');
    assert.equal(await arrives(db.ns, anon.ns, 'eth0', hex('iso-l2'), 'ether', ['00:16:3e:00:00:06', '88b5', 'iso-l2']), false, 'isolation is at L2: not even an allowed ethertype reaches another guest');
    assert.equal(await arrives(db.ns, host.lan, 'lan0', hex('iso-l2-up'), 'ether', ['00:16:3e:00:00:06', '88b5', 'iso-l2-up']), true, 'but it reaches the uplink');
  });

  it('keeps foreign rules: a FORWARD rule and an ebtables chain of someone else survive apply', async function () {
    // (test:nft-only hides the programs that make them.)
    if (!findProgram('iptables') || !findProgram('ebtables')) this.skip();
    await host.dom0.exec(tool('iptables'), ['-A', 'FORWARD', '-s', '203.0.113.9/32', '-j', 'DROP']);
    await host.dom0.exec('ebtables', ['-N', 'OTHER-TOOL']);
    await host.dom0.exec('ebtables', ['-A', 'OTHER-TOOL', '-p', 'IPv4', '-j', 'ACCEPT']);
    if (native) {
      await nft('add', 'table', 'bridge', 'other');
      await nft('add', 'chain', 'bridge', 'other', 'watch', '{ type filter hook forward priority 5; policy accept; }');
      await nft('add', 'rule', 'bridge', 'other', 'watch', 'ether saddr 00:16:3e:77:77:77 counter');
      await nft('flush', 'chain', 'bridge', 'xennet', 'XN-O-vif5.0');
    } else {
      await host.dom0.exec(tool('iptables'), ['-F', 'XN-O-vif5.0']);
    }
    const r = await xennet(['apply']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(await save('iptables-save'), /-A FORWARD -s 203.0.113.9\/32 -j DROP/);
    assert.match(await save('ebtables-save'), /-A OTHER-TOOL -p IPv4 -j ACCEPT/);
    if (native) assert.match(await nft('list', 'table', 'bridge', 'other'), /ether saddr 00:16:3e:77:77:77 counter/);
    assert.equal((await xennet(['plan'])).code, 0);
    assert.equal(await arrives(web.ns, host.lan, 'lan0', hex('spoof-after-apply'), 'udp4', [WEB_MAC, GW_MAC_ANY, '192.168.0.200', '192.168.0.1', '4000', '4001', 'spoof-after-apply']), false);
  });

  if (native) {
    it('nftables: a flush ruleset (a distro\'s nftables.conf) shows in status and plan; the next hook, or apply, puts the tables back', async () => {
      await nft('flush', 'ruleset');
      assert.equal(await arrives(web.ns, host.lan, 'lan0', hex('spoof-no-rules'), 'udp4', [WEB_MAC, GW_MAC_ANY, '192.168.0.200', '192.168.0.1', '4000', '4001', 'spoof-no-rules']), true, 'control: without the tables the spoofed frame passes');
      const st = await xennet(['status']);
      assert.notEqual(st.code, 0, st.stdout);
      assert.match(st.stdout, /nftables chain XN-PRE is missing/);
      assert.match(st.stdout, /vif5\.0.*firewall missing/);
      assert.equal((await xennet(['plan'])).code, 2);
      // A hook after the flush finds the table gone and rebuilds it from its record (not one guest
      // in an empty table).
      const r = await host.runVifScript('vif-xennet', anon, 'online', 'libxl', { env });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /reconciling the whole table/);
      assert.equal((await xennet(['plan'])).code, 0);
      assert.equal(await arrives(db.ns, host.lan, 'lan0', hex('db-after-hook'), 'udp4', ['00:16:3e:00:00:06', GW_MAC_ANY, '192.168.0.201', '192.168.0.1', '4000', '4001', 'db-after-hook']), false, 'another guest is checked again');
      await nft('flush', 'ruleset');
      assert.equal((await xennet(['apply'])).code, 0);
      assert.equal((await xennet(['plan'])).code, 0);
      assert.equal(await arrives(web.ns, host.lan, 'lan0', hex('spoof-restored'), 'udp4', [WEB_MAC, GW_MAC_ANY, '192.168.0.200', '192.168.0.1', '4000', '4001', 'spoof-restored']), false);
    });

    it('nftables, with the xtables programs installed: plan and apply run no iptables, ebtables or ipset program while nothing of xennet\'s is in their tables; a chain of xennet\'s left there is read with them and removed', async function () {
      // (test:nft-only hides the programs: there, that they are not needed is what every test shows.)
      if (!findProgram('iptables') || !findProgram('ebtables') || !findProgram('strace')) this.skip();
      /** The programs a command ran (execve that succeeded), by name. */
      const programs = async (args: string[]): Promise<{ code: number; ran: string[] }> => {
        const trace = join(dir, `trace-${args.join('-')}`);
        const r = await host.dom0.exec('strace', ['-f', '-qq', '-e', 'trace=execve', '-e', 'signal=none', '-o', trace, 'node', xennetCli, ...args], { env: host.env(env) });
        const ran = readFileSync(trace, 'utf8').split('\n').filter((l) => /execve\("/.test(l) && !/= -1 /.test(l)).map((l) => basename(/execve\("([^"]+)"/.exec(l)![1]!));
        return { code: r.code, ran };
      };
      const XTABLES_PROGRAM = /^(ip6?tables|ebtables|arptables|xtables|ipset)/;
      const sh = async (file: string, args: string[]): Promise<void> => {
        const r = await host.dom0.exec(file, args);
        assert.equal(r.code, 0, `${file} ${args.join(' ')}: ${r.stderr}`);
      };
      // Other software's rules in iptables' and ebtables' own tables (they exist: only xennet's chains are absent).
      await sh('iptables', ['-A', 'FORWARD', '-s', '203.0.113.77/32', '-j', 'DROP']);
      await sh('ebtables', ['-A', 'FORWARD', '-p', 'IPv4', '-s', '00:16:3e:77:77:78', '-j', 'DROP']);
      for (const args of [['plan'], ['apply']]) {
        const { code, ran } = await programs(args);
        assert.equal(code, 0, args[0]);
        assert.ok(ran.includes('node'), `${args[0]}: the trace follows the command (${ran.join(' ')})`);
        assert.deepEqual(ran.filter((p) => XTABLES_PROGRAM.test(p)), [], `${args[0]} ran them`);
      }
      // A chain of xennet's left in iptables' filter table (the xtables backend's, say): read
      // through the program, shown by plan, removed by apply; other software's rules stay.
      await sh('iptables', ['-N', 'XN-LEFT']);
      const planned = await programs(['plan']);
      assert.equal(planned.code, 2, 'plan shows the chain to remove');
      assert.ok(planned.ran.some((p) => /^iptables-nft-save$/.test(p)), planned.ran.join(' '));
      assert.equal((await xennet(['apply'])).code, 0);
      const left = await save('iptables-save');
      assert.doesNotMatch(left, /XN-LEFT/);
      assert.match(left, /-A FORWARD -s 203.0.113.77\/32 -j DROP/);
      assert.match(await save('ebtables-save'), /00:16:3e:77:77:78/);
      assert.equal((await xennet(['plan'])).code, 0);
      await sh('iptables', ['-D', 'FORWARD', '-s', '203.0.113.77/32', '-j', 'DROP']);
      await sh('ebtables', ['-D', 'FORWARD', '-p', 'IPv4', '-s', '00:16:3e:77:77:78', '-j', 'DROP']);
    });

    it('nftables: status names another table whose drop policy would drop what xennet accepts, and one at xennet\'s priority', async () => {
      await nft('add', 'table', 'inet', 'strict');
      await nft('add', 'chain', 'inet', 'strict', 'forwarding', '{ type filter hook forward priority 0; policy drop; }');
      await nft('add', 'table', 'bridge', 'clash');
      await nft('add', 'chain', 'bridge', 'clash', 'pre', '{ type filter hook prerouting priority -310; policy accept; }');
      try {
        const st = await xennet(['status']);
        assert.notEqual(st.code, 0);
        assert.match(st.stdout, /chain inet strict forwarding \(hook forward, priority 0\) has policy drop and no rules/);
        assert.match(st.stdout, /chain bridge clash pre .* has the priority of xennet's XN-PRE/);
      } finally {
        await nft('delete', 'table', 'inet', 'strict');
        await nft('delete', 'table', 'bridge', 'clash');
      }
      assert.equal((await xennet(['status'])).code, 0, 'and nothing once they are gone');
    });
  }

  if (native) it('an external flush shows up in plan (exit 2) and apply repairs it: a chain and a dispatch entry', async () => {
    await nft('flush', 'chain', 'bridge', 'xennet', 'XN-S-vif5.0');
    await nft('delete', 'element', 'bridge', 'xennet', 'from_guest', '{ "vif6.0" }');
    const plan = await xennet(['plan', '--json']);
    assert.equal(plan.code, 2);
    const changed = (JSON.parse(plan.stdout) as { changes: { chain: string }[] }).changes.map((c) => c.chain);
    for (const c of ['XN-S-vif5.0', 'XN-E-vif6.0']) assert.ok(changed.includes(c), c);
    const st = await xennet(['status']);
    assert.match(st.stdout, /vif5\.0 \(web01\): firewall drifted/);
    assert.match(st.stdout, /vif6\.0 \(db01\): firewall drifted/, 'a lost dispatch entry is the guest\'s problem');
    assert.equal(await arrives(db.ns, host.lan, 'lan0', hex('db-unchecked'), 'udp4', ['00:16:3e:00:00:06', GW_MAC_ANY, '192.168.0.201', '192.168.0.1', '4000', '4001', 'db-unchecked']), true, 'control: without its dispatch entry db01 is unchecked');
    assert.equal((await xennet(['apply'])).code, 0);
    assert.equal((await xennet(['plan'])).code, 0);
    assert.equal(await arrives(web.ns, host.lan, 'lan0', hex('spoof-after-repair'), 'udp4', [WEB_MAC, GW_MAC_ANY, '192.168.0.200', '192.168.0.1', '4000', '4001', 'spoof-after-repair']), false);
    assert.equal(await arrives(db.ns, host.lan, 'lan0', hex('db-checked'), 'udp4', ['00:16:3e:00:00:06', GW_MAC_ANY, '192.168.0.201', '192.168.0.1', '4000', '4001', 'db-checked']), false);
  });

  if (native) it('a constant set emptied or added to by hand shows in status and plan, and apply puts it back exactly (a source check does not depend on one: it drops each family by its own rule)', async () => {
    await nft('flush', 'set', 'bridge', 'xennet', 'ip_types');
    assert.equal(await arrives(web.ns, host.lan, 'lan0', hex('spoof-no-types'), 'udp4', [WEB_MAC, GW_MAC_ANY, '192.168.0.200', '192.168.0.1', '4000', '4001', 'spoof-no-types']), false, 'without the set\'s elements a spoofed source is still dropped');
    assert.equal(await arrives(web.ns, host.lan, 'lan0', hex('own-no-types'), 'udp4', [WEB_MAC, GW_MAC_ANY, '192.168.0.105', '192.168.0.1', '4000', '4001', 'own-no-types']), true, 'the control: its own source gets out');
    await nft('add', 'element', 'bridge', 'xennet', 'tagged_types', '{ arp }');
    const plan = await xennet(['plan', '--json']);
    assert.equal(plan.code, 2, plan.stdout);
    assert.ok((JSON.parse(plan.stdout) as { changes: { chain: string }[] }).changes.some((c) => c.chain === 'XN-CONST'), plan.stdout);
    const st = await xennet(['status']);
    assert.notEqual(st.code, 0);
    assert.match(st.stdout, /nftables set elements XN-CONST differ from what xennet installs: the guests' address checks are broken/);
    const applied = await xennet(['apply']);
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal((await xennet(['plan'])).code, 0);
    assert.match(await nft('list', 'set', 'bridge', 'xennet', 'ip_types'), /elements = \{ ip,\s+ip6 \}/);
    assert.doesNotMatch(await nft('list', 'set', 'bridge', 'xennet', 'tagged_types'), /\barp\b/, 'what was added by hand goes');
    assert.equal(await arrives(web.ns, host.lan, 'lan0', hex('spoof-types-back'), 'udp4', [WEB_MAC, GW_MAC_ANY, '192.168.0.200', '192.168.0.1', '4000', '4001', 'spoof-types-back']), false);
  });

  if (native) it('a dispatch entry replaced by hand with another verdict (accept) shows as drifted, and apply puts xennet\'s back', async () => {
    // The kernel refuses to add an element whose key is there with other data ("File exists"):
    // apply must take out the entry as it is, not as xennet would have written it.
    await nft('delete', 'element', 'bridge', 'xennet', 'from_guest', '{ "vif6.0" }');
    await nft('add', 'element', 'bridge', 'xennet', 'from_guest', '{ "vif6.0" : accept }');
    assert.match((await xennet(['status'])).stdout, /vif6\.0 \(db01\): firewall drifted/);
    assert.equal(await arrives(db.ns, host.lan, 'lan0', hex('db-accepted'), 'udp4', ['00:16:3e:00:00:06', GW_MAC_ANY, '192.168.0.201', '192.168.0.1', '4000', '4001', 'db-accepted']), true, 'control: with its entry set to accept db01 is unchecked');
    const applied = await xennet(['apply']);
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal((await xennet(['plan'])).code, 0);
    assert.match(await nft('list', 'map', 'bridge', 'xennet', 'from_guest'), /"vif6\.0" : jump XN-O-vif6\.0/);
    assert.equal(await arrives(db.ns, host.lan, 'lan0', hex('db-checked-again'), 'udp4', ['00:16:3e:00:00:06', GW_MAC_ANY, '192.168.0.201', '192.168.0.1', '4000', '4001', 'db-checked-again']), false);
  });

  if (native) it('a dispatch entry another program added under a key that is no interface name ("vif6.0 ") goes, and the guest keeps its chains', async () => {
    await nft('add', 'element', 'bridge', 'xennet', 'from_guest', '{ "vif6.0 " : accept }');
    assert.equal((await xennet(['plan'])).code, 2, 'plan sees it');
    const applied = await xennet(['apply']);
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal((await xennet(['plan'])).code, 0);
    assert.doesNotMatch(await nft('list', 'map', 'bridge', 'xennet', 'from_guest'), /"vif6\.0 "/);
    assert.equal(await arrives(db.ns, host.lan, 'lan0', hex('db-still-checked'), 'udp4', ['00:16:3e:00:00:06', GW_MAC_ANY, '192.168.0.201', '192.168.0.1', '4000', '4001', 'db-still-checked']), false, 'db01 keeps its chains');
  });

  if (native) it('a table made dormant by hand (nothing of it runs) is a status problem, plan shows it, apply wakes it', async () => {
    await nft('add', 'table', 'bridge', 'xennet', '{ flags dormant; }');
    assert.equal(await arrives(web.ns, host.lan, 'lan0', hex('spoof-dormant'), 'udp4', [WEB_MAC, GW_MAC_ANY, '192.168.0.200', '192.168.0.1', '4000', '4001', 'spoof-dormant']), true, 'control: with the table dormant a spoofed source gets out');
    const st = await xennet(['status', '--json']);
    assert.equal(st.code, 1, st.stdout);
    assert.ok((JSON.parse(st.stdout) as { problems: string[] }).problems.some((p) => p.startsWith('table bridge xennet is dormant')), st.stdout);
    const plan = await xennet(['plan', '--json']);
    assert.equal(plan.code, 2, plan.stdout);
    assert.ok((JSON.parse(plan.stdout) as { changes: { chain: string }[] }).changes.some((c) => c.chain === 'XN-PRE'), plan.stdout);
    const applied = await xennet(['apply']);
    assert.equal(applied.code, 0, applied.stderr);
    assert.doesNotMatch(await nft('list', 'table', 'bridge', 'xennet'), /flags dormant/);
    assert.equal((await xennet(['plan'])).code, 0);
    assert.equal((await xennet(['status'])).code, 0);
    assert.equal(await arrives(web.ns, host.lan, 'lan0', hex('spoof-awake'), 'udp4', [WEB_MAC, GW_MAC_ANY, '192.168.0.200', '192.168.0.1', '4000', '4001', 'spoof-awake']), false);
  });

  if (!native) it('an external flush shows up in plan (exit 2) and apply repairs it; jumps are never duplicated', async () => {
    await host.dom0.exec(tool('iptables'), ['-F', 'XN-S-vif5.0']);
    await host.dom0.exec('ebtables', ['-t', 'nat', '-F', 'XN-E-vif6.0']);
    await host.dom0.exec(tool('iptables'), ['-D', 'FORWARD', '-o', 'xenbr0', '-m', 'physdev', '--physdev-is-bridged', '-j', 'XN-FORWARD']);
    await host.dom0.exec(tool('ip6tables'), ['-I', 'FORWARD', '1', '-o', 'xenbr0', '-m', 'physdev', '--physdev-is-bridged', '-j', 'XN-FORWARD']);
    const plan = await xennet(['plan', '--json']);
    assert.equal(plan.code, 2);
    const changed = (JSON.parse(plan.stdout) as { changes: { chain: string }[] }).changes.map((c) => c.chain);
    for (const c of ['XN-S-vif5.0', 'XN-E-vif6.0', 'FORWARD']) assert.ok(changed.includes(c), c);
    assert.equal((await xennet(['apply'])).code, 0);
    assert.equal((await xennet(['plan'])).code, 0);
    for (const tool of ['iptables-save', 'ip6tables-save']) {
      assert.equal((await save(tool)).split('\n').filter((l) => l.startsWith('-A FORWARD') && l.includes('XN-FORWARD')).length, 1, `${tool}: one jump`);
    }
    assert.equal(await arrives(web.ns, host.lan, 'lan0', hex('spoof-after-repair'), 'udp4', [WEB_MAC, GW_MAC_ANY, '192.168.0.200', '192.168.0.1', '4000', '4001', 'spoof-after-repair']), false);
  });

  it('a rejected restore leaves the previous rules in force', async () => {
    const owned = (text: string) => text.split('\n').filter((l) => l.includes('XN-') && !l.startsWith('#'));
    const read = async (): Promise<string> => (native ? nft('list', 'table', 'bridge', 'xennet') : save('iptables-save'));
    if (native) await nft('flush', 'chain', 'bridge', 'xennet', 'XN-S-vif5.0');
    else await host.dom0.exec(tool('iptables'), ['-F', 'XN-S-vif5.0']);
    const before = owned(await read());
    const failing = await host.xennet(['apply'], { ...env, XENNET_TEST_RESTORE_FAIL: native ? 'nftables' : 'ipv4' });
    assert.equal(failing.code, 1);
    assert.match(failing.stderr, /rejected the update.*the previous rules stay in force/);
    assert.deepEqual(owned(await read()), before, 'nothing of the failed transaction took effect');
    assert.equal((await xennet(['plan'])).code, 2, 'still pending');
    assert.equal((await xennet(['apply'])).code, 0);
    assert.equal((await xennet(['plan'])).code, 0);
  });

  it('offline removes every rule of the vif; the last offline leaves nothing behind', async () => {
    assert.equal((await host.runVifScript('vif-xennet', web, 'offline', 'libxl', { env })).code, 0);
    assert.doesNotMatch(await everything(), /vif5\.0/);
    assert.equal((await xennet(['plan'])).code, 0, 'the remaining vifs are in sync');
    assert.equal((await host.runVifScript('vif-xennet', web, 'offline', 'libxl', { env })).code, 0, 'twice');
    for (const g of [db, anon, router]) assert.equal((await host.runVifScript('vif-xennet', g, 'offline', 'libxl', { env })).code, 0);
    const left = await everything();
    assert.doesNotMatch(left, /XN-/, 'nothing of xennet\'s is left');
    assert.doesNotMatch(left, /table \w+ xennet/, 'not even an empty table');
  });
});

function ipHex(ip: string): string {
  const parts = ip.split('::');
  const head = parts[0] ? parts[0].split(':') : [];
  const tail = parts[1] ? parts[1].split(':') : [];
  const groups = [...head, ...Array(8 - head.length - tail.length).fill('0'), ...tail];
  return groups.map((g) => g.padStart(4, '0')).join('');
}
