/**
 * A guest's identity (pure): which name its policy comes from (xl's migration names, stub
 * domains, hostile values), what the identity guard protects, and how both backends compile,
 * read back and change the guard.
 */
import assert from 'node:assert/strict';
import { claimOwners, claimsOf, parseClaims, sharedClaims } from '../../src/firewall/claims.js';
import { compile, compileShared, compileVif, memberFacts, treeMember } from '../../src/firewall/compile.js';
import { incrementalPlans } from '../../src/firewall/commit.js';
import { diffTable, render } from '../../src/firewall/diff.js';
import { describeIdentity, domainIdentity, identityPaths, namesKey } from '../../src/firewall/domain-identity.js';
import { claimsFromGuardLive, compileGuardXtables } from '../../src/firewall/xtables/guard.js';
import { emptyRuleSet, type Engine, type ResolvedVif, type VifFacts } from '../../src/firewall/model.js';
import { CHAIN_CLAIMS, claimsFromPortLines } from '../../src/firewall/nftables/guard.js';
import { parseNftList } from '../../src/firewall/nftables/script.js';
import { asLive } from '../../src/firewall/diff.js';
import { resolveVif } from '../../src/firewall/resolve.js';
import type { IndexEntry } from '../../src/firewall/store.js';
import type { PolicyFile } from '../../src/config/schema.js';
import { ConfigError, parsePolicy } from '../../src/config/load.js';
import { cidr, dom, ifn, mac } from './lib/values.js';

const NFT: Engine = { kind: 'nftables', conntrack: 'mark' };

function facts(name: string, domid: number, names: { name?: string; target?: string; targetName?: string }, extra: Partial<VifFacts> = {}): VifFacts {
  const n = { domid, ...names };
  return { name: ifn(name), bridge: ifn('xenbr0'), domid, devid: 0, identity: domainIdentity(n), namesKey: namesKey(n), mac: mac(`00:16:3e:00:00:${domid.toString(16).padStart(2, '0')}`), ipv4: [cidr(`192.168.0.${domid}`)], ipv6: [cidr(`2001:db8::${domid.toString(16)}`)], ...extra };
}

const policy: PolicyFile = { version: 1, defaults: { inbound: 'drop', outbound: 'drop' }, guests: { [dom('web')]: { inbound: 'accept', outbound: 'accept', allow_in: [{ proto: 'tcp', ports: [80] }] } } };

describe('a guest\'s identity: the name its policy comes from', () => {
  it('xl\'s migration names are the guest\'s own; a stub domain has its guest\'s; anything else is taken as written', () => {
    assert.deepEqual(domainIdentity({ domid: 5, name: 'web' }), { policyName: 'web', source: 'name', elsewhere: false, warnings: [] });
    assert.deepEqual(domainIdentity({ domid: 5, name: 'web--incoming' }), { policyName: 'web', source: 'incoming', elsewhere: true, warnings: [] });
    assert.deepEqual(domainIdentity({ domid: 5, name: 'web--migratedaway' }), { policyName: 'web', source: 'migratedaway', elsewhere: true, warnings: [] });
    assert.equal(domainIdentity({ domid: 5, name: '--incoming' }).policyName, '--incoming', 'a suffix alone is a name');
    assert.equal(domainIdentity({ domid: 5, name: 'web--incoming--x' }).policyName, 'web--incoming--x');
    assert.deepEqual(domainIdentity({ domid: 6, name: 'web-dm', target: '5', targetName: 'web' }), { policyName: 'web', source: 'stubdom', elsewhere: false, target: 5, warnings: [] });
    assert.deepEqual(domainIdentity({ domid: 6, name: 'web--incoming-dm', target: '5', targetName: 'web--incoming' }), { policyName: 'web', source: 'stubdom', elsewhere: true, target: 5, warnings: [] }, 'a stub domain of a guest being received');
    assert.equal(domainIdentity({ domid: 6, name: 'web-dm', target: '5' }).policyName, undefined, 'a target without a name: no policy name (the defaults), never the stub domain\'s own');
    assert.equal(describeIdentity({ source: 'stubdom', target: 5 }), 'stub domain of domain 5');
  });

  it('a rule-file entry named like a guest in migration is refused, with the name to use', () => {
    assert.throws(
      () => parsePolicy('version: 1\nguests:\n  db--incoming:\n    inbound: drop\n', 'x.yaml'),
      (e: unknown) => e instanceof ConfigError && /"db--incoming" is the name xl gives db during a live migration, and the policy then comes from "db": name the entry "db"/.test(e.message),
    );
    assert.doesNotThrow(() => parsePolicy('version: 1\nguests:\n  web-dm:\n    inbound: drop\n', 'x.yaml'), 'a stub domain\'s name is a name like any other');
  });

  it('a target that is not another guest\'s domid is ignored and reported; a name with control characters is no name', () => {
    for (const target of ['0', '-1', '007', '32752', '99999', 'abc', '5 ', '6']) {
      const id = domainIdentity({ domid: 6, name: 'web-dm', target, targetName: 'web' });
      assert.equal(id.source, 'name', target);
      assert.equal(id.policyName, 'web-dm', target);
      assert.match(id.warnings.join(), /is not another guest's domid: ignored/, target);
    }
    const bad = domainIdentity({ domid: 5, name: 'web\u202e' });
    assert.equal(bad.policyName, undefined);
    assert.match(bad.warnings.join(), /control or line-break characters/);
    assert.deepEqual(identityPaths({ domid: 6, target: '5' }), ['/local/domain/6/name', '/local/domain/6/target', '/local/domain/5/name']);
    assert.equal(namesKey({ domid: 5, name: 'web', target: '' }), namesKey({ domid: 5, name: 'web' }), 'an empty node is an absent one');
    assert.notEqual(namesKey({ domid: 5, name: 'web' }), namesKey({ domid: 5, name: 'web--incoming' }));
  });

  it('a guest received by migration, or its stub domain, gets its own policy even where the defaults deny everything', () => {
    const unknown = resolveVif(policy, facts('vif7.0', 7, { name: 'someone' }));
    assert.equal(unknown.guest, undefined);
    assert.equal(unknown.inbound, 'drop');
    assert.equal(unknown.outbound, 'drop');
    const incoming = resolveVif(policy, facts('vif8.0', 8, { name: 'web--incoming' }));
    assert.equal(incoming.guest, 'web');
    assert.equal(incoming.inbound, 'accept');
    assert.equal(incoming.nameSource, 'incoming');
    const stub = resolveVif(policy, facts('vif9.0', 9, { name: 'web-dm', target: '8', targetName: 'web--incoming' }));
    assert.equal(stub.guest, 'web');
    assert.equal(stub.target, 8);
    // The deny-all default compiles to drops for the unknown guest (both directions, both backends).
    const x = compile([unknown]);
    assert.ok(x.ipv4.chains.get('XN-O-vif7.0')!.some((r) => r === '-j DROP'));
    assert.ok(x.ipv4.chains.get('XN-I-vif7.0')!.some((r) => r === '-j DROP'));
    const n = compile([unknown], NFT);
    for (const c of ['XN-O4-vif7.0', 'XN-O6-vif7.0']) assert.equal(n.nftables.chains.get(c)!.at(-1), 'counter drop', `${c}: outbound drop`);
  });
});

describe('the identity guard: what it protects', () => {
  const v = (extra: Partial<VifFacts> = {}, p: PolicyFile = { version: 1 }, name = 'web'): ResolvedVif => resolveVif(p, facts('vif5.0', 5, { name }, extra));

  it('the MAC, host addresses and the EUI-64 link-local, never a prefix; nothing while the guest runs elsewhere or with identity_guard: false', () => {
    assert.deepEqual(claimsOf(v({ ipv4: [cidr('192.168.0.5'), cidr('10.0.0.0/24')], ipv6: [cidr('2001:db8::5'), cidr('2001:db8:1::/64')] })), { mac: ['00:16:3e:00:00:05'], ipv4: ['192.168.0.5'], ipv6: ['2001:db8::5', 'fe80::216:3eff:fe00:5'] });
    assert.equal(claimsOf(v({}, { version: 1 }, 'web--incoming')), undefined, 'received: not yet');
    assert.equal(claimsOf(v({}, { version: 1 }, 'web--migratedaway')), undefined, 'left: no more');
    assert.equal(claimsOf(v({}, { version: 1, defaults: { identity_guard: false } })), undefined);
    assert.deepEqual(claimsOf(v({}, { version: 1, defaults: { antispoof: { mac: false, arp: true, ipv4: false, ipv6: true } } })), { mac: [], ipv4: [], ipv6: ['2001:db8::5', 'fe80::216:3eff:fe00:5'] }, 'a family without anti-spoofing is no identity');
  });

  it('claims read back from state are parsed, never trusted', () => {
    assert.deepEqual(parseClaims({ mac: ['00:16:3e:00:00:05'], ipv4: ['192.168.0.5'], ipv6: [] }), { mac: ['00:16:3e:00:00:05'], ipv4: ['192.168.0.5'], ipv6: [] });
    for (const bad of [{ mac: ['00:16:3E:00:00:05'], ipv4: [], ipv6: [] }, { mac: [], ipv4: ['192.168.0.0/24'], ipv6: [] }, { mac: [], ipv4: ['010.0.0.1'], ipv6: [] }, { mac: [], ipv4: [], ipv6: ['2001:DB8::1'] }, { mac: ['-s 1 -j ACCEPT'], ipv4: [], ipv6: [] }, { mac: [1], ipv4: [], ipv6: [] }, 'x', null]) {
      assert.equal(parseClaims(bad), undefined, JSON.stringify(bad));
    }
  });

  it('a key owned by several ports (a vif and its emulated NIC) is theirs together; two guests with one MAC are reported', () => {
    const pv = { name: ifn('vif5.0'), domid: 5, claims: { mac: ['00:16:3e:00:00:05'], ipv4: ['192.168.0.5'], ipv6: [] } };
    const emu = { ...pv, name: ifn('vif5.0-emu') };
    const stub = { ...pv, name: ifn('vif6.0'), domid: 6, target: 5 };
    const clone = { ...pv, name: ifn('vif9.0'), domid: 9 };
    assert.deepEqual(claimOwners([emu, pv]).mac.get('00:16:3e:00:00:05'), ['vif5.0', 'vif5.0-emu']);
    assert.deepEqual(sharedClaims([pv, emu, stub]), [], 'a guest, its emulated NIC and its stub domain');
    assert.deepEqual(sharedClaims([pv, clone]), ['MAC 00:16:3e:00:00:05 belongs to vif5.0 and vif9.0: each can take the other\'s place', 'IPv4 address 192.168.0.5 belongs to vif5.0 and vif9.0: each can take the other\'s place']);
  });
});

describe('the identity guard: both backends', () => {
  const a = resolveVif({ version: 1 }, facts('vif5.0', 5, { name: 'a' }));
  const aEmu = { ...a, name: ifn('vif5.0-emu') };
  const b = resolveVif({ version: 1 }, facts('vif6.0', 6, { name: 'b' }));

  it('xtables: tries over the keys in ebtables nat (and NA targets in ip6tables); every owner port returns, the rest drops', () => {
    const g = compileGuardXtables([treeMember(a), treeMember(aEmu), treeMember(b)]);
    assert.deepEqual(g.ebnat.get('XN-ID'), ['--mark 0x800000/0x800000 -j RETURN', '-j XN-M', '-p ARP -j XN-A', '-p 802_1Q --vlan-id 0 --vlan-encap 0806 -j DROP', '-p 0x88a8 -j DROP']);
    assert.deepEqual(g.ebnat.get('XN-M'), ['-s 00:16:3e:00:00:00/ff:ff:ff:ff:ff:f0 -j XN-M-00163e00000']);
    assert.deepEqual(g.ebnat.get('XN-M-00163e00000'), ['-s 00:16:3e:00:00:05 -i vif5.0 -j RETURN', '-s 00:16:3e:00:00:05 -i vif5.0-emu -j RETURN', '-s 00:16:3e:00:00:05 -j DROP', '-s 00:16:3e:00:00:06 -i vif6.0 -j RETURN', '-s 00:16:3e:00:00:06 -j DROP']);
    assert.deepEqual(g.ipv4raw.get('XN-4'), ['-s 192.168.0.0/28 -j XN-4-c0a8000'], 'IP sources in the raw table: before conntrack, and it sees IP inside VLAN and PPPoE headers too');
    assert.deepEqual(g.ipv4raw.get('XN-4-c0a8000'), ['-s 192.168.0.5/32 -m physdev --physdev-in vif5.0 -j RETURN', '-s 192.168.0.5/32 -m physdev --physdev-in vif5.0-emu -j RETURN', '-s 192.168.0.5/32 -j DROP', '-s 192.168.0.6/32 -m physdev --physdev-in vif6.0 -j RETURN', '-s 192.168.0.6/32 -j DROP']);
    assert.equal(g.raw.ipv4raw?.('xenbr0'), '-i xenbr0 -m physdev --physdev-is-in -m mark ! --mark 0x800000/0x800000 -j XN-4');
    assert.deepEqual(g.fromIpv6, ['-p ipv6-icmp -m icmp6 --icmpv6-type 136 -j XN-NA']);
    assert.equal(g.ipv6.get('XN-NA')![0], '-m u32 ! --u32 "0x4&0xff00=0x3a00" -j DROP', 'an NA whose target u32 cannot read is dropped');
    // The dispatch: the guard runs at the end of XN-FROM in ebtables nat, NA first in ip6tables.
    const rs = compile([a, b]);
    assert.equal(rs.ebnat.chains.get('XN-FROM')!.at(-1), '-j XN-ID');
    assert.equal(rs.ipv6.chains.get('XN-FROM')![0], '-p ipv6-icmp -m icmp6 --icmpv6-type 136 -j XN-NA');
    assert.deepEqual(rs.ipv4raw.roots, [{ chain: 'PREROUTING', rule: '-i xenbr0 -m physdev --physdev-is-in -m mark ! --mark 0x800000/0x800000 -j XN-4' }], 'one jump per bridge with guests');
    // A guest whose own chains check every source it may carry skips the guard; one without its MAC checked does not.
    assert.ok(rs.ebnat.chains.get('XN-E-vif5.0')!.includes('-j mark --mark-or 0x900000 --mark-target CONTINUE'));
    const open = compile([resolveVif({ version: 1, defaults: { antispoof: { mac: false } } }, facts('vif7.0', 7, { name: 'c' }))]);
    assert.ok(open.ebnat.chains.get('XN-E-vif7.0')!.includes('-j mark --mark-or 0x100000 --mark-target CONTINUE'));
    // Its keys not claimed (the guard off for it): another guest may claim them, its frames are not "checked".
    const unguarded = compile([resolveVif({ version: 1, guests: { e: { identity_guard: false } } }, facts('vif9.0', 9, { name: 'e' }, { ipv4: [cidr('192.168.0.9')] }))]);
    assert.ok(unguarded.ebnat.chains.get('XN-E-vif9.0')!.includes('-j mark --mark-or 0x100000 --mark-target CONTINUE'), unguarded.ebnat.chains.get('XN-E-vif9.0')!.join('\n'));
    // A prefix lets a guest use addresses of others inside it: its frames are not "checked".
    const prefix = compile([resolveVif({ version: 1 }, facts('vif8.0', 8, { name: 'd' }, { ipv4: [cidr('192.168.0.0/24')] }))]);
    assert.ok(prefix.ebnat.chains.get('XN-E-vif8.0')!.includes('-j mark --mark-or 0x100000 --mark-target CONTINUE'));
    // Adopted from the live rules without a record: its claims read back from the leaves.
    assert.deepEqual(claimsFromGuardLive([rs.ebnat.chains, rs.ipv6raw.chains], 'vif5.0'), claimsOf(a));
    assert.equal(claimsFromGuardLive([rs.ebnat.chains, rs.ipv6raw.chains], 'vif5.0-emu'), undefined);
  });

  it('a trie visits few chains whatever the number of guests', () => {
    const many = Array.from({ length: 1000 }, (_, i) => ({ name: ifn(`vif${i + 1}.0`), claims: { mac: [`00:16:3e:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}:01`], ipv4: [`10.${i >> 8}.${i & 255}.1`], ipv6: [] } }));
    const g = compileGuardXtables(many);
    const chains = new Map<string, string[]>([...g.ebnat, ...g.ipv4raw]);
    const longest = (root: string): number => {
      const walk = (c: string): number => Math.max(1, ...(chains.get(c) ?? []).map((r) => /-j (XN-[M4]-\S+)$/.exec(r)?.[1]).filter((x): x is string => x !== undefined).map((x) => 1 + walk(x)));
      return walk(root);
    };
    assert.ok(longest('XN-M') <= 4, `MAC trie depth ${longest('XN-M')}`);
    assert.ok(longest('XN-4') <= 5, `IPv4 trie depth ${longest('XN-4')}`);
    assert.ok(Math.max(...[...chains.values()].map((r) => r.length)) <= 16 * 2 + 1, 'no chain is a flat list of the guests');
  });

  it('nftables: one rule per kind in XN-PRE, the keys in XN-CLAIMS, each port\'s pairs in its XN-E; what nft lists reads back the same', () => {
    const t = compileShared([treeMember(a), treeMember(b)], NFT).nftables;
    const pre = t.chains.get('XN-PRE')!;
    assert.deepEqual(pre.slice(-6), [
      'iifname vmap @from_guest',
      'ether saddr . iifname != @id_mac_port ether saddr @id_mac counter drop',
      'arp saddr ip . iifname != @id_ip4_port arp saddr ip @id_ip4 counter drop',
      'ip saddr . iifname != @id_ip4_port ip saddr @id_ip4 counter drop',
      'ip6 saddr . iifname != @id_ip6_port ip6 saddr @id_ip6 counter drop',
      'icmpv6 type nd-neighbor-advert @th,64,128 . iifname != @id_na_port @th,64,128 @id_na counter drop',
    ]);
    assert.ok(t.chains.get('XN-E-vif5.0')!.includes('@id_mac_port 00:16:3e:00:00:05 . "vif5.0"'));
    assert.ok(t.chains.get('XN-E-vif5.0')!.includes('@id_na_port 0x20010db8000000000000000000000005 . "vif5.0"'));
    assert.ok(t.chains.get(CHAIN_CLAIMS)!.includes('@id_ip6 fe80::216:3eff:fe00:6'));
    assert.deepEqual(claimsFromPortLines(t.chains.get('XN-E-vif5.0')!), claimsOf(a));
    // nft's listing of those elements (counters, lines split as nft splits them) reads back the same.
    const listing = `table bridge xennet {
	set id_mac {
		type ether_addr
		counter
		elements = { 00:16:3e:00:00:05 counter packets 3 bytes 180,
			     00:16:3e:00:00:06 counter packets 0 bytes 0 }
	}
	set id_mac_port {
		type ether_addr . ifname
		elements = { 00:16:3e:00:00:05 . "vif5.0",
			     00:16:3e:00:00:06 . "vif6.0" }
	}
}`;
    const live = parseNftList(listing);
    assert.deepEqual(live.chains.get(CHAIN_CLAIMS), ['@id_mac 00:16:3e:00:00:05', '@id_mac 00:16:3e:00:00:06']);
    assert.deepEqual(live.counters.get(CHAIN_CLAIMS)?.[0], { packets: 3, bytes: 180 });
    assert.deepEqual(live.chains.get('XN-E-vif6.0'), ['@id_mac_port 00:16:3e:00:00:06 . "vif6.0"']);
  });

  it('nftables: a hook changes the shared keys by difference (the others keep their counters), and removes a guest\'s pairs with it', () => {
    const entry = (v: ResolvedVif): IndexEntry => ({ ...memberFacts(v), state: 'installed' });
    const c = resolveVif({ version: 1 }, facts('vif7.0', 7, { name: 'c' }));
    const before = { 'vif5.0': entry(a), 'vif6.0': entry(b) };
    const added = incrementalPlans(before, { ...before, 'vif7.0': entry(c) }, emptyRuleSet(), compileVif(c, NFT), NFT).nftables;
    const script = render(added, 'nftables');
    assert.match(script, /add element bridge xennet id_mac \{ 00:16:3e:00:00:07 \}/);
    assert.doesNotMatch(script, /id_mac \{ 00:16:3e:00:00:0[56] \}/, 'the keys of the others are not touched');
    assert.match(script, /add element bridge xennet id_mac_port \{ 00:16:3e:00:00:07 \. "vif7.0" \}/);
    const { 'vif6.0': _gone, ...rest } = before;
    const removed = incrementalPlans(before, rest, compileVif(b, NFT), emptyRuleSet(), NFT).nftables;
    const out = render(removed, 'nftables');
    assert.match(out, /add element bridge xennet id_mac \{ 00:16:3e:00:00:06 \}\ndelete element bridge xennet id_mac \{ 00:16:3e:00:00:06 \}/);
    assert.match(out, /delete element bridge xennet id_mac_port \{ 00:16:3e:00:00:06 \. "vif6.0" \}/);
    assert.doesNotMatch(out, /00:16:3e:00:00:05/);
    // A reconcile against the live table is exact too.
    const desired = compile([a], NFT).nftables;
    const plan = diffTable(asLive(compile([a, b], NFT).nftables), desired, 'nftables');
    assert.deepEqual(plan.before?.get(CHAIN_CLAIMS)?.filter((l) => l.includes(':06')), ['@id_mac 00:16:3e:00:00:06']);
  });

  it('nftables: two guests\' addresses swapped are never held by both, at any part boundary of a write split into transactions', () => {
    const swapped = (name: string, domid: number, other: number, label: string): ResolvedVif => resolveVif({ version: 1 }, facts(name, domid, { name: label }, { ipv4: [cidr(`192.168.0.${other}`)], ipv6: [cidr(`2001:db8::${other.toString(16)}`)] }));
    const plan = diffTable(asLive(compile([a, b], NFT).nftables), compile([swapped('vif5.0', 5, 6, 'a'), swapped('vif6.0', 6, 5, 'b')], NFT).nftables, 'nftables');
    const script = render(plan, 'nftables');
    // The (key, port) pairs of the guard, as the kernel would hold them after each part.
    const pairs = new Set<string>();
    for (const [c, lines] of plan.before ?? []) if (c.startsWith('XN-E-')) for (const l of lines) if (/^@id_\w+_port /.test(l)) pairs.add(l.slice(1).replace(/ /, ' { ') + ' }');
    const ownersOf = (key: string): string[] => [...pairs].filter((p) => p.startsWith(`${key.replace(' ', ' { ')} . `)).map((p) => /"([^"]+)"/.exec(p)![1]!).sort();
    const keys = ['id_ip4_port 192.168.0.5', 'id_ip4_port 192.168.0.6', 'id_ip6_port 2001:db8::5', 'id_ip6_port 2001:db8::6'];
    assert.deepEqual(keys.map(ownersOf), [['vif5.0'], ['vif6.0'], ['vif5.0'], ['vif6.0']], 'before');
    const parts = script.split(/^# part .*$/m);
    assert.ok(parts.length >= 3, 'the change is in parts');
    for (const [i, part] of parts.entries()) {
      for (const m of part.matchAll(/^(add|delete) element bridge xennet (id_\w+_port \{ .* \})$/gm)) {
        if (m[1] === 'add') pairs.add(m[2]!);
        else pairs.delete(m[2]!);
      }
      for (const k of keys) assert.ok(ownersOf(k).length <= 1, `after part ${i}: ${k} is held by ${ownersOf(k).join(' and ')}`);
    }
    assert.deepEqual(keys.map(ownersOf), [['vif6.0'], ['vif5.0'], ['vif6.0'], ['vif5.0']], 'after');
  });

  it('nftables: a key nobody claims any more leaves the guard after every guest\'s part (an unguarded new owner is dropped until then, as the old one)', () => {
    // b's address moves to a, which is not guarded; b takes another.
    const unguarded = resolveVif({ version: 1, guests: { [dom('a')]: { identity_guard: false } } }, facts('vif5.0', 5, { name: 'a' }, { ipv4: [cidr('192.168.0.6')] }));
    const moved = resolveVif({ version: 1 }, facts('vif6.0', 6, { name: 'b' }, { ipv4: [cidr('192.168.0.7')] }));
    const before = compile([resolveVif({ version: 1, guests: { [dom('a')]: { identity_guard: false } } }, facts('vif5.0', 5, { name: 'a' })), b], NFT).nftables;
    const lines = render(diffTable(asLive(before), compile([unguarded, moved], NFT).nftables, 'nftables'), 'nftables').split('\n');
    const retiring = lines.findIndex((l) => l === 'delete element bridge xennet id_ip4 { 192.168.0.6 }');
    assert.ok(retiring >= 0, 'the key goes');
    const lastGuestPart = lines.reduce((at, l, i) => (/^# part vif/.test(l) ? i : at), -1);
    assert.ok(retiring > lastGuestPart, `after the last guest's part (line ${retiring} vs ${lastGuestPart})`);
  });
});
