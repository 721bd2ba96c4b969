/**
 * nf_tables written natively (one nfnetlink transaction, no `nft`) is what `nft -f` makes of the
 * same script: for random rule files and hosts (fast-check), the script of a first apply and then
 * of a change is written by nft in one namespace and natively in another, and the two are alike
 * as `nft` lists them, as nft's netlink debug output shows the kernel's expressions, and in each
 * set's declaration as the kernel holds it; in both, every rule's expressions as the kernel dumps
 * them are what xennet's encoder makes of its text (attribute by attribute, its own sets' elements
 * included). Then the native reader finds nothing to change, and a transaction the kernel refuses
 * in its last message, or only checks, changes nothing.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { policySchema } from '../../src/config/schema.js';
import { compile } from '../../src/firewall/compile.js';
import { diffTable, isEmptyTablePlan, render } from '../../src/firewall/diff.js';
import { emptyLive, type LiveTable } from '../../src/firewall/live.js';
import { learnedScript } from '../../src/firewall/nftables/learned.js';
import { parseNftList } from '../../src/firewall/nftables/script.js';
import { ruleTag } from '../../src/firewall/nftables/tag.js';
import type { Binding } from '../../src/firewall/learning/bindings.js';
import type { Engine, VifFacts } from '../../src/firewall/model.js';
import { resolveVif } from '../../src/firewall/resolve.js';
import { parseCidr, parseGuestKey, parseIfName, parseMac } from '../../src/net/index.js';
import { createNetns, destroy, sweepLeftovers, type Netns } from './lib/netns.js';

const mainJs = fileURLToPath(new URL('./lib/nft-native-write-main.js', import.meta.url));

const ETHERTYPES = [0x8100, 0x88a8, 0x88cc, 0x8864];
const PORTS = [22, 53, 80, 443, '8000-8080', '1-1023'];
const CIDRS = ['10.0.0.0/8', '192.0.2.5', '198.51.100.0/24', '198.51.100.7', '2001:db8::/32', '2001:db8:1::5', 'fe80::/10'];

const ruleArb = fc.oneof(
  fc.record({ proto: fc.constantFrom('tcp', 'udp'), ports: fc.option(fc.subarray(PORTS, { minLength: 1 }), { nil: undefined }), cidrs: fc.option(fc.subarray(CIDRS, { minLength: 1 }), { nil: undefined }) }),
  fc.record({ proto: fc.constantFrom('icmp', 'icmpv6'), icmp_types: fc.option(fc.subarray([0, 8, 128, 129, 3], { minLength: 1 }), { nil: undefined }), cidrs: fc.option(fc.subarray(CIDRS, { minLength: 1 }), { nil: undefined }) }),
  fc.record({ proto: fc.constant('any'), cidrs: fc.option(fc.subarray(CIDRS, { minLength: 1 }), { nil: undefined }) }),
);

const guestArb = fc.record({
  antispoof: fc.oneof(fc.boolean(), fc.record({ mac: fc.boolean(), arp: fc.boolean(), ipv4: fc.boolean(), ipv6: fc.boolean() })),
  inbound: fc.constantFrom('accept', 'drop'),
  outbound: fc.constantFrom('accept', 'drop'),
  isolation: fc.boolean(),
  allow_ethertypes: fc.subarray(ETHERTYPES),
  router_advertisements: fc.boolean(),
  dhcp_server: fc.boolean(),
  log_drops: fc.boolean(),
  identity_guard: fc.boolean(),
  learn_addresses: fc.boolean(),
  allow_in: fc.array(ruleArb, { maxLength: 3 }),
  allow_out: fc.array(ruleArb, { maxLength: 3 }),
  ipv4: fc.subarray(['A', 'P']),
  ipv6: fc.subarray(['A', 'P']),
});
type GuestArb = typeof guestArb extends fc.Arbitrary<infer T> ? T : never;

/** A host: its guests (by domid) with their rule file entries and xenstore facts. */
const hostArb = fc.uniqueArray(fc.tuple(fc.integer({ min: 1, max: 12 }), guestArb), { minLength: 1, maxLength: 5, selector: ([d]) => d });

/** The host's rules compiled; `addressOf(d)` is the number in guest d's addresses (d itself unless swapped). */
function compiled(host: [number, GuestArb][], engine: Engine, addressOf: (d: number) => number = (d) => d) {
  const guests: Record<string, unknown> = {};
  const facts: VifFacts[] = [];
  for (const [d, g] of host) {
    const { ipv4, ipv6, allow_in, allow_out, ...rest } = g;
    const rule = (r: GuestArb['allow_in'][number], dir: 'from' | 'to') => {
      const { cidrs, ...x } = r as { cidrs?: string[] } & Record<string, unknown>;
      return Object.fromEntries(Object.entries({ ...x, ...(cidrs ? { [dir]: cidrs } : {}) }).filter(([, v]) => v !== undefined));
    };
    guests[`g${d}`] = { ...rest, allow_in: allow_in.map((r) => rule(r, 'from')), allow_out: allow_out.map((r) => rule(r, 'to')) };
    facts.push({
      name: parseIfName(`vif${d}.0`),
      bridge: parseIfName(d % 2 === 0 ? 'xenbr0' : 'xenbr1'),
      domid: d,
      devid: 0,
      domain: parseGuestKey(`g${d}`),
      mac: parseMac(`00:16:3e:00:01:${d.toString(16).padStart(2, '0')}`),
      ipv4: [...(ipv4.includes('A') ? [parseCidr(`192.0.2.${100 + addressOf(d)}`)] : []), ...(ipv4.includes('P') ? [parseCidr(`10.9.${d}.0/29`)] : [])],
      ipv6: [...(ipv6.includes('A') ? [parseCidr(`2001:db8::${100 + addressOf(d)}`)] : []), ...(ipv6.includes('P') ? [parseCidr(`2001:db8:${d}::/64`)] : [])],
    });
  }
  const policy = policySchema.parse({ version: 1, guests });
  return compile(
    facts.map((f) => resolveVif(policy, f)),
    engine,
  ).nftables;
}

describe('nf_tables written natively (netns): what nft -f writes, byte for byte', function () {
  this.timeout(600_000);
  let byNft: Netns;
  let native: Netns;

  before(async () => {
    await sweepLeftovers();
    byNft = await createNetns('nftw');
    native = await createNetns('natw');
  });
  after(async () => destroy(byNft, native));

  const nft = async (ns: Netns, args: string[], input?: string): Promise<string> => {
    const r = await ns.exec('nft', args, input === undefined ? {} : { input });
    assert.equal(r.code, 0, `nft ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const main = async (ns: Netns, command: string, input: string): Promise<{ code: number; stdout: string; stderr: string }> => ns.exec('node', [mainJs, command], { input });
  const writeBoth = async (script: string): Promise<void> => {
    await nft(byNft, ['-f', '-'], script);
    const r = await main(native, 'write', script);
    assert.equal(r.code, 0, `native write: ${r.stderr}\n${script}`);
  };
  /**
   * Timeouts still to run differ by the moment of listing, and a hash set's elements come in the
   * order of its random seed (nft's own listing sorts them; its debug output does not).
   */
  const listing = async (ns: Netns, debug = false): Promise<string> => {
    // A rule's userdata differs by the digest xennet writes with it (nft writes none): its comment
    // is in the plain listing, and the native reader checks the digests.
    const lines = (await nft(ns, [...(debug ? ['--debug=netlink'] : []), 'list', 'ruleset'])).replace(/ expires \S+/g, '').split('\n').filter((l) => !/^\s*userdata = /.test(l));
    const out: string[] = [];
    let run: string[] = [];
    for (const l of [...lines, '']) {
      if (l.startsWith('\telement ')) {
        run.push(l);
        continue;
      }
      out.push(...run.sort(), l);
      run = [];
    }
    return out.join('\n');
  };
  const alike = async (what: string): Promise<void> => {
    assert.equal(await listing(native), await listing(byNft), `${what}: nft lists them alike`);
    assert.equal(await listing(native, true), await listing(byNft, true), `${what}: the kernel's expressions are alike`);
    const sets = async (ns: Netns): Promise<unknown> => JSON.parse((await main(ns, 'sets', '')).stdout) as unknown;
    assert.deepEqual(await sets(native), await sets(byNft), `${what}: the sets are declared alike`);
  };
  const liveOf = async (ns: Netns): Promise<LiveTable> => parseNftList(await nft(ns, ['list', 'table', 'bridge', 'xennet']).catch(() => '') + (await nft(ns, ['list', 'table', 'inet', 'xennet']).catch(() => '')));
  const reset = async (): Promise<void> => {
    for (const ns of [byNft, native]) await nft(ns, ['flush', 'ruleset']);
  };

  it('for random hosts: a first apply and a change are alike, and read back natively there is nothing left to change', async () => {
    const engine: Engine = { kind: 'nftables', conntrack: 'mark' };
    await fc.assert(
      fc.asyncProperty(hostArb, hostArb, async (first, second) => {
        await reset();
        const one = compiled(first, engine);
        await writeBoth(render(diffTable(emptyLive(), one, 'nftables'), 'nftables'));
        await alike('after the first apply');
        const two = compiled(second, engine);
        const change = render(diffTable(await liveOf(byNft), two, 'nftables'), 'nftables');
        await writeBoth(change);
        await alike('after the change');
        // In both namespaces (what nft wrote, what xennet wrote), every rule's expressions as the
        // kernel dumps them are what xennet's encoder makes of its text.
        for (const ns of [byNft, native]) {
          const exprs = await main(ns, 'exprs', JSON.stringify([...two.chains]));
          assert.equal(exprs.code, 0, exprs.stderr);
          const { compared, differ } = JSON.parse(exprs.stdout) as { compared: number; differ: string[] };
          assert.deepEqual(differ, [], `${ns === byNft ? 'nft' : 'native'}: the kernel's expressions of these rules are not the encoder's`);
          assert.ok(compared > 0);
        }
        const read = await main(native, 'read', JSON.stringify([...two.chains]));
        assert.equal(read.code, 0, read.stderr);
        const chains = JSON.parse(read.stdout) as [string, string[]][] | null;
        assert.ok(chains, 'the native reader knows every rule it wrote');
        const live = emptyLive();
        for (const [c, rules] of chains) live.chains.set(c, rules);
        live.policies.set('table bridge', 'present');
        if (chains.some(([c]) => c === 'XN-CT')) live.policies.set('table inet', 'present');
        const again = diffTable(live, two, 'nftables');
        assert.ok(isEmptyTablePlan(again), `nothing to change: ${render(again, 'nftables')}`);
      }),
      { numRuns: 12, endOnFailure: true },
    );
  });

  it('the expression check itself: a rule replaced keeping its tag, or with its own set holding other elements, is reported', async () => {
    await reset();
    const text = 'ip saddr { 10.0.0.0/8, 192.0.2.5 } return';
    const chains: [string, string[]][] = [['XN-T', [text, 'counter drop']]];
    const script = `add table bridge xennet\nadd chain bridge xennet XN-T\n${chains[0]![1].map((r) => `add rule bridge xennet XN-T ${r} comment "${ruleTag(r)}"`).join('\n')}\n`;
    const check = async (): Promise<{ compared: number; differ: string[] }> => {
      const r = await main(native, 'exprs', JSON.stringify(chains));
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as { compared: number; differ: string[] };
    };
    await nft(native, ['-f', '-'], script);
    assert.deepEqual(await check(), { compared: 2, differ: [] });
    // Written again by hand with the same tags: one with another element in its set, one with another verdict.
    const rewrite = async (rules: string[]): Promise<void> => nft(native, ['-f', '-'], `flush chain bridge xennet XN-T\n${rules.map((r, i) => `add rule bridge xennet XN-T ${r} comment "${ruleTag(chains[0]![1][i]!)}"`).join('\n')}\n`).then(() => undefined);
    await rewrite(['ip saddr { 10.0.0.0/8, 192.0.2.6 } return', 'counter drop']);
    assert.deepEqual(await check(), { compared: 1, differ: [`${text} (its sets)`] }, 'its set');
    await rewrite([text, 'counter accept']);
    assert.deepEqual(await check(), { compared: 1, differ: ['counter drop'] }, 'its verdict');
  });

  it('learned bindings (with and without a timeout, written again and removed) are alike', async () => {
    await reset();
    await writeBoth(render(diffTable(emptyLive(), compiled([[1, { ...fc.sample(guestArb, { numRuns: 1, seed: 7 })[0]!, learn_addresses: true, ipv4: [], ipv6: [] }]], { kind: 'nftables', conntrack: 'mark' }), 'nftables'), 'nftables'));
    const now = Date.now();
    const b = (vif: string, family: 'ipv4' | 'ipv6', address: string, expires: number | null, guarded = false): Binding => ({ vif, family, address, how: 'dhcp', since: now, expires, guarded });
    const bindings = [b('vif1.0', 'ipv4', '192.0.2.7', now + 600_000, true), b('vif1.0', 'ipv6', '2001:db8::7', null, true), b('vif2.0', 'ipv4', '198.51.100.9', null)];
    await writeBoth(learnedScript(bindings, [], now));
    await alike('bindings written');
    await writeBoth(learnedScript([bindings[0]!], [bindings[1]!, bindings[2]!], now));
    await alike('one written again, two removed');
  });

  it('a change larger than one transaction may be is written part by part, and ends as the one transaction would; a part too large for any is an error that writes nothing', async () => {
    await reset();
    const host = fc.sample(hostArb, { numRuns: 1, seed: 11 })[0]!;
    const script = render(diffTable(emptyLive(), compiled([...host, [20, { ...host[0]![1], learn_addresses: false }]], { kind: 'nftables', conntrack: 'mark' }), 'nftables'), 'nftables');
    assert.ok((script.match(/^# part /gm) ?? []).length >= 3, 'a shared part and a part per guest');
    await nft(byNft, ['-f', '-'], script);
    const parts = await native.exec('node', [mainJs, 'apply'], { input: script, env: { ...process.env, XENNET_TEST_NFT_BATCH_BYTES: '24000' } });
    assert.equal(parts.code, 0, parts.stderr);
    await alike('written part by part');
    await reset();
    const tooSmall = await native.exec('node', [mainJs, 'apply'], { input: script, env: { ...process.env, XENNET_TEST_NFT_BATCH_BYTES: '2000' } });
    assert.equal(tooSmall.code, 1);
    assert.match(tooSmall.stderr, /is larger than a netlink datagram may be here \(2000 bytes\)/);
    assert.equal((await nft(native, ['list', 'ruleset'])).trim(), '', 'nothing written');
  });

  it('two guests\' addresses swapped in a write split into transactions: killed after any of them, no address is held by both guests', async () => {
    const engine: Engine = { kind: 'nftables', conntrack: 'mark' };
    const guest: GuestArb = { ...fc.sample(guestArb, { numRuns: 1, seed: 5 })[0]!, identity_guard: true, learn_addresses: false, antispoof: true, allow_in: [], allow_out: [], ipv4: ['A'], ipv6: ['A'] };
    const host: [number, GuestArb][] = [[1, guest], [2, guest], [3, guest]];
    const swap = (d: number): number => (d === 1 ? 2 : d === 2 ? 1 : d);
    /** Each guarded address with the ports the guard lets send from it. */
    const holders = async (): Promise<Map<string, string[]>> => {
      const out = new Map<string, string[]>();
      for (const set of ['id_ip4_port', 'id_ip6_port']) {
        for (const m of (await nft(native, ['list', 'set', 'bridge', 'xennet', set])).matchAll(/([0-9a-f.:]+) \. "([^"]+)"/g)) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!].sort());
      }
      return out;
    };
    let killed = 0;
    for (let n = 1; ; n++) {
      await reset();
      const r = await main(native, 'write', render(diffTable(emptyLive(), compiled(host, engine), 'nftables'), 'nftables'));
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual((await holders()).get('192.0.2.101'), ['vif1.0']);
      const change = render(diffTable(await liveOf(native), compiled(host, engine, swap), 'nftables'), 'nftables');
      const run = await native.exec('node', [mainJs, 'apply'], { input: change, env: { ...process.env, XENNET_TEST_NFT_BATCH_BYTES: '12000', XENNET_TEST_KILL_AT: `nftables:part-committed:${n}` } });
      for (const [address, ports] of await holders()) assert.ok(ports.length === 1, `killed after transaction ${n}: ${address} is let through from ${ports.join(' and ')}`);
      if (run.signal !== 'SIGKILL') {
        assert.equal(run.code, 0, run.stderr);
        break;
      }
      killed++;
    }
    assert.ok(killed >= 2, `the change was written in several transactions (${killed + 1})`);
    const after = await holders();
    assert.deepEqual([after.get('192.0.2.101'), after.get('192.0.2.102'), after.get('192.0.2.103')], [['vif2.0'], ['vif1.0'], ['vif3.0']], 'in the end, swapped');
  });

  it('a transaction the kernel refuses in its last message or in the middle changes nothing and names the line; one only checked changes nothing', async () => {
    await reset();
    const one = compiled([[3, fc.sample(guestArb, { numRuns: 1, seed: 3 })[0]!]], { kind: 'nftables', conntrack: 'mark' });
    const script = render(diffTable(emptyLive(), one, 'nftables'), 'nftables');
    const refused = await main(native, 'write', `${script}add rule bridge xennet XN-NO-SUCH-CHAIN drop\n`);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /refused add rule bridge xennet XN-NO-SUCH-CHAIN drop: ENOENT \(nothing of this transaction was applied\)/);
    assert.equal((await nft(native, ['list', 'ruleset'])).trim(), '', 'nothing applied');
    // Refused in the middle: the answer names that line (only the last message asks for an answer; a refused one is answered anyway).
    const lines = script.trimEnd().split('\n');
    const middle = [...lines.slice(0, 40), 'add rule bridge xennet XN-NO-SUCH-CHAIN accept', ...lines.slice(40)].join('\n');
    const inTheMiddle = await main(native, 'write', `${middle}\n`);
    assert.equal(inTheMiddle.code, 1);
    assert.match(inTheMiddle.stderr, /refused add rule bridge xennet XN-NO-SUCH-CHAIN accept: ENOENT/);
    assert.equal((await nft(native, ['list', 'ruleset'])).trim(), '', 'nothing applied');
    const checked = await main(native, 'check', script);
    assert.equal(checked.code, 0, checked.stderr);
    assert.equal((await nft(native, ['list', 'ruleset'])).trim(), '', 'a check applies nothing');
    const bad = await main(native, 'check', `${script}add rule bridge xennet XN-NO-SUCH-CHAIN drop\n`);
    assert.equal(bad.code, 1, 'a check says what the kernel would refuse');
  });
});
