/** Drops by reason: every drop rule of a guest's says why, on both backends; counters carried over a rewrite. */
import assert from 'node:assert/strict';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileVif } from '../../src/firewall/compile.js';
import { carryDropCounters } from '../../src/firewall/counter-carry.js';
import { diffTable } from '../../src/firewall/diff.js';
import { DROP_REASONS, dropsText, type DropReason } from '../../src/firewall/drop-reasons.js';
import { codecOf } from '../../src/firewall/drivers.js';
import { emptyLive, type LiveTable } from '../../src/firewall/live.js';
import { tableNames, XTABLES, type Engine, type ResolvedVif, type TableName } from '../../src/firewall/model.js';
import { parseNftRule } from '../../src/firewall/nftables/native/rule-parse.js';
import { ruleExpressionBytes, scriptMessages } from '../../src/firewall/nftables/native/script.js';
import { exprsWithCounter } from '../../src/firewall/nftables/backend.js';
import { restorePresets } from '../../src/firewall/xtables/backend.js';
import { countersOfRecorded } from '../../src/firewall/counter-match.js';
import { domainWord, dropPrefix, LineCap, parseDropPrefix, summarizePacket, summaryText, type DropEvent } from '../../src/firewall/drop-log.js';
import { DropWatch, RECENT, RECENT_PER_VIF, domidOfVif } from '../../src/daemon/drop-watch.js';
import type { Logger } from '../../src/sys/log.js';
import { dropLine, dropsOf, jsonLine } from '../../src/cli/commands/drops.js';
import { pipeOrphaned } from '../../src/sys/pipe-peer.js';
import { run, start } from '../../src/sys/exec.js';
import { renderNft } from '../../src/firewall/nftables/script.js';
import { renderRestore } from '../../src/firewall/xtables/tables.js';
import { parsePolicy } from '../../src/config/load.js';
import { resolveVif } from '../../src/firewall/resolve.js';
import { cidr, ifn, mac } from './lib/values.js';

const NFT: Engine = { kind: 'nftables', conntrack: 'bridge' };
const dropsHere = (rule: string): boolean => /(^|\s)(-j DROP|drop)$/.test(rule);

/** Guests that between them have every kind of drop rule. */
function guests(): ResolvedVif[] {
  const policy = parsePolicy(
    [
      'version: 1',
      'guests:',
      '  web01: { inbound: drop, outbound: drop, allow_in: [{ proto: tcp, ports: [80] }], allow_out: [{ proto: udp, ports: [53] }] }',
      '  tagged: { allow_ethertypes: [0x8100, 0x88a8] }',
      '  nomac: { antispoof: { mac: false } }',
      '  dyn: {}',
      '',
    ].join('\n'),
    'x.yaml',
  );
  const facts = (name: string, domain: string, m: string, declared: boolean): Parameters<typeof resolveVif>[1] => ({ name: ifn(name), bridge: ifn('xenbr0'), mac: mac(m), domain: domain as never, ipv4: declared ? [cidr('192.168.0.5')] : [], ipv6: declared ? [cidr('2001:db8::5')] : [] });
  return [resolveVif(policy, facts('vif5.0', 'web01', '00:16:3e:00:00:05', true)), resolveVif(policy, facts('vif6.0', 'tagged', '00:16:3e:00:00:06', true)), resolveVif(policy, facts('vif7.0', 'nomac', '00:16:3e:00:00:07', true)), resolveVif(policy, facts('vif8.0', 'dyn', '00:16:3e:00:00:08', false))];
}

function reasonsOf(engine: Engine): Map<string, DropReason> {
  const out = new Map<string, DropReason>();
  for (const v of guests()) {
    const rs = compileVif(v, engine);
    for (const t of tableNames) {
      for (const [chain, rules] of rs[t].chains) {
        for (const rule of rules) {
          const reason = codecOf(t).dropReason(chain, rule);
          if (dropsHere(rule)) {
            assert.ok(reason !== undefined, `${t} ${chain}: a drop rule with no reason: ${rule}`);
            out.set(`${t} ${chain} ${rule}`, reason);
          } else assert.equal(reason, undefined, `${t} ${chain}: not a drop rule, yet a reason: ${rule}`);
        }
      }
    }
  }
  return out;
}

describe('drops by reason', () => {
  it('xtables: every drop rule of a guest has a reason, and every reason of its rules shows up', () => {
    const reasons = reasonsOf(XTABLES);
    assert.deepEqual([...new Set(reasons.values())].sort(), (['mac', 'spoof4', 'spoof6', 'arp', 'ra', 'dhcps', 'dhcpc', 'na', 'ethertype', 'in', 'out'] as const).slice().sort());
    assert.equal(reasons.get('ebnat XN-E-vif5.0 -s ! 00:16:3e:00:00:05 -j DROP'), 'mac');
    assert.equal(reasons.get('ipv4 XN-S-vif5.0 -j DROP'), 'spoof4');
    assert.equal(reasons.get('ipv6 XN-S-vif5.0 -j DROP'), 'spoof6');
    assert.equal(reasons.get('ipv6 XN-O-vif5.0 -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP'), 'ra');
    assert.equal(reasons.get('ipv4 XN-O-vif5.0 -p udp -m udp --dport 68 -j DROP'), 'dhcps');
    assert.equal(reasons.get('ipv4 XN-O-vif5.0 -j DROP'), 'out');
    assert.equal(reasons.get('ipv4 XN-I-vif5.0 -j DROP'), 'in');
  });

  it('nftables: every drop rule of a guest has a reason, and every reason of its rules shows up', () => {
    const reasons = reasonsOf(NFT);
    assert.deepEqual([...new Set(reasons.values())].sort(), [...DROP_REASONS].sort());
    assert.equal(reasons.get('nftables XN-O-vif5.0 ether saddr != 00:16:3e:00:00:05 counter drop'), 'mac');
    assert.equal(reasons.get('nftables XN-S-vif5.0 ether type ip counter drop'), 'spoof4');
    assert.equal(reasons.get('nftables XN-S-vif5.0 ether type ip6 counter drop'), 'spoof6');
    assert.equal(reasons.get('nftables XN-O6-vif5.0 icmpv6 type nd-router-advert counter drop'), 'ra');
    assert.equal(reasons.get('nftables XN-D4-vif5.0 ether type ip udp dport 68 counter drop'), 'dhcps');
    assert.equal(reasons.get('nftables XN-I4-vif5.0 counter drop'), 'in');
    assert.equal(reasons.get('nftables XN-O4-vif5.0 counter drop'), 'out');
  });

  it('the log prefix of a source check names its family (the same word as the reason)', () => {
    const [web] = guests();
    const x = compileVif(web!, XTABLES);
    assert.ok(x.ipv4.chains.get('XN-S-vif5.0')!.some((r) => r.includes('"XN spoof4 vif5.0"')));
    assert.ok(x.ipv6.chains.get('XN-S-vif5.0')!.some((r) => r.includes('"XN spoof6 vif5.0"')));
    const n = compileVif(web!, NFT).nftables.chains.get('XN-S-vif5.0')!;
    assert.ok(n.some((r) => r.includes('"XN spoof4 vif5.0"')) && n.some((r) => r.includes('"XN spoof6 vif5.0"')));
  });

  it('in words, largest first', () => {
    assert.equal(dropsText({ in: { packets: 3, bytes: 1 }, spoof4: { packets: 12, bytes: 1 }, mac: { packets: 0, bytes: 0 } }), 'spoofed IPv4 source 12, inbound policy 3');
    assert.equal(dropsText({}), '');
  });
});

/** A live table holding these chains, with these counters on the rules at these indexes. */
function liveOf(chains: Map<string, string[]>, counted: Record<string, Record<number, number>>): LiveTable {
  const live = emptyLive();
  for (const [c, rules] of chains) {
    live.chains.set(c, rules);
    live.counters.set(c, rules.map((_r, i) => ({ packets: counted[c]?.[i] ?? 0, bytes: (counted[c]?.[i] ?? 0) * 100 })));
  }
  return live;
}

describe('drop counters carried over a rewrite', () => {
  const [web] = guests();

  it('xtables: a changed policy rewrites the chains; each reason starts from what its rules counted (iptables [p:b], ebtables -c)', () => {
    const before = compileVif({ ...web!, inbound: 'accept' }, XTABLES);
    const after = compileVif(web!, XTABLES);
    const s4 = before.ipv4.chains.get('XN-S-vif5.0')!;
    const plans = tableNames.map((t) => {
      const counted: Record<string, Record<number, number>> = t === 'ipv4' ? { 'XN-S-vif5.0': { [s4.length - 1]: 7 } } : t === 'ebnat' ? { 'XN-E-vif5.0': { 0: 3 } } : {};
      const live = liveOf(before[t].chains, counted);
      const plan = diffTable(live, after[t], t);
      // (A hook's repeated online writes every chain of its guest again.)
      for (const [c, rules] of after[t].chains) plan.write.set(c, rules);
      return { table: t, plan, live };
    });
    carryDropCounters(plans);
    const of = (t: TableName): (typeof plans)[number] => plans.find((p) => p.table === t)!;
    assert.deepEqual(of('ipv4').plan.presets?.get('XN-S-vif5.0'), new Map([[after.ipv4.chains.get('XN-S-vif5.0')!.length - 1, { packets: 7, bytes: 700 }]]));
    const v4 = renderRestore(of('ipv4').plan, 'ipv4');
    assert.match(v4, /^\[7:700\] -A XN-S-vif5\.0 -j DROP$/m);
    assert.equal(v4.match(/^\[/gm)?.length, 1, 'only the rules that counted something start from a counter');
    assert.match(renderRestore(of('ebnat').plan, 'ebnat'), /^-A XN-E-vif5\.0 -s ! 00:16:3e:00:00:05 -j DROP -c 3 300$/m);
    assert.equal(of('ipv6').plan.presets, undefined, 'nothing counted, nothing carried');
  });

  it('nftables: the rewritten rule starts from its counter (the tag stays the rule\'s own), and the native writer sends the values', () => {
    const rs = compileVif(web!, NFT);
    const chains = rs.nftables.chains;
    const s = chains.get('XN-S-vif5.0')!;
    const live = liveOf(chains, { 'XN-S-vif5.0': { [s.length - 1]: 9 } });
    const plan = diffTable(live, rs.nftables, 'nftables');
    for (const [c, rules] of chains) plan.write.set(c, rules);
    carryDropCounters([{ table: 'nftables', plan, live }]);
    const script = renderNft(plan);
    const line = script.split('\n').find((l) => l.includes('XN-S-vif5.0 ether type ip6 counter'))!;
    assert.match(line, /ether type ip6 counter packets 9 bytes 900 drop comment "xn:/);
    assert.ok(scriptMessages(script).length > 0);
    assert.deepEqual(parseNftRule('ether type ip6 counter packets 9 bytes 900 drop').exprs.find((e) => e.type === 'counter'), { type: 'counter', packets: 9n, bytes: 900n });
    assert.throws(() => parseNftRule('counter packets 9 drop'), /bytes/);
    assert.throws(() => parseNftRule('counter packets -1 bytes 2 drop'), /counter value/);
  });

  it('a backend switch carries each guest\'s drops from the tables it leaves to the ones it moves to', () => {
    const x = compileVif(web!, XTABLES);
    const n = compileVif(web!, NFT);
    const plans = tableNames.map((t) => {
      const live = t === 'nftables' ? emptyLive() : liveOf(x[t].chains, t === 'ipv6' ? { 'XN-S-vif5.0': { [x.ipv6.chains.get('XN-S-vif5.0')!.length - 1]: 4 }, 'XN-I-vif5.0': { [x.ipv6.chains.get('XN-I-vif5.0')!.length - 1]: 2 } } : t === 'ipv4' ? { 'XN-I-vif5.0': { [x.ipv4.chains.get('XN-I-vif5.0')!.length - 1]: 5 } } : {});
      return { table: t, plan: diffTable(live, t === 'nftables' ? n.nftables : { chains: new Map(), roots: [] }, t), live };
    });
    carryDropCounters(plans);
    const nft = plans.find((p) => p.table === 'nftables')!.plan;
    const presetOf = (chain: string, rule: string): unknown => nft.presets?.get(chain)?.get(n.nftables.chains.get(chain)!.indexOf(rule));
    assert.deepEqual(presetOf('XN-S-vif5.0', 'ether type ip6 counter drop'), { packets: 4, bytes: 400 });
    // Both families' inbound drops, on the first inbound drop rule written.
    assert.deepEqual(presetOf('XN-I4-vif5.0', 'counter drop'), { packets: 7, bytes: 700 });
  });
});

describe('counters a restore starts rules from', () => {
  it('read back from the restore text by chain and index (iptables [p:b] before, ebtables -c after)', () => {
    const text = '*filter\n:XN-S-v - [0:0]\n-A XN-S-v -s 10.0.0.1/32 -j RETURN\n[7:700] -A XN-S-v -j DROP\n[2:90] -A XN-O-v -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP\n-A XN-E-v -s ! 00:16:3e:00:00:05 -j DROP -c 3 300\n-I FORWARD 1 -j XN-FORWARD\nCOMMIT\n';
    assert.deepEqual(
      restorePresets(text),
      new Map([
        ['XN-S-v', new Map([[1, { counter: { packets: 7, bytes: 700 } }]])],
        ['XN-O-v', new Map([[0, { counter: { packets: 2, bytes: 90 }, compat: { proto: 58, invert: false } }]])],
        ['XN-E-v', new Map([[0, { counter: { packets: 3, bytes: 300 } }]])],
      ]),
    );
    assert.equal(restorePresets('*filter\n-A XN-S-v -j DROP\nCOMMIT\n'), undefined);
  });

  it('a rule replaced by itself: only its first counter expression changes', () => {
    const exprs = ruleExpressionBytes('ether type ip6 counter drop');
    const raised = exprsWithCounter(exprs, { packets: 9, bytes: 900 })!;
    assert.equal(raised.length, exprs.length);
    const differ = [...raised].filter((b, i) => b !== exprs[i]).length;
    assert.ok(differ > 0 && differ <= 4, `only the counter's values differ (${differ} bytes)`);
    const be = (n: number): Buffer => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(BigInt(n));
      return b;
    };
    assert.ok(raised.includes(Buffer.concat([be(900)])) && raised.includes(be(9)));
    assert.equal(exprsWithCounter(ruleExpressionBytes('ether type ip6 drop'), { packets: 1, bytes: 1 }), undefined, 'no counter, nothing to set');
  });
});

describe('which kernel rule a recorded rule is', () => {
  it('by text, in order: a rule someone inserted moves no count to another rule; a recorded rule the kernel lacks counts zero', () => {
    const recorded = ['-s 10.0.0.1/32 -j RETURN', '-j DROP'];
    const live = ['-s 10.9.9.9/32 -j RETURN', '-s 10.0.0.1/32 -j RETURN', '-j DROP'];
    const counters = [{ packets: 50, bytes: 5000 }, { packets: 8, bytes: 800 }, { packets: 3, bytes: 300 }];
    assert.deepEqual(countersOfRecorded(recorded, live, counters, 'iptables'), [{ packets: 8, bytes: 800 }, { packets: 3, bytes: 300 }]);
    assert.deepEqual(countersOfRecorded(['-j DROP', '-j DROP'], ['-j DROP'], [{ packets: 1, bytes: 1 }], 'iptables'), [{ packets: 1, bytes: 1 }, { packets: 0, bytes: 0 }]);
  });
});

describe('drops as the daemon logs them', () => {
  it('the prefix names a reason and an interface; anything else is no drop', () => {
    assert.equal(dropPrefix('spoof4', 'vif5.0'), 'XN spoof4 vif5.0');
    assert.deepEqual(parseDropPrefix('XN spoof4 vif5.0'), { reason: 'spoof4', vif: 'vif5.0' });
    for (const p of ['XN learn', 'XN defend', 'XN nosuch vif5.0', 'XN spoof4 vif5.0 x', 'XN spoof4 ', 'XN spoof4 ../etc']) assert.equal(parseDropPrefix(p), undefined, p);
    // The longest prefix fits iptables' NFLOG limit (64) and nft's.
    assert.ok(dropPrefix('ethertype', 'a'.repeat(15)).length <= 63);
  });

  it('a packet in a line: IPv4, IPv6 (zeros compressed), ARP, fragments, anything short or odd', () => {
    const v4 = Buffer.from('450000200000000040110000c0a800c8c0a800010fa00fa1000c0000', 'hex');
    assert.equal(summaryText(summarizePacket(0x0800, v4)), 'udp 192.168.0.200 -> 192.168.0.1 4000>4001');
    const frag = Buffer.from(v4);
    frag.writeUInt16BE(0x0010, 6);
    assert.equal(summaryText(summarizePacket(0x0800, frag)), 'udp 192.168.0.200 -> 192.168.0.1 fragment');
    const v6 = Buffer.alloc(48);
    v6[0] = 0x60;
    v6[6] = 58;
    Buffer.from('20010db8000000000000000000000999', 'hex').copy(v6, 8);
    Buffer.from('ff020000000000000000000000000001', 'hex').copy(v6, 24);
    v6[40] = 134;
    assert.equal(summaryText(summarizePacket(0x86dd, v6)), 'icmpv6 2001:db8::999 -> ff02::1 type 134');
    const arp = Buffer.from('0001080006040002' + '00163e000005' + 'c0a80069' + 'ffffffffffff' + 'c0a80001', 'hex');
    assert.equal(summaryText(summarizePacket(0x0806, arp)), 'arp 192.168.0.105 -> 192.168.0.1 reply');
    for (const [t, b] of [[0x0800, Buffer.alloc(3)], [0x86dd, Buffer.alloc(10)], [0x88b5, Buffer.alloc(0)], [0x0800, Buffer.alloc(20, 0xff)]] as const) assert.doesNotThrow(() => summaryText(summarizePacket(t, b)));
    assert.equal(summaryText(summarizePacket(0x88b5, Buffer.alloc(0))), 'ethertype 0x88b5');
    // A header length below 20 (the guest's own bytes) is no IPv4 header to read ports behind.
    const short = Buffer.from(v4);
    short[0] = 0x40;
    assert.equal(summaryText(summarizePacket(0x0800, short)), 'ethertype 0x0800');
    // ARP of another layout (hardware 6) does not put its addresses where Ethernet's does.
    const odd = Buffer.from(arp);
    odd.writeUInt16BE(6, 0);
    assert.equal(summaryText(summarizePacket(0x0806, odd)), 'ethertype 0x0806');
  });

  it('at most so many lines a second, and then how many were held back', () => {
    const cap = new LineCap(2);
    assert.deepEqual([cap.take(0), cap.take(10), cap.take(20), cap.take(30)], [true, true, false, false]);
    assert.equal(cap.suppressed(), 2);
    assert.equal(cap.suppressed(), 0);
    assert.equal(cap.take(1000), true, 'a new second');
  });

  it('the history keeps at most 100 of one interface: a guest flooding its own rules cannot push out the others\'', () => {
    const w = new DropWatch({ log: { debug: () => undefined, info: () => undefined, warning: () => undefined, err: () => undefined } as unknown as Logger, domainName: () => Promise.resolve(undefined) });
    const keep = (e: DropEvent): void => (w as unknown as { keep(e: DropEvent): void }).keep(e);
    let seq = 0;
    const ev = (vif: string): DropEvent => ({ seq: ++seq, at: 'x', vif, domid: null, domain: null, reason: 'in', packet: { protocol: 'udp' } });
    keep(ev('vif7.0'));
    for (let i = 0; i < 1000; i++) keep(ev('vif5.0'));
    const kept = w.since(0).drops;
    assert.equal(kept.filter((e) => e.vif === 'vif7.0').length, 1, 'the quiet guest\'s drop is kept');
    assert.equal(kept.filter((e) => e.vif === 'vif5.0').length, RECENT_PER_VIF);
    assert.equal(kept.at(-1)!.seq, seq, 'the newest are kept');
    for (let g = 0; g < 30; g++) for (let i = 0; i < 100; i++) keep(ev(`vif${100 + g}.0`));
    assert.equal(w.since(0).drops.length, RECENT, 'and at most RECENT in all');
  });

  it('an interface names its domain id, a renamed one through xennet\'s mark', () => {
    assert.equal(domidOfVif('vif12.0', undefined), 12);
    assert.equal(domidOfVif('vif12.0-emu', undefined), 12);
    assert.equal(domidOfVif('web01-e.0', 'xennet:vif7.0'), 7);
    assert.equal(domidOfVif('web01-e.0', undefined), undefined);
  });
});

describe('xennet drops --json', () => {
  it('escapes what a terminal could take for control in a hostile domain name (C1, line separators, bidi overrides)', () => {
    const line = jsonLine({ seq: 1, at: 'x', vif: 'vif5.0', domid: 5, domain: 'a\u009b2J\u2028\u202eb', reason: 'spoof4', packet: { protocol: 'udp' } });
    assert.ok(!/[\u0080-\u009f\u2028\u202e]/.test(line), line);
    assert.equal((JSON.parse(line) as { domain: string }).domain, 'a\u009b2J\u2028\u202eb');
  });
});

describe('xennet drops GUEST', () => {
  const drop = (vif: string, domid: number | null, domain: string | null): DropEvent => ({ seq: 1, at: 'x', vif, domid, domain, reason: 'spoof4', packet: { protocol: 'udp' } });
  it('a domain\'s drops are those of its interfaces now (its stub domain\'s, a copy migrating in) and those recorded under its name', () => {
    const web = dropsOf('web01', [
      { name: 'vif5.0', domid: 5, domain: 'web01' },
      { name: 'vif6.0-emu', domid: 6, domain: 'web01-dm' },
      { name: 'vif9.0', domid: 9, domain: 'web01--incoming' },
    ]);
    assert.ok(web(drop('vif5.0', 5, 'web01')));
    assert.ok(web(drop('vif6.0-emu', 6, 'web01-dm')), 'the stub domain\'s emulated NIC');
    assert.ok(web(drop('vif9.0', 9, 'web01--incoming')), 'recorded under the migration name');
    assert.ok(web(drop('vif3.0', 3, 'web01')), 'an earlier run of the guest, by its name');
    assert.ok(web(drop('web01-e.1', 5, 'web01')), 'another interface of the domain');
    assert.ok(!web(drop('vif7.0', 7, 'db01')));
    assert.ok(!web(drop('vif50.0', 50, 'web01x')));
  });

  it('an interface\'s name or a domain id found here is that one alone, not a domain that happens to bear the name (as status GUEST picks one)', () => {
    const byVif = dropsOf('vif5.0', [{ name: 'vif5.0', domid: 5, domain: 'web01' }]);
    assert.ok(byVif(drop('vif5.0', 5, 'web01')));
    assert.ok(!byVif(drop('vif8.0', 8, 'vif5.0')), 'a domain named vif5.0');
    assert.ok(!byVif(drop('vif5.1', 5, 'web01')), 'another interface of its domain');
    const byId = dropsOf('9', [{ name: 'vif9.0', domid: 9, domain: 'nine' }]);
    assert.ok(byId(drop('vif9.0', 9, 'nine')));
    assert.ok(!byId(drop('vif5.0', 5, '9')), 'a domain named 9');
  });

  it('nothing here: what was recorded under that name, domain id or interface name', () => {
    const gone = dropsOf('7', []);
    assert.ok(gone(drop('vif7.0', 7, 'db01')) && !gone(drop('vif70.0', 70, 'x')));
    assert.ok(dropsOf('vif7.0', [])(drop('vif7.0', 7, null)));
    assert.ok(dropsOf('db01', [])(drop('vif7.0', 7, 'db01')));
  });

  it('a domain name that could pose as another guest\'s line is quoted', () => {
    assert.equal(domainWord('web01'), 'web01');
    assert.equal(domainWord(null), '?');
    assert.equal(domainWord('web02 (vif6.0) spoof4'), '"web02 (vif6.0) spoof4"');
    assert.equal(domainWord('a\u001b[2Jb'), '"a\\u001b[2Jb"');
    assert.match(dropLine(drop('vif9.0', 9, 'web02 (vif6.0) spoof4 (spoofed IPv4 source): udp 6.6.6.6')), /^x "web02 \(vif6\.0\) spoof4 \(spoofed IPv4 source\): udp 6\.6\.6\.6" \(vif9\.0\) spoof4/);
  });
});

describe('a follower\'s reader', () => {
  it('a pipe whose reader has gone is seen as such; one with a reader, or a file, is not', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xnt-pipe-'));
    const fifo = join(dir, 'fifo');
    assert.equal((await run('mkfifo', [fifo])).code, 0);
    const reader = start('cat', [fifo]);
    reader.stdout?.resume();
    let w: number | undefined;
    try {
      const until = Date.now() + 10_000;
      // (O_NONBLOCK: fails with ENXIO until cat has opened its end.)
      while (w === undefined) {
        try {
          w = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
        } catch (e) {
          if (Date.now() > until) throw e;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      assert.equal(pipeOrphaned(w), false, 'cat holds its read end');
      const gone = new Promise((r) => reader.once('exit', r));
      reader.kill('SIGKILL');
      await gone;
      assert.equal(pipeOrphaned(w), true, 'nobody holds it but us');
      const file = openSync(join(dir, 'file'), 'w');
      try {
        assert.equal(pipeOrphaned(file), false, 'not a pipe');
      } finally {
        closeSync(file);
      }
    } finally {
      reader.kill('SIGKILL');
      if (w !== undefined) closeSync(w);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
