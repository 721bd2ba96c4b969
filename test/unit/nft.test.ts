import assert from 'node:assert/strict';
import { cidr, ifn, mac } from './lib/values.js';
import { compile, compileVif } from '../../src/firewall/compile.js';
import { incrementalPlans, reconciledTable } from '../../src/firewall/commit.js';
import { diffTable, isEmptyTablePlan, render } from '../../src/firewall/diff.js';
import { namedKind, recordedKind, selectedKind } from '../../src/firewall/engine.js';
import { emptyRuleSet, XTABLES, type Engine, type ResolvedVif } from '../../src/firewall/model.js';
import { nftMarkBitsWritten } from '../../src/firewall/nftables/neighbours.js';
import { DORMANT, dormantTables, parseNftList, renderNft } from '../../src/firewall/nftables/script.js';
import { ruleTag, UNTAGGED } from '../../src/firewall/nftables/tag.js';
import { keyText, knownRules, liveFromNative } from '../../src/firewall/nftables/native-live.js';
import type { NftElementObject } from '../../src/bridge/nl/nftables.js';
import { DIGEST_UDATA, exprDigest } from '../../src/firewall/nftables/native/expr-digest.js';
import { ruleExpressionBytes, scriptMessages } from '../../src/firewall/nftables/native/script.js';
import { CHAIN_CONST, constSetLines, nftWarnings } from '../../src/firewall/nftables/compile.js';
import { addressSet, icmpTypes, ethertypes, naTargetMatch, portSet } from '../../src/firewall/nftables/syntax.js';
import { resolveVif } from '../../src/firewall/resolve.js';
import { dirOf, emptyIndex, loadIndex, type IndexEntry } from '../../src/firewall/store.js';
import { silentLogger } from '../../src/sys/log.js';
import { currentBootId } from '../../src/sys/boot.js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XennetError } from '../../src/sys/errors.js';

const NFT: Engine = { kind: 'nftables', conntrack: 'mark' };

function vif(name: string, extra: Partial<ResolvedVif> = {}): ResolvedVif {
  const base = resolveVif({ version: 1 }, { name: ifn(name), bridge: ifn('xenbr0'), mac: mac('00:16:3e:00:00:05'), ipv4: [cidr('192.168.0.5')], ipv6: [cidr('2001:db8::5')] });
  return { ...base, ...extra };
}

describe('nftables backend (pure)', () => {
  it('writes sets the way nft prints them: singletons sorted, intervals merged, one element bare', () => {
    assert.equal(addressSet('ipv4', [cidr('10.0.0.5')]), '10.0.0.5');
    assert.equal(addressSet('ipv4', [cidr('10.0.0.9'), cidr('10.0.0.5')]), '{ 10.0.0.5, 10.0.0.9 }');
    assert.equal(addressSet('ipv4', [cidr('10.0.0.0/25'), cidr('10.0.0.128/25')]), '10.0.0.0/24', 'adjacent prefixes merge (and one element is written bare, as nft reads it back)');
    assert.equal(addressSet('ipv4', [cidr('0.0.0.0/1'), cidr('95.1.220.251')]), '0.0.0.0/1', 'a contained element disappears');
    assert.equal(addressSet('ipv4', [cidr('10.0.0.0/25'), cidr('10.0.0.128/26')]), '10.0.0.0-10.0.0.191');
    assert.equal(addressSet('ipv4', [cidr('10.0.0.1'), cidr('10.0.0.2'), cidr('10.0.1.0/24')]), '{ 10.0.0.1-10.0.0.2, 10.0.1.0/24 }');
    assert.equal(addressSet('ipv6', [cidr('::1'), cidr('2001:db8::/127'), cidr('2001:db8::2')]), '{ ::1, 2001:db8::-2001:db8::2 }');
    assert.equal(portSet([81, 80]), '{ 80, 81 }');
    assert.equal(portSet(['80-90', 85, 91]), '80-91');
    assert.equal(portSet(['80-90', '85-95', 200]), '{ 80-95, 200 }');
    assert.equal(portSet(['80-90']), '80-90');
    assert.equal(icmpTypes('ipv4', [8, 0, 200, 8]), '{ echo-reply, echo-request, 200 }');
    assert.equal(icmpTypes('ipv6', [128]), 'echo-request');
    assert.equal(ethertypes([0x86dd, 0x0800, 0x88b5, 0x8100]), '{ ip, 8021q, ip6, 0x88b5 }');
    assert.equal(naTargetMatch(cidr('2001:db8::105')), '@th,64,128 0x20010db8000000000000000000000105');
    assert.equal(naTargetMatch(cidr('2001:db8:1::/64')), '@th,64,128 & 0xffffffffffffffff0000000000000000 == 0x20010db8000100000000000000000000');
  });

  it('a guest\'s chains: the MAC check first, every drop counted, connection state from the mark or from bridge conntrack', () => {
    const v = vif('vif5.0', { inbound: 'drop' });
    const mark = compileVif(v, NFT).nftables.chains;
    assert.deepEqual(mark.get('XN-O-vif5.0')!.slice(0, 2), ['ether saddr != 00:16:3e:00:00:05 counter drop', 'ether type != ip ether type != arp ether type != ip6 counter drop']);
    assert.ok([...mark.values()].flat().every((r) => !/\bdrop$/.test(r) || /counter drop$/.test(r)));
    assert.ok(mark.get('XN-I-vif5.0')!.includes('meta mark & 0x00400000 == 0x00400000 return'));
    const ct = compileVif(v, { kind: 'nftables', conntrack: 'bridge' }).nftables.chains;
    assert.ok(ct.get('XN-I-vif5.0')!.includes('ct state established,related return'));
    assert.deepEqual(compileVif(v, NFT).ipv4.chains.size, 0, 'nothing in the xtables tables');
  });

  it('a hook\'s change is the vif\'s chains and its dispatch entries, whatever the number of guests', () => {
    const before: Record<string, IndexEntry> = {};
    for (let i = 1; i <= 200; i++) before[`vif${i}.0`] = { bridge: ifn('xenbr0'), inbound: false, isolated: false, state: 'installed' };
    const after = { ...before, 'vif999.0': { bridge: ifn('xenbr0'), inbound: true, isolated: false, state: 'installed' as const } };
    const chains = compileVif(vif('vif999.0', { inbound: 'drop' }), NFT);
    const plan = incrementalPlans(before, after, emptyRuleSet(), chains, NFT).nftables;
    assert.deepEqual([...plan.write.keys()].sort(), ['XN-CT', 'XN-D4-vif999.0', 'XN-E-vif999.0', 'XN-FWD', 'XN-I-vif999.0', 'XN-I4-vif999.0', 'XN-I6-vif999.0', 'XN-N-vif999.0', 'XN-O-vif999.0', 'XN-O4-vif999.0', 'XN-O6-vif999.0', 'XN-PRE', 'XN-S-vif999.0'], 'the first inbound guest adds the to-guest dispatch and the conntrack mark (set in XN-CT, cleared in XN-PRE)');
    const script = render(plan, 'nftables');
    assert.match(script, /^add element bridge xennet from_guest \{ "vif999\.0" : jump XN-O-vif999\.0 \}$/m);
    assert.doesNotMatch(script, /vif17\.0/, 'no other guest is touched');
    const again = incrementalPlans(after, { ...after, 'vif998.0': { bridge: ifn('xenbr0'), inbound: false, isolated: false, state: 'installed' } }, emptyRuleSet(), compileVif(vif('vif998.0'), NFT), NFT).nftables;
    assert.deepEqual([...again.write.keys()].sort(), ['XN-D4-vif998.0', 'XN-E-vif998.0', 'XN-N-vif998.0', 'XN-O-vif998.0', 'XN-O4-vif998.0', 'XN-O6-vif998.0', 'XN-S-vif998.0']);
  });

  it('removing a guest detaches it first (add, then delete: no error whether or not the element is there) and deletes its chains', () => {
    const v = vif('vif5.0', { inbound: 'drop' });
    const before = { 'vif5.0': { bridge: ifn('xenbr0'), inbound: true, isolated: false, state: 'installed' as const }, 'vif6.0': { bridge: ifn('xenbr0'), inbound: false, isolated: false, state: 'installed' as const } };
    const { 'vif5.0': _gone, ...after } = before;
    const plan = incrementalPlans(before, after, compileVif(v, NFT), emptyRuleSet(), NFT).nftables;
    const lines = render(plan, 'nftables').split('\n');
    const at = (l: string): number => lines.indexOf(l);
    assert.ok(at('add element bridge xennet to_guest { "vif5.0" : jump XN-I-vif5.0 }') < at('delete element bridge xennet to_guest { "vif5.0" }'));
    assert.ok(at('delete element bridge xennet from_guest { "vif5.0" }') < at('delete chain bridge xennet XN-O-vif5.0'));
    assert.ok(at('flush chain bridge xennet XN-O-vif5.0') < at('delete chain bridge xennet XN-S-vif5.0'), 'chains are flushed before any is deleted');
    assert.ok(lines.includes('delete table inet xennet'), 'the last inbound guest takes the conntrack table with it');
    const last = incrementalPlans(after, {}, compileVif(vif('vif6.0'), NFT), emptyRuleSet(), NFT).nftables;
    assert.deepEqual(last.dropTables, ['bridge'], 'the last guest takes the bridge table with it');
  });

  it('reads nft\'s listing back: elements spanning lines become each vif\'s entries, counters are state', () => {
    const live = parseNftList(`table bridge xennet {
\tmap from_guest {
\t\ttype ifname : verdict
\t\telements = { "vif1.0" : jump XN-O-vif1.0,
\t\t\t     "vif2.0" : jump XN-O-vif2.0 }
\t}
\tset guests {
\t\ttype ifname
\t\telements = { "vif1.0" }
\t}
\tchain XN-O-vif1.0 {
\t\tether saddr != 00:16:3e:00:00:01 counter packets 3 bytes 180 drop comment "${ruleTag('ether saddr != 00:16:3e:00:00:01 counter drop')}"
\t}
}
table inet xennet {
\tchain XN-CT {
\t\ttype filter hook prerouting priority -170; policy accept;
\t\tiifname "xenbr0" ct state established,related meta mark set meta mark | 0x00400000 comment "${ruleTag('iifname "xenbr0" ct state established,related meta mark set meta mark | 0x00400000')}"
\t}
}
`);
    assert.deepEqual(live.chains.get('XN-E-vif1.0'), ['@from_guest "vif1.0" : jump XN-O-vif1.0', '@guests "vif1.0"']);
    assert.deepEqual(live.chains.get('XN-E-vif2.0'), ['@from_guest "vif2.0" : jump XN-O-vif2.0']);
    assert.deepEqual(live.chains.get('XN-O-vif1.0'), ['ether saddr != 00:16:3e:00:00:01 counter drop']);
    assert.deepEqual(live.counters.get('XN-O-vif1.0'), [{ packets: 3, bytes: 180 }]);
    assert.equal(live.chains.get('XN-CT')![0], 'type filter hook prerouting priority -170; policy accept;');
    const desired = compile([vif('vif1.0')], NFT).nftables;
    const plan = diffTable(live, desired, 'nftables');
    assert.ok(plan.remove.includes('XN-E-vif2.0') && plan.remove.includes('XN-CT'));
    assert.deepEqual(plan.dropTables, ['inet']);
    assert.ok(isEmptyTablePlan(diffTable(parseNftList(''), compile([], NFT).nftables, 'nftables')));
  });

  it('every rule is written with its text\'s tag; a listed rule without it, or with another, is not xennet\'s and its chain is written again', () => {
    const desired = compile([vif('vif1.0')], NFT).nftables;
    const script = renderNft(diffTable(parseNftList(''), desired, 'nftables'));
    const added = script.split('\n').filter((l) => l.startsWith('add rule '));
    assert.ok(added.length > 10);
    for (const l of added) assert.match(l, / comment "xn:[A-Za-z0-9_-]{12}"$/, l);
    const rules = desired.chains.get('XN-O-vif1.0')!;
    const listing = (tagOf: (r: string, i: number) => string | undefined): string =>
      `table bridge xennet {\n\tchain XN-O-vif1.0 {\n${rules.map((r, i) => `\t\t${r}${tagOf(r, i) === undefined ? '' : ` comment "${tagOf(r, i)}"`}\n`).join('')}\t}\n}\n`;
    assert.deepEqual(parseNftList(listing((r) => ruleTag(r))).chains.get('XN-O-vif1.0'), rules, 'tagged: read as written');
    for (const [what, tagOf] of [
      ['no tag', (_r: string, i: number) => (i === 1 ? undefined : ruleTag(rules[i]!))],
      ['another rule\'s tag', (_r: string, i: number) => (i === 1 ? ruleTag(rules[0]!) : ruleTag(rules[i]!))],
      ['a comment of someone else', (_r: string, i: number) => (i === 1 ? 'mine' : ruleTag(rules[i]!))],
    ] as const) {
      const live = parseNftList(listing(tagOf));
      assert.equal(live.chains.get('XN-O-vif1.0')![1], `${rules[1]}${UNTAGGED}`, what);
      assert.ok(diffTable(live, desired, 'nftables').write.has('XN-O-vif1.0'), `${what}: the chain is written again`);
    }
  });

  it('an entry set by hand to another verdict is taken out as it is (the kernel refuses to add its key with other data), then written as xennet\'s', () => {
    const desired = compile([vif('vif1.0')], NFT).nftables;
    const live = parseNftList(`table bridge xennet {\n\tmap from_guest {\n\t\ttype ifname : verdict\n\t\telements = { "vif1.0" : accept }\n\t}\n}\n`);
    const lines = renderNft(diffTable(live, desired, 'nftables')).split('\n');
    const out = lines.indexOf('add element bridge xennet from_guest { "vif1.0" : accept }');
    assert.ok(out >= 0, lines.join('\n'));
    assert.equal(lines[out + 1], 'delete element bridge xennet from_guest { "vif1.0" }');
    assert.ok(lines.indexOf('add element bridge xennet from_guest { "vif1.0" : jump XN-O-vif1.0 }') > out + 1);
    assert.ok(!lines.slice(0, out).some((l) => l.includes('from_guest { "vif1.0" : jump')), 'xennet\'s own data is not added over it');
  });

  it('an entry whose key is no interface name (`"vif1.0 "`) is taken out, and names no chain: nft would read it as a guest\'s', () => {
    const desired = compile([vif('vif1.0')], NFT).nftables;
    const live = parseNftList(`table bridge xennet {\n\tmap from_guest {\n\t\ttype ifname : verdict\n\t\telements = { "vif1.0 " : accept }\n\t}\n}\n`);
    const plan = diffTable(live, desired, 'nftables');
    assert.ok(plan.remove.includes('XN-E-vif1.0 '), plan.remove.join());
    const lines = renderNft(plan).split('\n');
    assert.ok(lines.includes('delete element bridge xennet from_guest { "vif1.0 " }'), lines.join('\n'));
    assert.deepEqual(lines.filter((l) => /chain bridge xennet XN-[A-Z0-9]+-vif1\.0 +$/.test(l) || (/^delete chain /.test(l) && l.includes('vif1.0'))), [], 'no chain named by it, none of the guest\'s deleted');
  });

  it('a chain made in the other family\'s table under a guest\'s chain name is removed from there, and the guest\'s chain stays: apply converges', () => {
    // inbound: drop keeps the inet table (its XN-CT), so the chains go one by one.
    const desired = compile([vif('vif1.0', { inbound: 'drop' })], NFT).nftables;
    assert.ok(desired.chains.has('XN-CT'));
    const guestChain = desired.chains.get('XN-O-vif1.0')!;
    const listing = `table bridge xennet {\n\tchain XN-O-vif1.0 {\n${guestChain.map((r) => `\t\t${r} comment "${ruleTag(r)}"\n`).join('')}\t}\n}\ntable inet xennet {\n\tchain XN-O-vif1.0 {\n\t\taccept\n\t}\n\tchain XN-PRE {\n\t}\n}\n`;
    const live = parseNftList(listing);
    assert.deepEqual(live.chains.get('XN-O-vif1.0'), guestChain, 'the guest\'s chain is read as it is');
    assert.deepEqual(live.chains.get('inet:XN-O-vif1.0'), [`accept${UNTAGGED}`]);
    assert.deepEqual(live.chains.get('inet:XN-PRE'), [], 'a bridge base chain\'s name in inet, too');
    const plan = diffTable(live, desired, 'nftables');
    assert.ok(plan.remove.includes('inet:XN-O-vif1.0') && plan.remove.includes('inet:XN-PRE'), plan.remove.join());
    assert.ok(!plan.write.has('XN-O-vif1.0'), 'the guest\'s chain is not rewritten');
    const lines = renderNft(plan).split('\n');
    for (const c of ['XN-O-vif1.0', 'XN-PRE']) {
      assert.ok(lines.indexOf(`flush chain inet xennet ${c}`) >= 0 && lines.indexOf(`delete chain inet xennet ${c}`) > lines.indexOf(`flush chain inet xennet ${c}`), lines.join('\n'));
    }
    assert.ok(!lines.some((l) => /^(flush|delete) chain bridge xennet XN-O-vif1\.0$/.test(l)), 'nothing of the bridge one');
    // Once removed, nothing is left to change for it.
    const after = parseNftList(listing.replace(/table inet xennet \{[\s\S]*$/, ''));
    assert.ok(![...diffTable(after, desired, 'nftables').remove].some((c) => c.includes(':')));
  });

  it('sets and maps xennet does not declare (an inet map that jumps to a chain of a guest\'s name) and chains named like its pseudo-chains of elements are strays: deleted last, the maps before the chains they name', () => {
    const desired = compile([vif('vif1.0', { inbound: 'drop' })], NFT).nftables;
    const live = parseNftList(`table bridge xennet {\n\tset guests {\n\t\ttype ifname\n\t}\n\tset mine {\n\t\ttype ipv4_addr\n\t}\n\tchain XN-E-vif1.0 {\n\t\ttype filter hook forward priority -400; policy drop;\n\t}\n}\ntable inet xennet {\n\tmap from_guest {\n\t\ttype ifname : verdict\n\t\telements = { "vif1.0" : jump XN-O-vif1.0 }\n\t}\n\tchain XN-O-vif1.0 {\n\t}\n}\n`);
    assert.deepEqual([...live.chains.keys()].filter((c) => c.includes(':')).sort(), ['bridge:XN-E-vif1.0', 'bridge:set mine', 'inet:XN-O-vif1.0', 'inet:map from_guest']);
    assert.ok(!live.chains.has('bridge:set guests'), 'a set xennet declares is its own');
    const plan = diffTable(live, desired, 'nftables');
    const lines = renderNft(plan).split('\n');
    const at = (l: string): number => {
      const i = lines.indexOf(l);
      assert.ok(i >= 0, `${l}:\n${lines.join('\n')}`);
      return i;
    };
    const strays = at('# part strays');
    assert.ok(at('flush chain inet xennet XN-O-vif1.0') > strays && at('flush chain bridge xennet XN-E-vif1.0') > strays);
    assert.ok(at('delete map inet xennet from_guest') > at('flush chain inet xennet XN-O-vif1.0'));
    assert.ok(at('delete set bridge xennet mine') > strays);
    assert.ok(at('delete chain inet xennet XN-O-vif1.0') > at('delete map inet xennet from_guest'));
    assert.ok(at('delete chain bridge xennet XN-E-vif1.0') > strays);
    assert.equal(lines.slice(strays + 1).filter((l) => l.startsWith('#')).length, 0, 'the last part');
    // Emptied before any other part: a stray map's jumps would keep a guest's chain that goes from going.
    const emptied = at('flush map inet xennet from_guest');
    assert.ok(at('flush set bridge xennet mine') < strays);
    assert.ok(lines.slice(0, emptied).every((l) => !l.startsWith('# part ') || l === '# part strays emptied'), lines.slice(0, emptied).join('\n'));
    // The native writer takes every line of it.
    assert.ok(scriptMessages(renderNft(plan)).some((m) => m.what === 'delete map inet xennet from_guest'));
  });

  it('a dormant table (its base chains hook nothing) shows in its base chains, and apply\'s script wakes it', () => {
    const desired = compile([vif('vif1.0')], NFT).nftables;
    const listing = (flags: string): string => `table bridge xennet {\n${flags}\tchain XN-PRE {\n\t\t${desired.chains.get('XN-PRE')![0]}\n${desired.chains.get('XN-PRE')!.slice(1).map((r) => `\t\t${r} comment "${ruleTag(r)}"\n`).join('')}\t}\n}\n`;
    const awake = parseNftList(listing(''));
    assert.deepEqual(dormantTables(awake), []);
    assert.ok(!diffTable(awake, desired, 'nftables').write.has('XN-PRE'), 'control: an awake table\'s XN-PRE is as desired');
    const asleep = parseNftList(listing('\tflags dormant\n'));
    assert.deepEqual(dormantTables(asleep), ['bridge']);
    assert.ok(asleep.chains.get('XN-PRE')![0]!.endsWith(DORMANT));
    const plan = diffTable(asleep, desired, 'nftables');
    assert.ok(plan.write.has('XN-PRE'));
    assert.deepEqual(plan.wake, ['bridge']);
    const lines = renderNft(plan).split('\n');
    assert.ok(lines.includes('add table bridge xennet'), 'add table without flags: the kernel wakes the table');
    assert.ok(lines.includes('flush chain bridge xennet XN-PRE') && !lines.some((l) => /^(delete|add) chain bridge xennet XN-PRE \{?/.test(l) && l !== 'add chain bridge xennet XN-PRE'), 'refilled in place: no base chain is added in the transaction that wakes its table');
  });

  it('a full reconcile adopts a guest with chains of its own, never a bare dispatch entry someone added', () => {
    const live = parseNftList(`table bridge xennet {
\tmap from_guest {
\t\ttype ifname : verdict
\t\telements = { "eth0" : jump XN-O-vif9.0, "vif9.0" : jump XN-O-vif9.0 }
\t}
\tchain XN-O-vif9.0 {
\t\tcounter drop
\t}
}
`);
    const adopted: Record<string, IndexEntry> = {};
    const desired = reconciledTable(live, 'nftables', {}, () => undefined, new Set(), adopted, undefined, NFT);
    assert.deepEqual(Object.keys(adopted), ['vif9.0']);
    assert.ok(!desired.chains.has('XN-E-eth0'));
    assert.ok(diffTable(live, desired, 'nftables').remove.includes('XN-E-eth0'), 'the stray entry goes');
  });

  it('a full reconcile leaves out a recorded guest with no chains, recorded or live (a damaged or forged record): its dispatch would name chains the kernel does not have', () => {
    const entry: IndexEntry = { bridge: ifn('xenbr0'), inbound: false, isolated: false, state: 'installed' };
    const real = compileVif(vif('vif1.0'), NFT);
    const desired = reconciledTable(parseNftList(''), 'nftables', { 'vif1.0': entry, 'vif998.0': entry }, (n) => (n === 'vif1.0' ? real : undefined), new Set(), {}, undefined, NFT);
    assert.ok(desired.chains.has('XN-E-vif1.0') && desired.chains.has('XN-O-vif1.0'), 'the control: a recorded guest with its chains');
    assert.ok(![...desired.chains.keys()].some((c) => c.includes('vif998.0')), [...desired.chains.keys()].join(' '));
    // The script of it is one the kernel takes: no element jumps to a chain it does not write.
    const script = renderNft(diffTable(parseNftList(''), desired, 'nftables'));
    for (const m of script.matchAll(/jump (XN-[A-Z0-9]+-\S+) \}/g)) assert.ok(script.includes(`add chain bridge xennet ${m[1]}`), m[1]);
  });

  it('a guest\'s frames are dispatched by ethertype first: IPv4 never walks ARP or IPv6 rules, IPv6 never IPv4 or ARP rules, ARP neither', () => {
    const v = vif('vif5.0', { outbound: 'drop', allowOut: [{ proto: 'tcp', ports: [443] }], logDrops: true });
    const chains = compileVif(v, NFT).nftables.chains;
    const o = chains.get('XN-O-vif5.0')!;
    const gotoAt = (type: string): number => o.indexOf(`ether type ${type} goto XN-O${type === 'ip' ? '4' : '6'}-vif5.0`);
    assert.ok(gotoAt('ip') >= 0 && gotoAt('ip6') >= 0, o.join('\n'));
    // Before the dispatch only what every frame must pass: its MAC and its ethertype.
    assert.deepEqual(o.slice(0, Math.min(gotoAt('ip'), gotoAt('ip6'))).map((r) => r.split(' ')[0]), ['ether', 'ether']);
    // After it, what IPv4 and IPv6 never reach: ARP (and the end of a guest that checks every source it may carry).
    for (const r of o.slice(Math.max(gotoAt('ip'), gotoAt('ip6')) + 1)) assert.match(r, /^(arp |accept$)/, r);
    const ip6 = /\b(ip6|icmpv6|frag nexthdr|nd-)|\b54[67]\b/;
    for (const r of chains.get('XN-O4-vif5.0')!) assert.ok(!/^arp /.test(r) && !ip6.test(r), `XN-O4: ${r}`);
    for (const r of chains.get('XN-O6-vif5.0')!) assert.ok(!/^arp /.test(r) && !/\bip (saddr|daddr|frag-off)|ether type ip |udp dport 68|udp dport 67/.test(r), `XN-O6: ${r}`);
    // Each ends in the outbound verdict (goto: the end of the guest's checks).
    for (const c of ['XN-O4-vif5.0', 'XN-O6-vif5.0']) assert.equal(chains.get(c)!.at(-1), 'counter drop', c);
  });

  it('a guest whose chains check every source it may carry accepts what passes them, before the identity guard; any other guest\'s chains return to it', () => {
    const chainsOf = (v: ResolvedVif): Map<string, string[]> => compileVif(v, NFT).nftables.chains;
    const ends = (v: ResolvedVif): (string | undefined)[] => ['O', 'O4', 'O6'].map((k) => chainsOf(v).get(`XN-${k}-${v.name}`)?.at(-1));
    assert.deepEqual(ends(vif('vif5.0')), ['accept', 'accept', 'accept'], 'MAC, ARP, IPv4 and IPv6 sources checked, host addresses only');
    // Its allowed outbound traffic is accepted there too; what is not allowed is dropped.
    const strictOut = chainsOf(vif('vif5.0', { outbound: 'drop', allowOut: [{ proto: 'tcp', ports: [443] }] }));
    const o4 = strictOut.get('XN-O4-vif5.0')!;
    assert.ok(o4.includes('tcp dport 443 accept') && o4.at(-1) === 'counter drop' && !o4.includes('accept'), o4.join('\n'));
    assert.equal(strictOut.get('XN-O-vif5.0')!.at(-1), 'accept');
    // Any hole in its checks: its chains return, and XN-PRE's guard sees its frames.
    const open: [string, ResolvedVif][] = [
      ['a prefix (others\' addresses inside it)', vif('vif5.0', { ipv4: [cidr('192.168.0.0/24')] })],
      ['MAC anti-spoofing off', vif('vif5.0', { antispoof: { mac: false, arp: true, ipv4: true, ipv6: true } })],
      ['ARP anti-spoofing off', vif('vif5.0', { antispoof: { mac: true, arp: false, ipv4: true, ipv6: true } })],
      ['IPv4 anti-spoofing off', vif('vif5.0', { antispoof: { mac: true, arp: true, ipv4: false, ipv6: true } })],
      ['IPv6 anti-spoofing off', vif('vif5.0', { antispoof: { mac: true, arp: true, ipv4: true, ipv6: false } })],
      ['no MAC', vif('vif5.0', { mac: undefined })],
      ['no address declared (learning)', { ...vif('vif5.0', { ipv4: [], ipv6: [] }), learning: true }],
      ['tagged frames allowed (the IP inside is not checked)', vif('vif5.0', { ethertypes: [0x8100] })],
      // Its keys not claimed: another guest may claim the same ones, and only the guard tells them apart.
      ['identity_guard: false', vif('vif5.0', { identityGuard: false })],
      ['a live migration in flight', vif('vif5.0', { elsewhere: true })],
    ];
    for (const [why, v] of open) {
      const chains = chainsOf(v);
      assert.ok([...chains.values()].every((rules) => !rules.some((r) => /(^|\s)accept$/.test(r))), `${why}: no accept\n${[...chains].join('\n')}`);
    }
    // XN-PRE: the guests' chains first, then the guard (for the uplink's frames and the others').
    const pre = compile([vif('vif5.0'), vif('vif6.0', { mac: mac('00:16:3e:00:00:06'), ipv4: [cidr('192.168.0.0/24')], ipv6: [] })], NFT).nftables.chains.get('XN-PRE')!;
    const at = (re: RegExp): number => pre.findIndex((r) => re.test(r));
    assert.ok(at(/^iifname vmap @from_guest$/) > 0 && at(/^iifname vmap @from_guest$/) < at(/@id_mac /), pre.join('\n'));
  });

  it('an IPv4 packet that is not DHCP (UDP port 68 neither way) passes two rules before its source check, not the DHCP checks: those are in XN-D4, which only port 68 enters', () => {
    const guests: ResolvedVif[] = [vif('vif5.0'), vif('vif5.0', { outbound: 'drop', allowOut: [{ proto: 'tcp', ports: [443] }] })];
    for (const g of guests) {
      const chains: Map<string, string[]> = compileVif(g, NFT).nftables.chains;
      const o4: string[] = chains.get('XN-O4-vif5.0')!;
      assert.deepEqual(o4.slice(0, 3), ['udp dport 68 jump XN-D4-vif5.0', 'udp sport 68 jump XN-D4-vif5.0', 'jump XN-S-vif5.0'], o4.join('\n'));
      const d4 = chains.get('XN-D4-vif5.0')!;
      assert.ok(d4.length >= 4 && d4.every((r) => /udp (sport|dport) 68\b/.test(r)), d4.join('\n'));
      assert.ok(d4.some((r) => /udp dport 68 counter drop$/.test(r)) && d4.some((r) => /udp sport 68 udp dport 67 .* counter drop$/.test(r)), 'the DHCP server guard and the client check');
      // The chain comes before the rules naming it (an nft script names only what it made).
      const order = [...chains.keys()];
      assert.ok(order.indexOf('XN-D4-vif5.0') < order.indexOf('XN-O4-vif5.0'), order.join(' '));
    }
    // A DHCP server guest whose client messages are not checked has no such chain.
    const relay: Map<string, string[]> = compileVif(vif('vif9.0', { dhcpServer: true }), NFT).nftables.chains;
    assert.equal(relay.has('XN-D4-vif9.0'), false);
    assert.ok(!relay.get('XN-O4-vif9.0')!.some((r) => r.includes('XN-D4')));
  });

  it('a one-port range is the port on both backends; a guest allowed to send 802.1Q gets VLAN 0 dropped and a warning', () => {
    const v = vif('vif5.0', { outbound: 'drop', allowOut: [{ proto: 'tcp', ports: [443, '80-80'] }], ethertypes: [0x8100] });
    assert.ok(compileVif(v).ipv4.chains.get('XN-O-vif5.0')!.includes('-p tcp -m multiport --dports 443,80 -j RETURN'));
    const chains = compileVif(v, NFT).nftables.chains;
    for (const c of ['XN-O4-vif5.0', 'XN-O6-vif5.0']) assert.ok(chains.get(c)!.includes('tcp dport { 80, 443 } return'), c);
    assert.ok(chains.get('XN-O-vif5.0')!.includes('vlan id 0 counter drop'));
    assert.match(nftWarnings(v).join(), /allow_ethertypes lets 8021q frames out: on the nftables backend the IP inside them is not checked/);
    assert.deepEqual(nftWarnings(vif('vif6.0')), []);
  });

  it('the backend: the rule file wins over XENNET_BACKEND; a bad value is a usage error; else the installed one, without probing', async () => {
    assert.equal(namedKind(undefined, {}), undefined);
    assert.equal(namedKind(undefined, { XENNET_BACKEND: '' }), undefined);
    assert.equal(namedKind(undefined, { XENNET_BACKEND: 'nftables' }), 'nftables');
    assert.equal(namedKind({ backend: 'xtables' }, { XENNET_BACKEND: 'nftables' }), 'xtables');
    assert.throws(() => namedKind(undefined, { XENNET_BACKEND: 'pf' }), (e: unknown) => e instanceof XennetError && e.code === 'usage');
    const entry = { chains: [] } as unknown as IndexEntry;
    const loaded = (engine: Engine | undefined, vifs: Record<string, IndexEntry> = {}, recovered = false) => ({ index: { ...emptyIndex(), ...(engine ? { engine } : {}), vifs }, recovered });
    assert.equal(recordedKind(loaded(XTABLES)), 'xtables');
    assert.equal(recordedKind(loaded(NFT)), 'nftables');
    assert.equal(recordedKind(loaded(undefined, { 'vif1.0': entry })), 'xtables', 'a record from before the nftables backend');
    assert.equal(recordedKind(loaded(undefined)), undefined);
    assert.equal(recordedKind(loaded(XTABLES, {}, true)), undefined, 'a record that cannot say');
    // After a reboot the record says nothing is installed, but which backend the host was on.
    const dir = mkdtempSync(join(tmpdir(), 'xnt-index-'));
    try {
      const env = { XENNET_STATE_DIR: dir };
      const file = join(dirOf(env), 'index.json');
      mkdirSync(dirOf(env));
      for (const [engine, vifs, want] of [
        [XTABLES, {}, 'xtables'],
        [NFT, {}, 'nftables'],
        [undefined, { 'vif1.0': {} }, 'xtables'],
        [undefined, {}, undefined],
      ] as const) {
        writeFileSync(file, JSON.stringify({ version: 2, bootId: 'an-earlier-boot', dirty: false, vifs, ...(engine ? { engine } : {}) }));
        const earlier = loadIndex(env, silentLogger);
        assert.equal(earlier.recovered, true);
        assert.equal(recordedKind(earlier), want, JSON.stringify(engine ?? vifs));
      }
      // This boot's record with an entry that does not parse: what is installed is read again,
      // but the backend it names still holds.
      writeFileSync(file, JSON.stringify({ version: 2, bootId: currentBootId(), dirty: false, vifs: { 'bad name with spaces': {} }, engine: XTABLES }));
      const damaged = loadIndex(env, silentLogger);
      assert.equal(damaged.recovered, true);
      assert.equal(recordedKind(damaged), 'xtables', 'a damaged record still names its backend');
      writeFileSync(file, '{ not json');
      assert.equal(recordedKind(loadIndex(env, silentLogger)), undefined, 'an unreadable record says nothing');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // A host installed on xtables keeps it while nothing names another (no probe is made).
    assert.equal(await selectedKind(undefined, {}, loaded(XTABLES)), 'xtables');
    assert.equal(await selectedKind(undefined, { XENNET_BACKEND: 'nftables' }, loaded(XTABLES)), 'nftables');
    assert.equal(await selectedKind({ backend: 'xtables' }, {}, loaded(NFT)), 'xtables');
  });

  it('tells which other rules may set the established mark bit', () => {
    assert.equal(nftMarkBitsWritten('meta mark set 0x00000001'), 0xffffffff);
    assert.equal(nftMarkBitsWritten('meta mark set meta mark & 0xffffff00 | 0x00000001') & 0x400000, 0);
    assert.notEqual(nftMarkBitsWritten('meta mark set meta mark | 0x00400000 accept') & 0x400000, 0);
    assert.notEqual(nftMarkBitsWritten('meta mark set ct mark') & 0x400000, 0);
    assert.equal(nftMarkBitsWritten('ip saddr 10.0.0.1 accept'), 0);
  });
});

describe('nftables read natively (pure): kernel objects to the tables nft would print', () => {
  const ifname = (s: string): Buffer => Buffer.concat([Buffer.from(s), Buffer.alloc(16 - s.length)]);
  /** A rule as the kernel dumps one xennet wrote: its tag, and the digest of its expressions (`exprsOf`: other expressions, as a rule replaced keeping both). */
  const rule = (chain: string, text: string | undefined, counter?: { packets: number; bytes: number }, exprsOf: string | undefined = text) => {
    const exprs = exprsOf === undefined ? undefined : ruleExpressionBytes(exprsOf);
    const digest = text === undefined ? undefined : exprDigest(ruleExpressionBytes(text));
    const comment = text === undefined ? undefined : Buffer.from(`${ruleTag(text)}\0`);
    const userdata = comment && digest ? Buffer.concat([Buffer.from([0, comment.length]), comment, Buffer.from([DIGEST_UDATA, digest.length]), digest]) : undefined;
    return { table: 'xennet', chain, handle: 1n, expressions: 1, ...(exprs ? { exprs } : {}), ...(text !== undefined ? { comment: ruleTag(text) } : {}), ...(userdata ? { userdata } : {}), ...(counter ? { counter } : {}) };
  };
  const pre = { family: 7, table: 'xennet', name: 'XN-PRE', handle: 1n, hook: { num: 0, priority: -310 }, policy: 1, type: 'filter' };
  const read = (rules: ReturnType<typeof rule>[], elements: [string, NftElementObject[]][] = [], chains = [pre, { family: 7, table: 'xennet', name: 'XN-O-vif1.0', handle: 2n }]) => ({ tables: { bridge: { chains, rules }, inet: undefined }, elements: new Map(elements) });
  const known = knownRules([['iifname vmap @from_guest', 'ether saddr != 00:16:3e:00:00:01 counter drop']]);

  it('rules by their tags, counters, base chains\' hook lines, dispatch and claim elements per port', () => {
    const live = liveFromNative(
      read([rule('XN-PRE', 'iifname vmap @from_guest'), rule('XN-O-vif1.0', 'ether saddr != 00:16:3e:00:00:01 counter drop', { packets: 4, bytes: 9 })], [
        ['from_guest', [{ key: ifname('vif1.0'), flags: 0, verdict: { code: -3, chain: 'XN-O-vif1.0' } }]],
        ['guests', [{ key: ifname('vif1.0'), flags: 0 }]],
        ['id_mac_port', [{ key: Buffer.concat([Buffer.from([0, 0x16, 0x3e, 0, 0, 1, 0, 0]), ifname('vif1.0')]), flags: 0 }]],
        ['id_ip6_port', [{ key: Buffer.concat([Buffer.from('20010db8000000000000000000000005', 'hex'), ifname('vif1.0')]), flags: 0 }]],
        ['id_mac', [{ key: Buffer.from([0, 0x16, 0x3e, 0, 0, 1]), flags: 0, counter: { packets: 2, bytes: 3 } }]],
        ['id_na', [{ key: Buffer.from('20010db8000000000000000000000005', 'hex'), flags: 0 }]],
      ]),
      known,
    )!;
    assert.ok(live);
    assert.deepEqual(live.chains.get('XN-PRE'), ['type filter hook prerouting priority dstnat - 10; policy accept;', 'iifname vmap @from_guest']);
    assert.deepEqual(live.counters.get('XN-O-vif1.0'), [{ packets: 4, bytes: 9 }]);
    assert.deepEqual(live.chains.get('XN-E-vif1.0'), ['@from_guest "vif1.0" : jump XN-O-vif1.0', '@guests "vif1.0"', '@id_mac_port 00:16:3e:00:00:01 . "vif1.0"', '@id_ip6_port 2001:db8::5 . "vif1.0"']);
    assert.deepEqual(live.chains.get('XN-CLAIMS'), ['@id_mac 00:16:3e:00:00:01', '@id_na 0x20010db8000000000000000000000005']);
    assert.deepEqual(live.counters.get('XN-CLAIMS'), [{ packets: 2, bytes: 3 }, { packets: 0, bytes: 0 }]);
    assert.equal(live.policies.get('table bridge'), 'present');
    assert.equal(live.policies.get('table inet'), undefined);
  });

  it('anything not as xennet writes it is left to nft: an unknown or missing tag, expressions not as written, a base chain moved, a hook on a guest chain, a map element that is no jump, a key that is no name', () => {
    assert.equal(liveFromNative(read([rule('XN-PRE', 'iifname vmap @from_guest'), rule('XN-O-vif1.0', 'accept')]), known), undefined, 'a tag not known');
    assert.equal(liveFromNative(read([rule('XN-PRE', undefined)]), known), undefined, 'no tag');
    assert.equal(liveFromNative(read([rule('XN-PRE', 'iifname vmap @from_guest', undefined, 'iifname vmap @to_guest')]), known), undefined, 'its expressions are not the ones written with its digest');
    const { userdata: _, ...noDigest } = rule('XN-PRE', 'iifname vmap @from_guest');
    const commentOnly = Buffer.from(`${ruleTag('iifname vmap @from_guest')}\0`);
    assert.equal(liveFromNative(read([{ ...noDigest, userdata: Buffer.concat([Buffer.from([0, commentOnly.length]), commentOnly]) }]), known), undefined, 'no digest (written by nft, or before the digests)');
    assert.ok(liveFromNative(read([rule('XN-PRE', 'iifname vmap @from_guest')]), known), 'the control: with its digest');
    const inet = (rules: ReturnType<typeof rule>[]) => ({ ...read([]), tables: { bridge: read([]).tables.bridge, inet: { chains: [{ family: 1, table: 'xennet', name: 'XN-O-vif1.0', handle: 9n }], rules } } });
    const misplaced = liveFromNative(inet([rule('XN-O-vif1.0', 'ether saddr != 00:16:3e:00:00:01 counter drop')]), known);
    assert.deepEqual([misplaced?.chains.get('XN-O-vif1.0'), misplaced?.chains.get('inet:XN-O-vif1.0')], [[], ['ether saddr != 00:16:3e:00:00:01 counter drop']], 'a rule in an inet chain called like a guest\'s bridge chain is not the guest\'s');
    assert.equal(liveFromNative(read([], [], [{ ...pre, hook: { num: 0, priority: -300 } }]), known), undefined, 'priority');
    assert.equal(liveFromNative(read([], [], [{ ...pre, policy: 0 }]), known), undefined, 'policy drop');
    assert.equal(liveFromNative(read([], [], [{ family: 7, table: 'xennet', name: 'XN-O-vif1.0', handle: 2n, hook: { num: 0, priority: 0 }, policy: 1, type: 'filter' }]), known), undefined, 'a guest chain made a base chain');
    assert.equal(liveFromNative(read([], [['from_guest', [{ key: ifname('vif1.0'), flags: 0, verdict: { code: 1 } }]]]), known), undefined, 'accept in a dispatch map');
    assert.equal(liveFromNative(read([], [['guests', [{ key: Buffer.from('vif"1\0\0\0\0\0\0\0\0\0\0\0'), flags: 0 }]]]), known), undefined, 'a quote in a name');
    assert.ok(liveFromNative(read([]), known), 'the control');
  });

  it('named sets xennet does not declare, as the kernel lists them, are strays as nft\'s reading has them', () => {
    const live = liveFromNative({ ...read([]), setNames: { bridge: [{ name: 'guests', map: false }, { name: 'mine', map: false }, { name: 'jumps', map: true }], inet: [] } }, known)!;
    assert.deepEqual([...live.chains.keys()].filter((c) => c.includes(':')), ['bridge:set mine', 'bridge:map jumps']);
    assert.deepEqual(live.counters.get('bridge:set mine'), []);
  });

  it('a chain in the other family\'s table under a name of the first (an empty inet XN-O-vif1.0) is keyed with its family, as nft\'s reading keys it: it does not stand for the guest\'s chain', () => {
    const chains = [pre, { family: 7, table: 'xennet', name: 'XN-O-vif1.0', handle: 2n }];
    const both = { tables: { bridge: { chains, rules: [rule('XN-O-vif1.0', 'ether saddr != 00:16:3e:00:00:01 counter drop')] }, inet: { chains: [{ family: 1, table: 'xennet', name: 'XN-O-vif1.0', handle: 9n }], rules: [] } }, elements: new Map() };
    const live = liveFromNative(both, known)!;
    assert.ok(live);
    assert.deepEqual(live.chains.get('XN-O-vif1.0'), ['ether saddr != 00:16:3e:00:00:01 counter drop']);
    assert.deepEqual(live.chains.get('inet:XN-O-vif1.0'), []);
    const text = parseNftList(`table bridge xennet {\n\tchain XN-O-vif1.0 {\n\t\tether saddr != 00:16:3e:00:00:01 counter packets 0 bytes 0 drop comment "${ruleTag('ether saddr != 00:16:3e:00:00:01 counter drop')}"\n\t}\n}\ntable inet xennet {\n\tchain XN-O-vif1.0 {\n\t}\n}\n`);
    assert.deepEqual([...text.chains].sort(), [...live.chains].filter(([c]) => c !== 'XN-PRE').sort());
  });

  it('the constant sets\' elements as XN-CONST, the same whether nft printed them (names from its tables and /etc/protocols) or the kernel holds them', () => {
    const printed = parseNftList(`table bridge xennet {
\tset ip_types {
\t\ttype ether_type
\t\telements = { ip,
\t\t\t     ip6 }
\t}
\tset ipv6_exthdrs {
\t\ttype inet_proto
\t\telements = { ip, ipv6-route, ipv6-frag, ipv6-opts, mobility-header }
\t}
\tset tagged_types {
\t\ttype ether_type
\t\telements = { 8021q,
\t\t\t     0x8864,
\t\t\t     8021ad }
\t}
}
`);
    assert.deepEqual(printed.chains.get(CHAIN_CONST), constSetLines(), 'as nft prints what xennet writes');
    const native = liveFromNative(read([], [['ip_types', [{ key: Buffer.from([0x86, 0xdd]), flags: 0 }, { key: Buffer.from([0x08, 0x00]), flags: 0 }]], ['ipv6_exthdrs', [0, 43, 44, 60, 135].map((n) => ({ key: Buffer.from([n]), flags: 0 }))], ['tagged_types', [0x8100, 0x88a8, 0x8864].map((n) => ({ key: Buffer.from([n >> 8, n & 255]), flags: 0 }))]]), known)!;
    assert.deepEqual(native.chains.get(CHAIN_CONST), constSetLines(), 'as the kernel holds it');
    // One element gone, one added: differs, and the plan writes the sets exactly.
    const damaged = parseNftList('table bridge xennet {\n\tset ip_types {\n\t\ttype ether_type\n\t\telements = { ip6, arp }\n\t}\n}\n');
    assert.deepEqual(damaged.chains.get(CHAIN_CONST), ['@ip_types 0x0806', '@ip_types 0x86dd']);
    const desired = compile([vif('vif1.0')], NFT).nftables;
    const plan = diffTable(damaged, desired, 'nftables');
    assert.deepEqual(plan.write.get(CHAIN_CONST), constSetLines());
    const script = renderNft(plan).split('\n');
    const flush = script.indexOf('flush set bridge xennet ip_types');
    assert.ok(flush > 0 && script[flush + 1] === 'add element bridge xennet ip_types { 0x0800, 0x86dd }', script.join('\n'));
    assert.ok(!script.some((l) => /add element bridge xennet ip_types \{ 0x0800 \}$/.test(l)), 'no element line of its own');
    assert.equal(liveFromNative(read([], [['ip_types', [{ key: Buffer.from([8, 0, 1]), flags: 0 }]]]), known), undefined, 'a key of another width is left to nft');
  });

  it('keys as nft prints them: concatenations padded to 4 bytes, a lone MAC not', () => {
    assert.equal(keyText(['ipv4', 'ifname'], Buffer.concat([Buffer.from([192, 168, 0, 5]), ifname('vif1.0')])), '192.168.0.5 . "vif1.0"');
    assert.equal(keyText(['ether'], Buffer.from([0, 0x16, 0x3e, 0, 0, 1])), '00:16:3e:00:00:01');
    assert.equal(keyText(['ether', 'ifname'], Buffer.concat([Buffer.from([0, 0x16, 0x3e, 0, 0, 1]), ifname('vif1.0')])), undefined, 'unpadded in a concatenation');
    assert.equal(keyText(['raw128'], Buffer.from('00000000000000000000000000000001', 'hex')), '0x1');
  });
});
