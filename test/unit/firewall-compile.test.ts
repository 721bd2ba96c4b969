import assert from 'node:assert/strict';
import { cidr, dom, ifn, mac } from './lib/values.js';
import fc from 'fast-check';
import { compile, compileShared, compileVif, memberFacts } from '../../src/firewall/compile.js';
import { multiportGroups, naTargetU32 } from '../../src/firewall/xtables/compile.js';
import { eui64LinkLocal } from '../../src/net/index.js';
import { asLive, diffTable, render } from '../../src/firewall/diff.js';
import { incrementalPlans } from '../../src/firewall/commit.js';
import type { IndexEntry } from '../../src/firewall/store.js';
import { emptyRuleSet, tableNames, type ResolvedVif, type RuleSet, type TableRules } from '../../src/firewall/model.js';
import { MAX_CHAIN_NAME } from '../../src/firewall/names.js';
import { normalizeRule } from '../../src/firewall/normalize.js';
import { resolveVif } from '../../src/firewall/resolve.js';
import { parseSave } from '../../src/firewall/xtables/save-parse.js';
import type { TablePlan } from '../../src/firewall/model.js';
import { buildTree } from '../../src/firewall/tree.js';

function vif(name: string, extra: Partial<ResolvedVif> = {}): ResolvedVif {
  const base = resolveVif({ version: 1 }, { name: ifn(name), bridge: extra.bridge ?? ifn('xenbr0'), mac: mac('00:16:3e:00:00:05'), ipv4: [cidr('192.168.0.5')], ipv6: [cidr('2001:db8::5')] });
  return { ...base, ...extra };
}

describe('firewall compiler', () => {
  it('golden: a default guest (anti-spoofing from xenstore)', () => {
    const rs = compileVif(vif('vif5.0'));
    assert.deepEqual(rs.ipv4.chains.get('XN-O-vif5.0'), [
      '-p udp -m udp --dport 68 -m limit --limit 6/min -m hashlimit --hashlimit-upto 10/sec --hashlimit-burst 20 --hashlimit-name xn-droplog -j NFLOG --nflog-prefix "XN dhcps vif5.0" --nflog-group 30831',
      '-p udp -m udp --dport 68 -j DROP',
      '-p udp -m udp --sport 68 --dport 67 -m u32 ! --u32 "0x0>>0x16&0x3c@0x24=0x163e00&&0x0>>0x16&0x3c@0x28>>0x10=0x5" -m limit --limit 6/min -m hashlimit --hashlimit-upto 10/sec --hashlimit-burst 20 --hashlimit-name xn-droplog -j NFLOG --nflog-prefix "XN dhcpc vif5.0" --nflog-group 30831',
      '-p udp -m udp --sport 68 --dport 67 -m u32 ! --u32 "0x0>>0x16&0x3c@0x24=0x163e00&&0x0>>0x16&0x3c@0x28>>0x10=0x5" -j DROP',
      '-j XN-S-vif5.0',
    ]);
    assert.deepEqual(rs.ipv6.chains.get('XN-O-vif5.0')?.slice(2, 4), ['-p udp -m udp --dport 546 -m limit --limit 6/min -m hashlimit --hashlimit-upto 10/sec --hashlimit-burst 20 --hashlimit-name xn-droplog -j NFLOG --nflog-prefix "XN dhcps vif5.0" --nflog-group 30831', '-p udp -m udp --dport 546 -j DROP'], 'any source port');
    assert.deepEqual(rs.ipv4.chains.get('XN-S-vif5.0'), [
      '-s 192.168.0.5/32 -j RETURN',
      '-s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 --dport 67 -j RETURN',
      '-m limit --limit 6/min -m hashlimit --hashlimit-upto 10/sec --hashlimit-burst 20 --hashlimit-name xn-droplog -j NFLOG --nflog-prefix "XN spoof4 vif5.0" --nflog-group 30831',
      '-j DROP',
    ]);
    assert.deepEqual(rs.ipv6.chains.get('XN-S-vif5.0'), [
      '-s 2001:db8::5/128 -j RETURN',
      '-s fe80::216:3eff:fe00:5/128 -j RETURN',
      '-s ::/128 -d ff02::1:ff00:0/104 -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j RETURN',
      '-s ::/128 -d ff02::16/128 -p ipv6-icmp -m icmp6 --icmpv6-type 143 -j RETURN',
      '-m limit --limit 6/min -m hashlimit --hashlimit-upto 10/sec --hashlimit-burst 20 --hashlimit-name xn-droplog -j NFLOG --nflog-prefix "XN spoof6 vif5.0" --nflog-group 30831',
      '-j DROP',
    ]);
    assert.deepEqual(rs.ipv6.chains.get('XN-N-vif5.0')?.slice(0, 4), [
      '-m u32 ! --u32 "0x4&0xff00=0x3a00" -m limit --limit 6/min -m hashlimit --hashlimit-upto 10/sec --hashlimit-burst 20 --hashlimit-name xn-droplog -j NFLOG --nflog-prefix "XN na vif5.0" --nflog-group 30831',
      '-m u32 ! --u32 "0x4&0xff00=0x3a00" -j DROP',
      '-m u32 --u32 "0x30=0x20010db8&&0x34=0x0&&0x38=0x0&&0x3c=0x5" -j RETURN',
      '-m u32 --u32 "0x30=0xfe800000&&0x34=0x0&&0x38=0x2163eff&&0x3c=0xfe000005" -j RETURN',
    ]);
    assert.deepEqual(rs.ebnat.chains.get('XN-E-vif5.0'), [
      '-s ! 00:16:3e:00:00:05 -j DROP',
      '-j mark --mark-or 0x900000 --mark-target CONTINUE',
      '-p IPv4 -j RETURN',
      '-p IPv6 -j RETURN',
      '-p ARP --arp-htype ! 1 -j DROP',
      '-p ARP --arp-ptype ! 0x800 -j DROP',
      '-p ARP --arp-mac-src ! 00:16:3e:00:00:05 -j DROP',
      '-p ARP --arp-ip-src 192.168.0.5 -j RETURN',
      '-p ARP --arp-ip-src 0.0.0.0 -j RETURN',
      '-p ARP -j DROP',
      '-j DROP',
    ]);
    assert.deepEqual(rs.ipv4.chains.get('XN-I-vif5.0'), [], 'inbound accept: nothing to check');
  });

  it('golden: inbound drop with allow rules, isolation, extra ethertype, no logging', () => {
    const v = resolveVif(
      { version: 1, guests: { web: { inbound: 'drop', isolation: true, log_drops: false, learn_addresses: false, allow_ethertypes: [0x88b5], allow_in: [{ proto: 'tcp', ports: [80, '8000-8080'] }, { proto: 'udp', ports: [53], from: [cidr('10.0.0.0/8'), cidr('2001:db8::/32')] }, { proto: 'icmp', icmp_types: [8] }] } } },
      { name: ifn('vif7.0'), bridge: ifn('xenbr0'), domain: dom('web'), mac: mac('00:16:3e:00:00:07'), ipv4: [], ipv6: [] },
    );
    const rs = compileVif(v);
    assert.deepEqual(rs.ipv4.chains.get('XN-I-vif7.0'), [
      '-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
      '-p udp -m udp --sport 67 --dport 68 -j RETURN',
      '-p tcp -m multiport --dports 80,8000:8080 -j RETURN',
      '-s 10.0.0.0/8 -p udp -m udp --dport 53 -j RETURN',
      '-p icmp -m icmp --icmp-type 8 -j RETURN',
      '-j DROP',
    ]);
    assert.deepEqual(rs.ipv6.chains.get('XN-I-vif7.0'), [
      '-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
      '-p ipv6-icmp -m icmp6 --icmpv6-type 134 -j RETURN',
      '-p ipv6-icmp -m icmp6 --icmpv6-type 135 -j RETURN',
      '-p ipv6-icmp -m icmp6 --icmpv6-type 136 -j RETURN',
      '-p udp -m udp --sport 547 --dport 546 -j RETURN',
      '-p tcp -m multiport --dports 80,8000:8080 -j RETURN',
      '-s 2001:db8::/32 -p udp -m udp --dport 53 -j RETURN',
      '-j DROP',
    ]);
    assert.ok(rs.ebnat.chains.get('XN-E-vif7.0')?.includes('-p 0x88b5 -j RETURN'));
    assert.ok(rs.ebnat.chains.get('XN-E-vif7.0')?.includes('-j mark --mark-or 0x300000 --mark-target CONTINUE'), 'isolated: both marks');
    assert.ok(!rs.ipv4.chains.get('XN-O-vif7.0')?.some((r) => r.includes('physdev')), 'isolation is not by interface name any more');
    assert.ok(!rs.ipv4.chains.has('XN-S-vif7.0'), 'no address known and not learning (learn_addresses: false): no source check');
  });

  it('multiport: at most 15 ports a rule, a range counts twice', () => {
    const ports = ['1:2', '3', '4:5', '6:7', '8:9', '10:11', '12:13', '14', '15', '16:17'];
    const groups = multiportGroups(ports);
    assert.deepEqual(groups.map((g) => g.reduce((n, p) => n + (p.includes(':') ? 2 : 1), 0)), [15, 2]);
    assert.deepEqual(groups.flat(), ports);
  });

  it('helpers: EUI-64 link-local and u32 prefix matches', () => {
    assert.equal(eui64LinkLocal(mac('00:16:3e:12:34:56')).addr, 'fe80::216:3eff:fe12:3456');
    assert.equal(naTargetU32(cidr('2001:db8:1::/48')), '-m u32 --u32 "0x30=0x20010db8&&0x34&0xffff0000=0x10000"');
  });

  it('root jumps: one per bridge from FORWARD and INPUT, ebtables jumps once', () => {
    const rs = compileShared([{ name: ifn('vif1.0'), bridge: ifn('xenbr0'), inbound: false, isolated: false }, { name: ifn('vif2.0'), bridge: ifn('xenbr0'), inbound: false, isolated: false }]);
    assert.deepEqual(rs.ipv4.roots, [
      { chain: 'FORWARD', rule: '-o xenbr0 -m physdev --physdev-is-bridged -j XN-FORWARD' },
      { chain: 'INPUT', rule: '-i xenbr0 -m physdev --physdev-is-in -j XN-FROM' },
    ]);
    assert.deepEqual(rs.ebnat.roots, [{ chain: 'PREROUTING', rule: '-j XN-FROM' }], 'L2 checks before learning');
    assert.deepEqual(rs.eb.roots, [], 'no isolated guest: no isolation chains');
    assert.deepEqual(compileShared([]), emptyRuleSet(), 'no vifs: nothing at all');
    const tail = ['-m mark --mark 0x100000/0x100000 -j ACCEPT', '-m physdev --physdev-in vif0.+ -j ACCEPT', '-m physdev --physdev-in vif+ -j RETURN', '-j ACCEPT'];
    assert.deepEqual(rs.ipv4.chains.get('XN-FORWARD'), ['-j XN-FROM', ...tail], 'nobody filters inbound: no to-guest tree; a vif xennet does not manage is left to the rules after the jump');
    const some = compileShared([{ name: ifn('vif1.0'), bridge: ifn('xenbr0'), inbound: true, isolated: false }, { name: ifn('vif2.0'), bridge: ifn('xenbr0'), inbound: false, isolated: false }]);
    assert.deepEqual(some.ipv4.chains.get('XN-FORWARD'), ['-j XN-FROM', '-j XN-TO', ...tail]);
    assert.deepEqual(some.ipv4.chains.get('XN-TO'), ['-m physdev --physdev-out vif1.0 -g XN-I-vif1.0'], 'only guests with inbound rules');
  });

  it('isolation: by guest marks at L2, whatever the names; dom0 and the uplink are not guests', () => {
    const rs = compileShared([
      { name: ifn('web-eth0'), bridge: ifn('xenbr0'), inbound: false, isolated: true },
      { name: ifn('vif2.0'), bridge: ifn('xenbr0'), inbound: false, isolated: false },
    ]);
    assert.deepEqual(rs.eb.roots, [{ chain: 'FORWARD', rule: '-j XN-ISO' }]);
    assert.deepEqual(rs.eb.chains.get('XN-ISO'), ['-o vif2.0 -j XN-ISO-I', '-o web-eth0 -j XN-ISO-A'], 'renamed guests are in, vif0.0 and peth0 are not');
    assert.deepEqual(rs.eb.chains.get('XN-ISO-A'), ['--mark 0x100000/0x100000 -j DROP'], 'to an isolated guest: nothing from any guest');
    assert.deepEqual(rs.eb.chains.get('XN-ISO-I'), ['--mark 0x200000/0x200000 -j DROP'], 'to any guest: nothing from an isolated one');
  });
});

/** Follows the dispatch tree for an interface name the way the kernel matches `name`/`prefix+`. */
function dispatch(chains: Map<string, string[]>, root: string, ifname: string): { leaf?: string; visited: number } {
  let chain = root;
  let visited = 0;
  for (let depth = 0; depth < 64; depth++) {
    let next: string | undefined;
    for (const rule of chains.get(chain) ?? []) {
      visited++;
      const m = /--physdev-in (\S+) -[jg] (\S+)$/.exec(rule);
      if (!m) continue;
      const [pat, target] = [m[1]!, m[2]!];
      const hit = pat.endsWith('+') ? ifname.startsWith(pat.slice(0, -1)) : ifname === pat;
      if (hit) {
        next = target;
        break;
      }
    }
    if (!next) return { visited };
    if (!chains.has(next) || next.startsWith('XN-O-')) return { leaf: next, visited };
    chain = next;
  }
  throw new Error('loop');
}

describe('dispatch tree', () => {
  const spec = { root: 'XN-FROM', chainFor: (p: string) => `XN-F-${p}`, match: (p: string) => `-m physdev --physdev-in ${p}`, leaf: (n: string) => `XN-O-${n}`, verb: '-g' as const };
  const nameArb = fc.oneof(
    fc.tuple(fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 0, max: 3 })).map(([d, n]) => `vif${d}.${n}`),
    fc.stringMatching(/^[a-z][a-z0-9.-]{0,13}$/),
  );

  it('every name reaches its own leaf and nothing else does (vif1.1 never catches vif1.10)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(nameArb, { minLength: 1, maxLength: 60 }), fc.array(nameArb, { maxLength: 10 }), (names, others) => {
        const chains = buildTree(names, spec);
        for (const n of names) assert.equal(dispatch(chains, 'XN-FROM', n).leaf, `XN-O-${n}`, n);
        for (const o of others) if (!names.includes(o)) assert.equal(dispatch(chains, 'XN-FROM', o).leaf, undefined, o);
        for (const c of chains.keys()) assert.ok(c.length <= MAX_CHAIN_NAME, c);
      }),
      { numRuns: 200 },
    );
  });

  it('keeps the rules a packet visits small with 1000 guests (vs 1000 in a flat list)', () => {
    const names = Array.from({ length: 1000 }, (_, i) => `vif${i + 1}.0`);
    const chains = buildTree(names, spec);
    const worst = Math.max(...names.map((n) => dispatch(chains, 'XN-FROM', n).visited));
    assert.ok(worst <= 40, `worst case ${worst} rule visits`);
    assert.equal(dispatch(chains, 'XN-FROM', 'vif1.1').leaf, undefined);
    assert.equal(dispatch(chains, 'XN-FROM', 'vif1.10').leaf, undefined);
  });
});

/** Applies a table plan to a model of the kernel's owned chains (what restore would do). */
function applyPlan(t: TableRules, p: TablePlan): TableRules {
  const chains = new Map(t.chains);
  for (const [c, rules] of p.write) chains.set(c, rules);
  for (const c of p.remove) chains.delete(c);
  const drop = new Set(p.removeRoots.map((r) => `${r.chain} ${r.rule}`));
  const roots = [...t.roots.filter((r) => !drop.has(`${r.chain} ${r.rule}`)), ...p.addRoots];
  return { chains, roots };
}

const canon = (t: TableRules) => ({
  chains: [...t.chains.entries()].map(([k, v]) => [k, v.map((r) => normalizeRule(r))] as const).sort(([a], [b]) => a.localeCompare(b)),
  roots: t.roots.map((r) => `${r.chain} ${r.rule}`).sort(),
});

describe('incremental hook updates', () => {
  it('any sequence of online/offline leaves exactly what compile() of the final set wants', () => {
    const op = fc.record({ online: fc.boolean(), d: fc.integer({ min: 1, max: 40 }), n: fc.integer({ min: 0, max: 1 }), br: fc.constantFrom('xenbr0', 'xenbr1'), drop: fc.boolean() });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        let live: RuleSet = emptyRuleSet();
        let index: Record<string, IndexEntry> = {};
        const chainsOf = new Map<string, RuleSet>();
        const policyOf = new Map<string, ResolvedVif>();
        for (const o of ops) {
          const name = `vif${o.d}.${o.n}`;
          const next = { ...index };
          let newChains: RuleSet | undefined;
          if (o.online) {
            const v = vif(name, { bridge: ifn(index[name]?.bridge ?? o.br), inbound: o.drop ? 'drop' : 'accept' });
            next[name] = { ...memberFacts(v), state: 'installed' };
            policyOf.set(name, v);
            newChains = compileVif(v);
          } else {
            if (index[name] === undefined) continue;
            delete next[name];
          }
          const plans = incrementalPlans(index, next, chainsOf.get(name) ?? emptyRuleSet(), newChains ?? emptyRuleSet());
          for (const t of tableNames) live = { ...live, [t]: applyPlan(live[t], plans[t]) };
          if (newChains) chainsOf.set(name, newChains);
          else chainsOf.delete(name);
          index = next;
        }
        const want = compile(Object.keys(index).map((n) => policyOf.get(n)!));
        for (const t of tableNames) assert.deepEqual(canon(live[t]), canon(want[t]), t);
      }),
      { numRuns: 150 },
    );
  });
});

describe('compare, diff and render', () => {
  it('an nft rule is compared with its blanks made single spaces (a rule already so is taken as it is)', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('a', 'b', ' ', '  ', '\t', '\n', '\u00a0', '"', '{'), { maxLength: 12 }), (parts) => {
        const rule = parts.join('');
        assert.equal(normalizeRule(rule, 'nft'), rule.replace(/\s+/g, ' ').trim());
      }),
      { numRuns: 2000 },
    );
  });

  it('normalises what *-save reorders and renames', () => {
    assert.equal(normalizeRule('-i vif1.+ -s ! 00:16:3e:00:00:01 -j DROP', 'ebtables'), normalizeRule('-s ! 0:16:3e:0:0:1 -i vif1.+ -j DROP', 'ebtables'));
    assert.equal(normalizeRule('-p 0x88cc -j RETURN', 'ebtables'), normalizeRule('-p LLDP -j RETURN', 'ebtables'));
    assert.equal(normalizeRule('-p IPv4 -j RETURN', 'ebtables'), normalizeRule('-p 0x0800 -j RETURN', 'ebtables'));
    assert.notEqual(normalizeRule('-s 10.0.0.1/32 -j RETURN'), normalizeRule('! -s 10.0.0.1/32 -j RETURN'));
    assert.equal(normalizeRule('-m physdev --physdev-in vif1.0 --physdev-is-bridged -j ACCEPT'), normalizeRule('-m physdev --physdev-is-bridged --physdev-in vif1.0 -j ACCEPT'));
  });

  it('parses owned chains, root jumps and counters from save output, and ignores the rest', () => {
    const live = parseSave(`# Generated
*nat
:XN-NOT-FILTER - [0:0]
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:XN-O-vif1.0 - [0:0]
:OTHER - [0:0]
[3:180] -A FORWARD -o xenbr0 -m physdev --physdev-is-bridged -j XN-FORWARD
[0:0] -A FORWARD -j OTHER
[7:420] -A XN-O-vif1.0 -j DROP
COMMIT
`);
    assert.deepEqual([...live.chains.keys()], ['XN-O-vif1.0']);
    assert.deepEqual(live.chains.get('XN-O-vif1.0'), ['-j DROP']);
    assert.deepEqual(live.counters.get('XN-O-vif1.0'), [{ packets: 7, bytes: 420 }]);
    assert.deepEqual(live.roots, [{ chain: 'FORWARD', rule: '-o xenbr0 -m physdev --physdev-is-bridged -j XN-FORWARD' }]);
    assert.equal(live.foreignRules, 1);
    assert.equal(live.policies.get('FORWARD'), 'DROP');
    const eb = parseSave('*filter\n:XN-E-vif1.0 RETURN\n-A XN-E-vif1.0 -j DROP -c 5 300\nCOMMIT\n');
    assert.deepEqual(eb.counters.get('XN-E-vif1.0'), [{ packets: 5, bytes: 300 }]);
  });

  it('renders one transaction: declare, unhook, fill, hook, delete; duplicates of a jump are removed', () => {
    const desired = compile([vif('vif1.0')]).ipv4;
    const live = parseSave(`*filter
:XN-O-vif9.0 - [0:0]
-A FORWARD -o xenbr0 -m physdev --physdev-is-bridged -j XN-FORWARD
-A FORWARD -o xenbr0 -m physdev --physdev-is-bridged -j XN-FORWARD
-A XN-O-vif9.0 -j DROP
COMMIT
`);
    const plan = diffTable(live, desired, 'ipv4');
    assert.deepEqual(plan.remove, ['XN-O-vif9.0']);
    assert.equal(plan.removeRoots.length, 1, 'the duplicate');
    assert.equal(plan.addRoots.length, 1, 'the missing INPUT jump');
    const text = render(plan, 'ipv4').split('\n');
    assert.equal(text[0], '*filter');
    assert.ok(text.indexOf(':XN-O-vif9.0 - [0:0]') < text.indexOf('-X XN-O-vif9.0'));
    assert.ok(text.findIndex((l) => l.startsWith('-D FORWARD')) < text.findIndex((l) => l.startsWith('-A ')));
    assert.equal(text[text.length - 2], 'COMMIT');
    assert.equal(render(diffTable(asLive(desired), desired, 'ipv4'), 'ipv4'), '', 'nothing to do: no transaction');
  });

  it('compile is deterministic and independent of input order', () => {
    const a = [vif('vif2.0'), vif('vif1.0'), vif('vif10.1')];
    assert.deepEqual(canon(compile(a).ipv4), canon(compile([...a].reverse()).ipv4));
  });
});
