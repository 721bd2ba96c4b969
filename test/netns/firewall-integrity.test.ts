/**
 * Firewall integrity on the simulated Xen host, tried as an attacker and an operator would:
 * nothing lets a guest's packet skip its rules unseen, no interleaving leaves an attached guest
 * unfiltered, a crash or unreadable state leaks nothing and stops nothing, forged MACs never
 * reach the bridge's forwarding database, and inbound: drop keeps the guest's own DHCP working.
 * Each case names the finding of the issue it closes.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimHost, type GuestSpec, type SimGuest } from '../../src/sim/host.js';
import { start } from '../../src/sys/exec.js';
import { selfIdentity } from '../../src/sys/process.js';
import { arrives, framesPy, hex } from './lib/frames.js';
import { LineWaiter } from './lib/lines.js';
import { killByPidFiles, sweepLeftovers } from './lib/netns.js';

const GW_ANY = 'ff:ff:ff:ff:ff:ff';
const macOf = (d: number): string => `00:16:3e:00:01:${d.toString(16).padStart(2, '0')}`;
const spec = (d: number, extra: Partial<GuestSpec> = {}): GuestSpec => ({ domid: d, name: `g${d}`, mac: macOf(d), addresses: [`192.168.0.${100 + d}/24`], xenstoreIp: `192.168.0.${100 + d}`, ...extra });

interface StatusJson {
  ok: boolean;
  problems: string[];
}

for (const backend of ['xtables', 'nftables'] as const)
describe(`firewall integrity (netns, ${backend} backend): no bypass, no unfiltered window, no drift unseen, nothing leaked`, function () {
  this.timeout(300_000);
  const native = backend === 'nftables';
  /** Flushes one of xennet's chains, as another program would. */
  const flushChain = (chain: string): Promise<void> => (native ? sh('nft', ['flush', 'chain', 'bridge', 'xennet', chain]) : sh('iptables', ['-F', chain]));
  let host: SimHost;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let rules: string;

  const save = async (tool: string, args: string[] = []): Promise<string> => (await host.dom0.exec(tool, args)).stdout;
  const sh = async (tool: string, args: string[]): Promise<void> => {
    const r = await host.dom0.exec(tool, args);
    assert.equal(r.code, 0, `${tool} ${args.join(' ')}: ${r.stderr}`);
  };
  const xennet = (args: string[], extra: NodeJS.ProcessEnv = {}) => host.xennet(args, { ...env, ...extra });
  const status = async (): Promise<{ code: number; s: StatusJson }> => {
    const r = await xennet(['status', '--json']);
    return { code: r.code, s: JSON.parse(r.stdout) as StatusJson };
  };
  const hook = (g: SimGuest, cmd: string, extra: NodeJS.ProcessEnv = {}, timeoutMs?: number) => host.runVifScript('vif-xennet', g, cmd, 'libxl', { env: { ...env, ...extra }, ...(timeoutMs ? { timeoutMs } : {}) });
  const online = async (g: SimGuest): Promise<void> => {
    const r = await hook(g, 'online');
    assert.equal(r.code, 0, `online ${g.vif}: ${r.stderr}`);
  };
  const spoofed = (g: SimGuest, marker: string) => arrives(g.ns, host.lan, 'lan0', hex(marker), 'udp4', [g.mac, GW_ANY, '192.168.0.250', '192.168.0.1', '4000', '4001', marker]);
  /** Every rule line of xennet's in all four tables mentioning `name`. */
  const rulesOf = async (name: string): Promise<string[]> => {
    const all = [await save('iptables-save'), await save('ip6tables-save'), await save('ebtables-save'), await save('ebtables-save', ['-t', 'nat']), await save('nft', ['list', 'ruleset'])].join('\n');
    return all.split('\n').filter((l) => !l.startsWith('#') && l.includes(name));
  };
  const stateDir = (): string => host.env()['XENNET_STATE_DIR']!;
  const index = (): { dirty: boolean; vifs: Record<string, unknown> } => JSON.parse(readFileSync(join(stateDir(), 'firewall', 'index.json'), 'utf8')) as { dirty: boolean; vifs: Record<string, unknown> };

  before(async () => {
    await sweepLeftovers();
    dir = mkdtempSync(join(tmpdir(), 'xnt-integrity-'));
    rules = join(dir, 'xennet.yaml');
    writeFileSync(rules, `version: 1\nbackend: ${backend}\nguests:\n  iso:\n    isolation: true\n  web:\n    inbound: drop\n    allow_in: [ { proto: icmp } ]\n`);
    env = { XENNET_RULES: rules };
  });

  beforeEach(async () => {
    host = await SimHost.create({ autostart: false });
    await host.takeover();
  });

  afterEach(async () => {
    await host?.destroy();
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  if (!native) it('1: status and plan see flushed root jumps (all tables) and a foreign accept above the jump; apply repairs; a hook repairs missing jumps', async () => {
    const a = await host.addGuest(spec(1));
    await online(a);
    assert.equal((await status()).code, 0);
    assert.equal(await spoofed(a, 'spoof-0'), false, 'control: spoofing is dropped');
    for (const t of ['iptables', 'ip6tables']) await sh(t, ['-F', 'FORWARD']);
    await sh('ebtables', ['-t', 'nat', '-F', 'PREROUTING']);
    const flushed = await status();
    assert.equal(flushed.code, 1);
    for (const want of [/^iptables FORWARD has no jump to XN-FORWARD for bridge xenbr0/, /^ip6tables FORWARD has no jump to XN-FORWARD/, /^ebtables nat PREROUTING has no jump to XN-FROM/]) {
      assert.ok(flushed.s.problems.some((p) => want.test(p)), `${want}: ${JSON.stringify(flushed.s.problems)}`);
    }
    assert.equal(await spoofed(a, 'spoof-1'), true, 'the bypass is real: spoofed traffic passes');
    assert.equal((await xennet(['plan'])).code, 2);
    assert.equal((await xennet(['apply'])).code, 0);
    assert.equal((await status()).code, 0);
    assert.equal(await spoofed(a, 'spoof-2'), false);

    await sh('iptables', ['-I', 'FORWARD', '1', '-j', 'ACCEPT']);
    const shadowed = await status();
    assert.equal(shadowed.code, 1);
    assert.ok(shadowed.s.problems.some((p) => /^iptables FORWARD rule 1 \(-j ACCEPT\) comes before xennet's jump for bridge xenbr0/.test(p)), JSON.stringify(shadowed.s.problems));
    assert.equal(await spoofed(a, 'spoof-3'), true, 'the foreign accept lets spoofed traffic past');
    assert.equal((await xennet(['plan'])).code, 2, 'plan counts it as pending');
    assert.equal((await xennet(['apply'])).code, 0);
    assert.match(await save('iptables-save'), /-A FORWARD -o xenbr0 -m physdev --physdev-is-bridged -j XN-FORWARD\n-A FORWARD -j ACCEPT/, 'xennet\'s jump is on top again; the foreign rule stays');
    assert.equal(await spoofed(a, 'spoof-4'), false);
    assert.equal((await status()).code, 0);

    // A hook that installs rules puts missing jumps back.
    await sh('iptables', ['-D', 'FORWARD', '-o', 'xenbr0', '-m', 'physdev', '--physdev-is-bridged', '-j', 'XN-FORWARD']);
    await sh('ebtables', ['-t', 'nat', '-F', 'PREROUTING']);
    const b = await host.addGuest(spec(2));
    await online(b);
    assert.match(await save('iptables-save'), /-A FORWARD -o xenbr0 -m physdev --physdev-is-bridged -j XN-FORWARD/);
    assert.match(await save('ebtables-save', ['-t', 'nat']), /-A PREROUTING -j XN-FROM/);
    assert.equal(await spoofed(a, 'spoof-5'), false);
    assert.equal((await status()).code, 0);

    await host.dom0.exec('sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=0']);
    const sys = await status();
    assert.ok(sys.s.problems.some((p) => /bridge-nf-call-iptables/.test(p)), 'br_netfilter off is a problem');
  });

  it('2: isolation whatever the names: a renamed isolated guest neither reaches nor is reached by other guests, but reaches dom0 and the gateway', async () => {
    const iso = await host.addGuest(spec(3, { name: 'iso', vifname: 'iso-eth0' }));
    const other = await host.addGuest(spec(4));
    await online(iso);
    await online(other);
    assert.equal(await iso.ns.ping('192.168.0.104', { waitSeconds: 1 }), false, 'iso -> other');
    assert.equal(await other.ns.ping('192.168.0.103', { waitSeconds: 1 }), false, 'other -> iso');
    assert.ok(await iso.ns.ping('192.168.0.2'), 'iso -> dom0 (vif0.0)');
    assert.ok(await iso.ns.ping('192.168.0.1'), 'iso -> gateway (peth0)');
    assert.ok(await other.ns.ping('192.168.0.2'), 'other -> dom0');
    assert.equal(await arrives(iso.ns, other.ns, 'eth0', hex('iso-arp'), 'ether', [iso.mac, '0806', 'iso-arp']), false, 'not even at L2');
  });

  it('3: apply in a loop while guests come and go never leaves an attached guest port without its rules', async () => {
    const guests: SimGuest[] = [];
    for (let d = 10; d < 14; d++) guests.push(await host.addGuest(spec(d)));
    let stop = false;
    let applies = 0;
    const loop = (async () => {
      while (!stop) {
        const r = await xennet(['apply']);
        assert.equal(r.code, 0, r.stderr);
        applies++;
      }
    })();
    const unfiltered: string[] = [];
    /** Rules read before and after the links: an attached port must have its rules in both. */
    const check = async (when: string): Promise<void> => {
      const read = async (): Promise<string> => (native ? save('nft', ['list', 'table', 'bridge', 'xennet']) : (await save('iptables-save')) + (await save('ebtables-save', ['-t', 'nat'])));
      const before = await read();
      const links = await host.dom0.ipJson<{ ifname: string; master?: string }[]>('link', 'show');
      const after = await read();
      const filtered = (text: string, vif: string): boolean => (native ? text.includes(`chain XN-O-${vif} {`) && text.includes(`"${vif}" : jump XN-O-${vif}`) : text.includes(`:XN-O-${vif} `) && text.includes(`:XN-E-${vif} `));
      for (const l of links) {
        if (l.master !== 'xenbr0' || !/^vif\d+\.\d+$/.test(l.ifname) || l.ifname.startsWith('vif0.')) continue;
        for (const text of [before, after]) if (!filtered(text, l.ifname)) unfiltered.push(`${when}: ${l.ifname}`);
      }
    };
    try {
      for (let round = 0; round < 3; round++) {
        for (const g of guests) {
          await online(g);
          await check(`after online ${g.vif}`);
        }
        for (const g of guests.slice(0, 2)) {
          assert.equal((await hook(g, 'offline')).code, 0);
          await check(`after offline ${g.vif}`);
        }
      }
    } finally {
      stop = true;
      await loop;
    }
    assert.deepEqual(unfiltered, [], 'attached guest ports without their chains');
    assert.ok(applies >= 3, `apply ran ${applies} times`);
    assert.equal(await spoofed(guests[3]!, 'spoof-after-loop'), false);
  });

  // The write-ahead and confirm points are the commit's, the same for both backends: on nftables
  // the points around its transaction (before it is sent; the kernel has it, its answer unread)
  // and between it and the confirm.
  for (const point of native ? ['nftables:before-send', 'nftables:sent', 'firewall:restored:nftables'] : ['firewall:written-ahead', 'firewall:restored:ipv4', 'firewall:before-confirm']) {
    it(`4: an online killed at ${point} leaves nothing that the toolstack's offline does not remove`, async () => {
      const keep = await host.addGuest(spec(20));
      await online(keep);
      const g = await host.addGuest(spec(21));
      const killed = await hook(g, 'online', { XENNET_TEST_KILL_AT: point });
      assert.equal(killed.signal, 'SIGKILL', `killed at ${point}: ${killed.stderr}`);
      assert.equal((await hook(g, 'offline')).code, 0);
      assert.deepEqual(await rulesOf('vif21.0'), [], 'no rule of the killed online is left');
      assert.equal((await xennet(['plan'])).code, 0, 'the other guest is in sync');
      assert.ok((await rulesOf('vif20.0')).length > 0);
      assert.equal(await spoofed(keep, `spoof-kill-${point}`), false);
    });
  }

  // An offline killed once its removal is written ahead: the toolstack does not run it again, its
  // staged change dies with it, and its chains are still live. The next commit must finish the
  // removal, not take the chains back into the record as another guest's (adoption).
  for (const point of native ? ['firewall:written-ahead', 'nftables:before-send'] : ['firewall:written-ahead']) {
    it(`4: an offline killed at ${point} is finished by the next commit, never adopted back`, async () => {
      const keep = await host.addGuest(spec(24));
      await online(keep);
      // A guest on DHCP (no ip=): it learns its addresses, and what it learned goes with it too
      // (on xtables, its ipsets: found by an adversarial review).
      const g = await host.addGuest(spec(25, { xenstoreIp: undefined }));
      await online(g);
      const killed = await hook(g, 'offline', { XENNET_TEST_KILL_AT: point });
      assert.equal(killed.signal, 'SIGKILL', `killed at ${point}: ${killed.stderr}`);
      assert.ok((await rulesOf('vif25.0')).length > 0, 'the control: its chains are still live');
      const next = await host.addGuest(spec(26));
      await online(next);
      // (A learning guest's tentative DAD entry, a set element with a 2 s timeout, may outlive
      // its rules by that long: it is state, not a rule, and ends by itself.)
      const timed = (l: string): boolean => / timeout \d+s expires /.test(l);
      assert.deepEqual((await rulesOf('vif25.0')).filter((l) => !timed(l)), [], 'the removal was finished');
      assert.equal(Object.hasOwn(index().vifs, 'vif25.0'), false, `not adopted back: ${JSON.stringify(Object.keys(index().vifs))}`);
      assert.equal(index().dirty, false);
      const plan = await xennet(['plan']);
      assert.equal(plan.code, 0, plan.stdout);
      if (!native) assert.doesNotMatch(await save('ipset', ['list', '-n']), /vif25\.0/, 'its learned address sets went too');
      assert.equal(await spoofed(keep, `spoof-offline-kill-${point}`), false);
    });
  }

  it('4: a staged change of a hook that died is never committed by the next hook; temp files of dead writers are swept', async () => {
    const dead = await host.addGuest(spec(22));
    const killed = await hook(dead, 'online', { XENNET_TEST_KILL_AT: 'hook:staged' });
    assert.equal(killed.signal, 'SIGKILL');
    assert.ok(readdirSync(join(stateDir(), 'firewall', 'pending')).length > 0, 'its staged change is there');
    writeFileSync(join(stateDir(), 'firewall', `index.json.tmp-${2 ** 22 + 11}`), '{"trunc');
    const next = await host.addGuest(spec(23));
    const r = await hook(next, 'online');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /discarded staged firewall change .*install of vif22\.0 by pid \d+, which is gone/);
    assert.deepEqual(await rulesOf('vif22.0'), [], 'no rules for a vif that never came up');
    assert.ok((await rulesOf('vif23.0')).length > 0);
    assert.deepEqual(readdirSync(join(stateDir(), 'firewall')).filter((f) => f.includes('.tmp-')), [], 'swept');
  });

  it('5: unreadable state is reported, set aside and rebuilt; a failed apply does not record success', async () => {
    const a = await host.addGuest(spec(30));
    await online(a);
    const idx = join(stateDir(), 'firewall', 'index.json');
    writeFileSync(idx, readFileSync(idx, 'utf8').slice(0, 40));
    writeFileSync(join(stateDir(), 'firewall', 'pending', 'garbage.json'), '{"op":');
    const b = await host.addGuest(spec(31));
    const r = await hook(b, 'online');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /firewall index .* is unreadable .*rebuilding it from the live rules/);
    assert.match(r.stderr, /discarded staged firewall change garbage\.json: it does not parse/);
    assert.ok(readdirSync(join(stateDir(), 'firewall')).some((f) => f.startsWith('index.json.corrupt-')), 'set aside for a person to look at');
    assert.deepEqual(Object.keys(index().vifs).sort(), ['vif30.0', 'vif31.0'], `rebuilt: the live guest adopted: ${JSON.stringify(index())}`);
    assert.equal((await xennet(['plan'])).code, 0);
    assert.equal(await spoofed(a, 'spoof-rebuilt'), false);

    await flushChain('XN-S-vif30.0');
    const failing = await xennet(['apply'], { XENNET_TEST_RESTORE_FAIL: native ? 'nftables' : 'ipv4' });
    assert.equal(failing.code, 1);
    assert.equal(index().dirty, true, 'a failed apply leaves the record dirty, not "done"');
    assert.equal((await xennet(['apply'])).code, 0);
    assert.equal(index().dirty, false);
    // Each guest apply installed is recorded with a token: a removal staged against it names it.
    for (const [name, e] of Object.entries(index().vifs)) assert.equal(typeof (e as { token?: unknown }).token, 'string', `${name}: ${JSON.stringify(e)}`);

    await flushChain('XN-S-vif30.0');
    const table = native ? 'nftables' : 'ipv4';
    const raced = await xennet(['apply'], { XENNET_TEST_TAMPER_AFTER_APPLY: `${table}:XN-S-vif31.0` });
    assert.equal(raced.code, 1, 'another writer between apply and its check is reported');
    assert.match(raced.stderr, new RegExp(`after apply the live rules still differ from the rule file \\(${table} XN-S-vif31\\.0\\)`));
  });

  it('5: a state file that is not a regular file (a directory, a FIFO, a link) is discarded or set aside, never read; a removal staged for a port on a bridge removes nothing (found by an adversarial review)', async () => {
    const a = await host.addGuest(spec(32));
    await online(a);
    const pending = join(stateDir(), 'firewall', 'pending');
    mkdirSync(join(pending, 'dir.json'));
    const fifo = await host.dom0.exec('mkfifo', [join(pending, 'fifo.json')]);
    assert.equal(fifo.code, 0, fifo.stderr);
    symlinkSync('/dev/zero', join(pending, 'zero.json'));
    // A removal of the attached guest's rules by a live process, naming no install (a name the
    // index did not know when it was staged, or a file no hook wrote).
    writeFileSync(join(pending, 'forged-1.json'), JSON.stringify({ op: 'remove', name: a.vif, token: 'forged-1', stager: selfIdentity(), at: Date.now() }));
    const b = await host.addGuest(spec(33));
    const r = await hook(b, 'online', {}, 30_000);
    assert.equal(r.code, 0, r.stderr);
    for (const [f, why] of [['dir', 'it is not a regular file'], ['fifo', 'it is not a regular file'], ['zero', 'it is a symbolic link']]) assert.match(r.stderr, new RegExp(`discarded staged firewall change ${f}\\.json: it does not parse: ${why}`));
    assert.match(r.stderr, /discarded staged firewall change forged-1\.json: remove of vif32\.0 by pid \d+: it is on a bridge/);
    assert.deepEqual(readdirSync(pending), []);
    assert.ok((await rulesOf(a.vif)).length > 0, 'the attached guest keeps its rules');
    assert.equal(await spoofed(a, 'spoof-forged-removal'), false);
    // The index a FIFO: set aside and rebuilt from the live rules, the hook not blocked.
    const idx = join(stateDir(), 'firewall', 'index.json');
    rmSync(idx);
    assert.equal((await host.dom0.exec('mkfifo', [idx])).code, 0);
    const c = await host.addGuest(spec(34));
    const r2 = await hook(c, 'online', {}, 30_000);
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stderr, /firewall index .* is unreadable .*rebuilding it from the live rules/);
    assert.deepEqual(Object.keys(index().vifs).sort(), ['vif32.0', 'vif33.0', 'vif34.0']);
  });

  it('9: forged source MACs never reach the FDB; a flood adds no entries; another guest\'s traffic never reaches the attacker', async () => {
    const attacker = await host.addGuest(spec(40));
    const victim = await host.addGuest(spec(41));
    await online(attacker);
    await online(victim);
    const gwMac = ((await host.lan.ipJson<{ address: string }[]>('link', 'show', 'lan0'))[0]!).address;
    assert.ok(await victim.ns.ping('192.168.0.1'), 'the gateway is learned on the uplink');
    const fdb = async (): Promise<{ mac: string; ifname: string; state?: string }[]> => JSON.parse((await host.dom0.exec('bridge', ['-j', 'fdb', 'show', 'br', 'xenbr0'])).stdout || '[]') as { mac: string; ifname: string; state?: string }[];
    const portOf = async (m: string): Promise<string | undefined> => (await fdb()).find((e) => e.mac === m && e.state !== 'permanent')?.ifname;
    assert.equal(await portOf(gwMac), 'peth0');
    // The attacker claims the gateway's MAC with an ethertype br_netfilter does not look at.
    for (let i = 0; i < 3; i++) await attacker.ns.exec('python3', [framesPy, 'send', 'eth0', 'ether', gwMac, '88b5', `mitm-${i}`]);
    assert.equal(await portOf(gwMac), 'peth0', 'the gateway\'s entry never moves to the attacker\'s port');
    const before = (await fdb()).filter((e) => e.ifname === attacker.vif).length;
    const flood = await attacker.ns.exec('python3', [framesPy, 'send', 'eth0', 'macflood', '3000', 'flood'], { timeoutMs: 60_000 });
    assert.equal(flood.code, 0, flood.stderr);
    assert.equal((await fdb()).filter((e) => e.ifname === attacker.vif).length, before, 'a flood of random source MACs adds no entries');
    // The victim's traffic to the gateway never reaches the attacker.
    const sniffer = start('ip', ['netns', 'exec', attacker.ns.name, 'python3', framesPy, 'sniff', 'eth0', hex('victim-secret'), 'stdin:0.5']);
    try {
      const w = new LineWaiter(sniffer);
      await w.waitFor('ready', 30_000);
      assert.ok(await arrives(victim.ns, host.lan, 'lan0', hex('victim-secret'), 'udp4', [victim.mac, gwMac, '192.168.0.141', '192.168.0.1', '5000', '5001', 'victim-secret']), 'control: the victim\'s traffic reaches the gateway');
      sniffer.stdin?.end('stop\n');
      assert.equal(await w.waitFor(/^seen \d+$/, 30_000), 'seen 0');
    } finally {
      sniffer.kill('SIGKILL');
    }
  });

  it('11: inbound: drop keeps the guest\'s own DHCP and DHCPv6 working (dnsmasq on the LAN, dhclient in the guest)', async function () {
    if (!existsSync('/usr/sbin/dnsmasq') || !existsSync('/usr/sbin/dhclient')) this.skip();
    const g = await host.addGuest(spec(42, { name: 'web', addresses: [], xenstoreIp: '192.168.0.151 2001:db8::151' }));
    await online(g);
    const leases = mkdtempSync(join(tmpdir(), 'xnt-dhcp-'));
    const dnsmasq = start('ip', ['netns', 'exec', host.lan.name, 'dnsmasq', '--no-daemon', '--conf-file=/dev/null', '--port=0', '--interface=lan0', '--bind-interfaces', '--user=root', '--group=root', `--dhcp-leasefile=${join(leases, 'dnsmasq.leases')}`, '--dhcp-range=192.168.0.151,192.168.0.151,1h', '--dhcp-range=2001:db8::151,2001:db8::151,64,1h', '--log-dhcp']);
    try {
      await new Promise((r) => setTimeout(r, 500));
      writeFileSync(join(leases, 'dhclient.conf'), 'timeout 15;\nretry 1;\n');
      const v4 = await g.ns.exec('dhclient', ['-4', '-1', '-v', '-sf', '/bin/true', '-cf', join(leases, 'dhclient.conf'), '-lf', join(leases, 'v4.leases'), '-pf', join(leases, 'v4.pid'), 'eth0'], { timeoutMs: 30_000 });
      assert.equal(v4.code, 0, v4.stderr);
      assert.match(readFileSync(join(leases, 'v4.leases'), 'utf8'), /fixed-address 192\.168\.0\.151;/, 'an IPv4 lease');
      const v6 = await g.ns.exec('dhclient', ['-6', '-1', '-v', '-sf', '/bin/true', '-cf', join(leases, 'dhclient.conf'), '-lf', join(leases, 'v6.leases'), '-pf', join(leases, 'v6.pid'), 'eth0'], { timeoutMs: 30_000 });
      assert.equal(v6.code, 0, v6.stderr);
      assert.match(readFileSync(join(leases, 'v6.leases'), 'utf8'), /iaaddr 2001:db8::151/, 'a DHCPv6 lease');
    } finally {
      dnsmasq.kill('SIGKILL');
      await killByPidFiles(['v4.pid', 'v6.pid'].map((f) => join(leases, f)));
      rmSync(leases, { recursive: true, force: true });
    }
  });
});
