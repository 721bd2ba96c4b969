/**
 * nf_tables spoken natively, the pure parts: a rule's text -> its expressions (as nft 1.0.6 makes
 * them), a set's declaration -> its attributes and userdata (as the kernel keeps what nft wrote),
 * a script -> its messages, a batch's datagram, a rule's expressions -> their digest (the same for
 * what is written and what the kernel dumps). The netns test nft-native-write compares all of it
 * with what nft writes, for random rule files; these pin the cases down one by one.
 */
import assert from 'node:assert/strict';
import { batchDatagram, type NftMessage } from '../../src/bridge/nl/nft-batch.js';
import { packParts } from '../../src/firewall/nftables/backend.js';
import { nfnlAttributeList } from '../../src/bridge/nl/nfnl.js';
import { registerNumber, type NftExpr } from '../../src/firewall/nftables/native/expr.js';
import { parseNftRule, ruleTokens } from '../../src/firewall/nftables/native/rule-parse.js';
import { ruleExpressionBytes, scriptMessages } from '../../src/firewall/nftables/native/script.js';
import { AttrWriter, writeExpr } from '../../src/firewall/nftables/native/encode.js';
import { nlAttr, u32be } from './lib/nlattr.js';
import { DIGEST_UDATA, exprDigest, expressionsAsWritten, ownSetNames, writtenDigest } from '../../src/firewall/nftables/native/expr-digest.js';
import { parseElement, parseSetDeclaration } from '../../src/firewall/nftables/native/sets.js';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const load = (base: 'll' | 'network' | 'transport', offset: number, len: number, dreg = 0): NftExpr => ({ type: 'payload', base, offset, len, dreg });
const eq = (data: string, op: 'eq' | 'neq' | 'gte' | 'lte' = 'eq'): NftExpr => ({ type: 'cmp', op, sreg: 0, data: hex(data) });
const meta = (key: 'protocol' | 'l4proto' | 'iifname' | 'oifname' | 'mark', dreg = 0): NftExpr => ({ type: 'meta', key, dreg });

describe('nf_tables natively: a rule text -> its expressions', function () {
  it('checks a protocol once, by meta protocol for IP fields and by the Ethernet type for ICMPv6', function () {
    assert.deepEqual(parseNftRule('ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 return').exprs, [
      meta('protocol'), eq('0800'),
      load('network', 12, 4), eq('00000000'),
      load('network', 16, 4), eq('ffffffff'),
      meta('l4proto'), eq('11'),
      // adjacent equal compares of 4 bytes or less in all: one load and one compare, as nft merges them
      load('transport', 0, 4), eq('00440043'),
      { type: 'verdict', verdict: { code: 'return' } },
    ]);
    assert.deepEqual(parseNftRule('icmpv6 type nd-router-advert counter drop').exprs, [load('ll', 12, 2), eq('86dd'), meta('l4proto'), eq('3a'), load('transport', 0, 1), eq('86'), { type: 'counter' }, { type: 'verdict', verdict: { code: 'drop' } }]);
    // An explicit `meta protocol ip6` is the check: no Ethernet type after it.
    assert.deepEqual(parseNftRule('meta protocol ip6 icmpv6 type nd-neighbor-advert return').exprs.slice(0, 4), [meta('protocol'), eq('86dd'), meta('l4proto'), eq('3a')]);
  });

  it('a prefix of whole bytes loads only those; another masks the field; a range is two compares (!=: a range expression)', function () {
    assert.deepEqual(parseNftRule('ip6 saddr 2001:db8:5::/64 return').exprs.slice(2, 4), [load('network', 8, 8), eq('20010db800050000')]);
    assert.deepEqual(parseNftRule('ip saddr 10.9.0.0/29 return').exprs.slice(2, 5), [load('network', 12, 4), { type: 'bitwise', sreg: 0, dreg: 0, mask: hex('fffffff8'), xor: hex('00000000') }, eq('0a090000')]);
    assert.deepEqual(parseNftRule('tcp dport 1-1023 return').exprs.slice(2, 5), [load('transport', 2, 2), eq('0001', 'gte'), eq('03ff', 'lte')]);
    assert.deepEqual(parseNftRule('tcp dport != 1-1023 return').exprs[3], { type: 'range', op: 'neq', sreg: 0, from: hex('0001'), to: hex('03ff') });
  });

  it('a concatenation loads each key after the last word of the one before', function () {
    const r = parseNftRule('ether saddr . iifname != @id_mac_port ether saddr @id_mac counter drop').exprs;
    assert.deepEqual(r.slice(0, 3), [load('ll', 6, 6, 0), meta('iifname', 2), { type: 'lookup', sreg: 0, set: { name: 'id_mac_port' }, invert: true }]);
    // Word 2 is NFT_REG32_02 (10); word 4 starts NFT_REG_2 (2), as nft names them.
    assert.equal(registerNumber(2), 10);
    assert.equal(registerNumber(4), 2);
    assert.equal(registerNumber('verdict'), 0);
  });

  it('sets it carries: sorted, and intervals (with a leading end at 0) once one element is a range or a prefix', function () {
    const { exprs, sets } = parseNftRule('ip daddr { 10.0.0.0/8, 192.0.2.5 } tcp dport { 22, 443 } return');
    assert.deepEqual(exprs[3], { type: 'lookup', sreg: 0, set: { anon: 0 }, invert: false });
    assert.equal(sets[0]!.interval, true);
    assert.deepEqual(sets[0]!.elements.map((e) => [e.key.toString('hex'), e.end]), [['00000000', true], ['0a000000', false], ['0b000000', true], ['c0000205', false], ['c0000206', true]]);
    assert.equal(sets[1]!.interval, false);
    assert.deepEqual(sets[1]!.elements.map((e) => e.key.toString('hex')), ['0016', '01bb']);
  });

  it('statements: limits, logs to a group, set updates with a timeout or a limit, marks', function () {
    assert.deepEqual(parseNftRule('limit rate 6/minute log prefix "XN spoof vif1.0: "').exprs, [{ type: 'limit', rate: 6, unitSeconds: 60, burst: 5 }, { type: 'log', prefix: 'XN spoof vif1.0: ' }]);
    const learn = parseNftRule('arp saddr ip 0.0.0.0 arp operation request limit rate 20/second burst 40 packets add @tentative4 { arp daddr ip timeout 2s } log prefix "XN learn" group 30830').exprs;
    assert.deepEqual(learn.slice(6), [{ type: 'limit', rate: 20, unitSeconds: 1, burst: 40 }, load('network', 24, 4), { type: 'dynset', sreg: 0, set: 'tentative4', timeoutMs: 2000, exprs: [] }, { type: 'log', prefix: 'XN learn', group: 30830 }]);
    assert.deepEqual(parseNftRule('meta mark set meta mark | 0x00400000').exprs, [meta('mark'), { type: 'bitwise', sreg: 0, dreg: 0, mask: hex('ffffbfff'), xor: hex('00004000') }, { type: 'metaSet', key: 'mark', sreg: 0 }]);
    assert.deepEqual(ruleTokens('add @x { @th,64,128 . iifname timeout 2s } ct state established,related'), ['add', '@x', '{', '@th,64,128', '.', 'iifname', 'timeout', '2s', '}', 'ct', 'state', 'established,related']);
  });

  it('anything not in xennet\'s grammar is an error naming the rule', function () {
    for (const bad of ['tcp flags syn drop', 'ip saddr 1.2.3.4 ip6 saddr ::1 drop', 'limit rate 5/fortnight', 'log prefix "unterminated']) assert.throws(() => parseNftRule(bad), new RegExp(`cannot write the rule natively: ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  });
});

describe('nf_tables natively: sets and elements', function () {
  it('declarations carry what nft writes (userdata as the kernel kept it from nft 1.0.6)', function () {
    const map = parseSetDeclaration('from_guest', 'type ifname : verdict;', true);
    assert.deepEqual([map.flags, map.keyType, map.keyLen, map.userdata.toString('hex')], [8, 41, 16, '000401000000010400000000060400000000']);
    const naPort = parseSetDeclaration('id_na_port', 'typeof @th,64,128 . iifname;', false);
    assert.deepEqual([naPort.keyType, naPort.keyLen], [0x129, 32]);
    assert.equal(naPort.userdata.toString('hex'), '000400000000034000040d00000001380026000407000000011e000400000000010400000000020403000000030440000000040480000000010e0004090000000106000406000000');
    const rate = parseSetDeclaration('defend_rate4', 'type ipv4_addr . ifname; size 65535; flags dynamic,timeout; timeout 10s;', false);
    assert.deepEqual([rate.flags, rate.keyType, rate.keyLen, rate.size, rate.timeoutMs, rate.userdata.toString('hex')], [0x30, 0x1e9, 20, 65535, 10000, '000400000000030800040d0000000100']);
    assert.equal(parseSetDeclaration('id_mac', 'type ether_addr; counter;', false).counter, true);
    assert.throws(() => parseSetDeclaration('x', 'type tcp_flag;', false), /unknown type/);
  });

  it('elements: concatenations padded per part, verdicts, timeouts; a key alone to delete', function () {
    const learned = parseSetDeclaration('learned_ip4', 'type ipv4_addr . ifname; flags timeout;', false);
    const e = parseElement(learned, '192.0.2.5 . "vif1.0" timeout 30s');
    assert.equal(e.key.toString('hex'), `c0000205${Buffer.from('vif1.0').toString('hex')}${'00'.repeat(10)}`);
    assert.equal(e.timeoutMs, 30_000);
    const map = parseSetDeclaration('from_guest', 'type ifname : verdict;', true);
    assert.deepEqual(parseElement(map, '"vif1.0" : jump XN-O-vif1.0').verdict, { code: 'jump', chain: 'XN-O-vif1.0' });
    assert.deepEqual(parseElement(map, '"vif1.0" : accept').verdict, { code: 'accept' });
    assert.equal(parseElement(map, '"vif1.0"', true).verdict, undefined);
    assert.throws(() => parseElement(map, '"vif1.0"'), /key : verdict/);
    assert.throws(() => parseElement(learned, '192.0.2.5'), /not a key of 2 parts/);
  });

  it('an interface name nft refuses (empty) or reads otherwise (`*` a wildcard, a backslash an escape) is refused, in rules and in elements', function () {
    const map = parseSetDeclaration('from_guest', 'type ifname : verdict;', true);
    for (const bad of ['""', '"vif*"', '"vif\\1"', '"vif1.0-emu-toolong"']) {
      assert.throws(() => parseElement(map, bad, true), /not an interface name/, bad);
      assert.throws(() => parseNftRule(`iifname ${bad} drop`), /cannot write the rule natively/, bad);
    }
    assert.equal(parseElement(map, '"vif1.0 "', true).key.subarray(0, 7).toString(), 'vif1.0 ', 'a foreign key with a space is a name like any other');
  });
});

describe('nf_tables natively: scripts and batches', function () {
  it('a script is its messages, in order; `list set` declares without NLM_F_CREATE (fails where the set is gone)', function () {
    const m = scriptMessages('list set bridge xennet guests\nadd table bridge xennet\nadd chain bridge xennet XN-O-vif1.0\nadd rule bridge xennet XN-O-vif1.0 ether saddr != 00:16:3e:00:00:01 counter drop comment "xn:abc"\nadd map bridge xennet from_guest { type ifname : verdict; }\ndelete element bridge xennet from_guest { "vif1.0" }\n');
    assert.deepEqual(m.map((x) => [x.msg, x.flags]), [[9, 0], [0, 0x400], [3, 0x400], [6, 0xc00], [9, 0x400], [14, 0]]);
    // The rule's comment is its userdata (NFTA_RULE_USERDATA 7: type 0, length, text and NUL),
    // and the digest of its expressions (DIGEST_UDATA, 16 bytes).
    const rule = nfnlAttributeList(m[3]!.body, 4);
    const userdata = rule.find((a) => a.type === 7)!.value;
    const expressions = rule.find((a) => (a.type & 0x3fff) === 4)!.value;
    assert.equal(userdata.toString('hex'), `0007${Buffer.from('xn:abc\0').toString('hex')}${DIGEST_UDATA.toString(16)}10${exprDigest(expressions)!.toString('hex')}`);
  });

  it('a line xennet does not write is an error naming it, not half a transaction', function () {
    assert.throws(() => scriptMessages('add table bridge xennet\ninsert rule bridge xennet XN-PRE drop\n'), /cannot write natively: insert rule bridge xennet XN-PRE drop/);
    assert.throws(() => scriptMessages('add element bridge xennet nosuchset { 1 }\n'), /nosuchset is not declared/);
    assert.throws(() => scriptMessages('add chain bridge xennet XN-PRE { type filter hook input priority 0; policy drop; }\n'), /base chain XN-PRE is not one of xennet's/);
  });

  it('a batch is one datagram: begin, the messages (the last asks for an answer), end (none for a check)', function () {
    const m = scriptMessages('add table bridge xennet\nadd chain bridge xennet XN-X\n');
    const d = batchDatagram(m, 100);
    const headers: [number, number, number][] = [];
    for (let off = 0; off < d.length; ) {
      const len = d.readUInt32LE(off);
      headers.push([d.readUInt16LE(off + 4), d.readUInt16LE(off + 6), d.readUInt32LE(off + 8)]);
      off += (len + 3) & ~3;
    }
    assert.deepEqual(headers, [[0x10, 1, 100], [0xa00, 0x401, 101], [0xa03, 0x405, 102], [0x11, 1, 103]], 'only the last message asks for an answer');
    assert.equal(batchDatagram(m, 100, true).length, d.length - 20, 'a check has no end');
  });

  it('parts are packed in order into as few transactions as fit; one part too large for any is an error', function () {
    const part = (what: string, bytes: number): NftMessage[] => [{ msg: 6, flags: 0, body: Buffer.alloc(bytes - 16), what }];
    const parts = [part('a', 100), part('b', 100), part('c', 100)];
    assert.deepEqual(packParts(parts, 1000).map((t) => t.map((m) => m.what)), [['a', 'b', 'c']], 'all of it fits: one transaction');
    assert.deepEqual(packParts(parts, 40 + 200).map((t) => t.map((m) => m.what)), [['a', 'b'], ['c']]);
    assert.deepEqual(packParts(parts, 40 + 100).map((t) => t.map((m) => m.what)), [['a'], ['b'], ['c']]);
    assert.throws(() => packParts([...parts, part('huge', 500)], 40 + 200), /one part of the change \(huge \.\.\.: 1 messages, 500 bytes\) is larger than a netlink datagram may be here \(240 bytes\)/);
  });
});

describe('nf_tables natively: the digest of a rule\'s expressions', function () {
  const NESTED = 0x8000;
  /** Attributes of a buffer: [type with flags, value]. */
  const list = (b: Buffer): [number, Buffer][] => {
    const out: [number, Buffer][] = [];
    for (let off = 0; off + 4 <= b.length; ) {
      const len = b.readUInt16LE(off);
      out.push([b.readUInt16LE(off + 2), b.subarray(off + 4, off + len)]);
      off += (len + 3) & ~3;
    }
    return out;
  };
  const attr = nlAttr;
  const u32 = u32be;
  /**
   * What the kernel's dump of written expressions may look like: each expression's attributes in
   * reverse order, no NLA_F_NESTED flags on the levels, `extra` attributes added to expressions of
   * a name, a counter's values counted, an own set's name given by the kernel and its id dropped.
   */
  const dumped = (written: Buffer, extra: Record<string, [number, Buffer][]> = {}): Buffer =>
    Buffer.concat(
      list(written).map(([, elem]) => {
        const [[, name], [, data]] = list(elem) as [[number, Buffer], [number, Buffer]];
        const text = name.toString('latin1').replace(/\0.*$/s, '');
        let fields = list(data).reverse().map(([t, v]): [number, Buffer] => [t & ~NESTED, v]);
        if (text === 'counter') fields = [[1, Buffer.from('00000000000004d2', 'hex')], [2, Buffer.from('0000000000000007', 'hex')]];
        if (text === 'lookup') fields = fields.filter(([t]) => t !== 4).map(([t, v]) => [t, t === 1 && v.toString().startsWith('__set') ? Buffer.from('__set7\0') : v]);
        fields.push(...(extra[text] ?? []));
        return attr(1, Buffer.concat([attr(1, name), attr(2, Buffer.concat(fields.map(([t, v]) => attr(t, v))))]));
      }),
    );

  it('is the same for the bytes written and the kernel\'s dump of them; another value, order or verdict is another digest', function () {
    const rule = 'ether type ip ip saddr 192.0.2.5 udp dport 53 counter accept';
    const written = ruleExpressionBytes(rule);
    const d = exprDigest(written)!;
    assert.equal(d.length, 16);
    assert.deepEqual(exprDigest(dumped(written)), d, 'reordered, unflagged, the counter counted');
    assert.notDeepEqual(exprDigest(dumped(written, { cmp: [[7, u32(0)]] })), d, 'a zero attribute the kernel does not default');
    for (const other of ['ether type ip ip saddr 192.0.2.6 udp dport 53 counter accept', 'ether type ip ip saddr 192.0.2.5 udp dport 53 counter drop', 'ether type ip udp dport 53 ip saddr 192.0.2.5 counter accept', 'ether type ip ip saddr 192.0.2.5 udp dport 53 accept']) {
      assert.notDeepEqual(exprDigest(ruleExpressionBytes(other)), d, other);
    }
    assert.notDeepEqual(exprDigest(dumped(written, { cmp: [[7, u32(1)]] })), d, 'an attribute the kernel adds that is not zero');
    // Only the attributes the kernel defaults to 0 are left out when 0: not a register, not a log's settings.
    const vmap = ruleExpressionBytes('iifname vmap @from_guest');
    assert.notDeepEqual(exprDigest(vmap), exprDigest(ruleExpressionBytes('iifname @from_guest')), 'a verdict map is not a set test (its destination register is 0)');
    assert.deepEqual(exprDigest(dumped(vmap, { lookup: [[5, u32(0)]] })), exprDigest(vmap), 'a lookup\'s flags the kernel adds');
    const logged = ruleExpressionBytes('log prefix "XN x" group 30831 drop');
    assert.notDeepEqual(exprDigest(dumped(logged, { log: [[5, u32(0)]] })), exprDigest(logged), 'a log level of 0 is not no level');
    assert.notDeepEqual(exprDigest(dumped(logged, { log: [[3, u32(0)]] })), exprDigest(logged), 'a snaplen of 0 is not none');
    assert.equal(exprDigest(Buffer.from([9, 0, 1, 0])), undefined, 'malformed');
  });

  it('covers a rule\'s own set by what it holds, whatever it is called; unknown elements give no digest', function () {
    const rule = 'ip saddr { 10.0.0.0/8, 192.0.2.5 } return';
    const sets = parseNftRule(rule).sets;
    assert.equal(sets.length, 1);
    const elements = sets[0]!.elements.map((e) => ({ key: e.key, flags: e.end ? 1 : 0 }));
    // As the script writes it: the set by batch id.
    const native = parseNftRule(rule);
    const w = new AttrWriter();
    native.exprs.forEach((e) => writeExpr(w, e, (ref) => ('name' in ref ? { name: ref.name } : { name: '__set%d', id: 3 })));
    const written = w.take();
    const d = exprDigest(written, ({ id }) => (id === 3 ? elements : undefined))!;
    assert.ok(d);
    const kernel = dumped(written);
    assert.deepEqual(exprDigest(kernel, ({ name }) => (name === '__set7' ? [...elements].reverse() : undefined)), d, 'by the kernel\'s name, in another order');
    const changed = elements.map((e, i) => (i === elements.length - 1 ? { ...e, key: Buffer.from('c0000207', 'hex') } : e));
    assert.notDeepEqual(exprDigest(kernel, () => changed), d, 'another element');
    assert.equal(exprDigest(kernel, () => undefined), undefined);
    assert.equal(exprDigest(kernel), undefined);
    assert.deepEqual(ownSetNames(kernel), ['__set7']);
    assert.deepEqual(ownSetNames(ruleExpressionBytes('ip saddr 192.0.2.5 return')), []);
  });

  it('is read from a rule\'s userdata next to its comment, and a rule with none or another is not as written', function () {
    const written = ruleExpressionBytes('ether type ip counter drop');
    const d = exprDigest(written)!;
    const comment = Buffer.from('xn:abc\0');
    const userdata = Buffer.concat([Buffer.from([0, comment.length]), comment, Buffer.from([DIGEST_UDATA, d.length]), d]);
    assert.deepEqual(writtenDigest(userdata), d);
    assert.equal(expressionsAsWritten(dumped(written), userdata), true);
    assert.equal(expressionsAsWritten(ruleExpressionBytes('ether type ip counter accept'), userdata), false);
    assert.equal(expressionsAsWritten(written, Buffer.concat([Buffer.from([0, comment.length]), comment])), false, 'a comment alone (nft replace ... comment)');
    assert.equal(writtenDigest(Buffer.from([DIGEST_UDATA, 40, 1])), undefined, 'a record running past the end');
  });
});
