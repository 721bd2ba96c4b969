/**
 * A rule of xennet's, from its text to the expressions the kernel runs (pure).
 *
 * The text is what xennet compiles and compares (nft's own syntax, as `nft list` prints it); the
 * expressions are what nft 1.0.6 makes of that text for the bridge and inet families, so that
 * `nft list` prints a rule written here exactly as one written by nft (the netns test
 * nft-native-rules compares the kernel's bytes of both). That takes nft's rules of thumb:
 *
 * - a protocol field first checks its protocol, once per rule, unless the rule already did: an
 *   IPv4 or IPv6 header field by `meta protocol`; an ARP field, an ICMP or ICMPv6 field and an
 *   IPv6 extension header by the Ethernet type; a transport field by `meta l4proto`; a VLAN field
 *   by the Ethernet type 802.1Q; a raw field (`@th,o,l`) checks nothing;
 * - a prefix of whole bytes loads and compares only those bytes; any other prefix masks the field;
 * - adjacent payload compares for equality are loaded and compared as one where nft merges them
 *   (up to 16 bytes: always on the link layer, and above it when the whole fits in 4 bytes or one
 *   part is longer than 4).
 *
 * Only the grammar xennet writes is read; anything else is an error that names the rule.
 */
import { NFT_META } from '../../../bridge/nl/nft-numbers.js';
import { cidrBytes, parseCidr, type Cidr } from '../../../net/index.js';
import { ETHERTYPE_NAMES, ICMP_NAMES, ICMPV6_NAMES } from '../syntax.js';
import { addressBytes, bigEndian, etherBytes, ifnameBytes } from './values.js';
import { XennetError } from '../../../sys/errors.js';
import { words, type AnonymousSet, type DataTypeName, type KeyOrigin, type MetaKey, type NativeRule, type NftExpr, type PayloadBase, type Verdict } from './expr.js';

type Network = 'ip' | 'ip6' | 'arp';

interface Need {
  /** The Ethernet type 802.1Q (or 802.1ad) before the field. */
  vlan?: true;
  network?: { proto: Network; by: 'meta' | 'ether' };
  /** The transport protocol (its number) by `meta l4proto`. */
  l4?: number;
}

interface Field {
  load: (dreg: number) => NftExpr;
  len: number;
  type: DataTypeName | 'mark' | 'ct_state' | 'arp_op' | 'pkt_type';
  /** Where it is in the packet, for prefixes and merging. */
  payload?: { base: PayloadBase; offset: number };
  /** A field narrower than the bytes loaded (a VLAN id: 12 bits of 2 bytes). */
  mask?: Buffer;
  /** What it is for nft (its protocol and template numbers, its meta key): a set of its values says so. */
  origin?: KeyOrigin;
  need?: Need;
}

/** Names -> numbers: the names xennet prints (syntax.ts), and the aliases nft also reads. */
const byName = (names: ReadonlyMap<number, string>, aliases: Record<string, number> = {}): Readonly<Record<string, number>> => ({ ...Object.fromEntries([...names].map(([n, s]) => [s, n])), ...aliases });
const ETHERTYPES = byName(ETHERTYPE_NAMES, { vlan: 0x8100 });
const PROTOCOLS: Readonly<Record<string, number>> = { icmp: 1, tcp: 6, udp: 17, 'ipv6-icmp': 58, icmpv6: 58 };
const ICMP = byName(ICMP_NAMES);
const ICMPV6 = byName(ICMPV6_NAMES, { 'mld-listener-reduction': 132 });
const CT_STATES: Readonly<Record<string, number>> = { invalid: 1, established: 2, related: 4, new: 8, untracked: 64 };
const ARP_OPS: Readonly<Record<string, number>> = { request: 1, reply: 2 };
/** The kernel's PACKET_* of a frame (linux/if_packet.h). */
const PKT_TYPES: Readonly<Record<string, number>> = { host: 0, broadcast: 1, multicast: 2, other: 3 };
const UNITS: Readonly<Record<string, number>> = { second: 1, minute: 60, hour: 3600, day: 86400, week: 604800 };

const payload = (base: PayloadBase, offset: number, len: number, type: Field['type'], need?: Need, nft?: [desc: number, tmpl: number]): Field => ({
  load: (dreg) => ({ type: 'payload', base, offset, len, dreg }),
  len,
  type,
  payload: { base, offset },
  ...(need ? { need } : {}),
  ...(nft ? { origin: { payload: { desc: nft[0], tmpl: nft[1] } } } : {}),
});
const meta = (key: MetaKey, len: number, type: Field['type']): Field => ({ load: (dreg) => ({ type: 'meta', key, dreg }), len, type, origin: { meta: NFT_META[key] } });

/** nft's protocol numbers (PROTO_DESC_*) of the protocols whose fields xennet's sets hold. */
const DESC = { icmp: 4, udp: 6, tcp: 8, ip: 12, ip6: 13, icmpv6: 14 } as const;

const IP: Need = { network: { proto: 'ip', by: 'meta' } };
const IP6: Need = { network: { proto: 'ip6', by: 'meta' } };
const ARP: Need = { network: { proto: 'arp', by: 'ether' } };

const FIELDS: Readonly<Record<string, Field>> = {
  'ether saddr': payload('ll', 6, 6, 'ether_addr'),
  'ether daddr': payload('ll', 0, 6, 'ether_addr'),
  'ether type': payload('ll', 12, 2, 'ether_type'),
  'vlan id': { ...payload('ll', 14, 2, 'integer', { vlan: true }), mask: Buffer.from([0x0f, 0xff]) },
  'arp htype': payload('network', 0, 2, 'integer', ARP),
  'arp ptype': payload('network', 2, 2, 'ether_type', ARP),
  'arp operation': payload('network', 6, 2, 'arp_op', ARP),
  'arp saddr ether': payload('network', 8, 6, 'ether_addr', ARP),
  'arp saddr ip': payload('network', 14, 4, 'ipv4_addr', ARP),
  'arp daddr ip': payload('network', 24, 4, 'ipv4_addr', ARP),
  'ip saddr': payload('network', 12, 4, 'ipv4_addr', IP, [DESC.ip, 11]),
  'ip daddr': payload('network', 16, 4, 'ipv4_addr', IP, [DESC.ip, 12]),
  'ip frag-off': payload('network', 6, 2, 'integer', IP),
  'ip6 saddr': payload('network', 8, 16, 'ipv6_addr', IP6, [DESC.ip6, 8]),
  'ip6 daddr': payload('network', 24, 16, 'ipv6_addr', IP6, [DESC.ip6, 9]),
  'ip6 nexthdr': payload('network', 6, 1, 'inet_proto', IP6),
  'udp sport': payload('transport', 0, 2, 'inet_service', { l4: 17 }, [DESC.udp, 1]),
  'udp dport': payload('transport', 2, 2, 'inet_service', { l4: 17 }, [DESC.udp, 2]),
  'tcp sport': payload('transport', 0, 2, 'inet_service', { l4: 6 }, [DESC.tcp, 1]),
  'tcp dport': payload('transport', 2, 2, 'inet_service', { l4: 6 }, [DESC.tcp, 2]),
  'icmp type': payload('transport', 0, 1, 'icmp_type', { network: { proto: 'ip', by: 'ether' }, l4: 1 }, [DESC.icmp, 1]),
  'icmpv6 type': payload('transport', 0, 1, 'icmpv6_type', { network: { proto: 'ip6', by: 'ether' }, l4: 58 }, [DESC.icmpv6, 1]),
  'frag nexthdr': { load: (dreg) => ({ type: 'exthdr', header: 44, offset: 0, len: 1, dreg }), len: 1, type: 'inet_proto', need: { network: { proto: 'ip6', by: 'ether' } } },
  'meta l4proto': meta('l4proto', 1, 'inet_proto'),
  'meta protocol': meta('protocol', 2, 'ether_type'),
  'meta mark': meta('mark', 4, 'mark'),
  'meta pkttype': meta('pkttype', 1, 'pkt_type'),
  iifname: meta('iifname', 16, 'ifname'),
  oifname: meta('oifname', 16, 'ifname'),
  'ct state': { load: (dreg) => ({ type: 'ct', key: 'state', dreg }), len: 4, type: 'ct_state' },
};

/** The longest field name at `tokens[i]` (two or three words), or a raw payload `@th,o,l`. */
function fieldAt(tokens: readonly string[], i: number): { field: Field; used: number } | undefined {
  const [a, b, c] = [tokens[i], tokens[i + 1], tokens[i + 2]];
  if (a === undefined) return undefined;
  const two = b === undefined ? undefined : `${a} ${b}`;
  const three = two === undefined || c === undefined ? undefined : `${two} ${c}`;
  for (const [name, used] of [[three, 3], [two, 2], [a, 1]] as const) {
    const f = name === undefined ? undefined : FIELDS[name];
    if (f) return { field: f, used };
  }
  const raw = /^@(ll|nh|th),(\d+),(\d+)$/.exec(tokens[i] ?? '');
  if (raw) {
    const [bitOffset, bits] = [Number(raw[2]), Number(raw[3])];
    if (bitOffset % 8 !== 0 || bits % 8 !== 0 || bits === 0 || bits > 128) return undefined;
    const base = raw[1] === 'll' ? 'll' : raw[1] === 'nh' ? 'network' : 'transport';
    return { field: payload(base, bitOffset / 8, bits / 8, 'integer'), used: 1 };
  }
  return undefined;
}

const be = bigEndian;

const hostU32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
};

function named(table: Readonly<Record<string, number>>, text: string): number {
  const v = Object.prototype.hasOwnProperty.call(table, text) ? table[text] : /^(0x[0-9a-f]+|\d+)$/i.test(text) ? Number(text) : undefined;
  if (v === undefined || !Number.isInteger(v)) throw new Error(`unknown value ${text}`);
  return v;
}

/** One value of a field's type, as bytes (a prefix or a range is not one value). */
function valueBytes(f: Field, text: string): Buffer {
  switch (f.type) {
    case 'ether_addr':
      return etherBytes(text);
    case 'ether_type':
      return be(named(ETHERTYPES, text), 2);
    case 'ipv4_addr':
    case 'ipv6_addr':
      return addressBytes(f.type === 'ipv4_addr' ? 'ipv4' : 'ipv6', text);
    case 'inet_proto':
      return be(named(PROTOCOLS, text), 1);
    case 'inet_service':
      return be(named({}, text), 2);
    case 'icmp_type':
      return be(named(ICMP, text), 1);
    case 'icmpv6_type':
      return be(named(ICMPV6, text), 1);
    case 'arp_op':
      return be(named(ARP_OPS, text), 2);
    case 'pkt_type':
      return be(named(PKT_TYPES, text), 1);
    case 'ifname':
      return ifnameBytes(text);
    case 'mark':
      return hostU32(named({}, text));
    case 'ct_state':
      return hostU32(text.split(',').reduce((acc, s) => acc | named(CT_STATES, s), 0));
    case 'integer':
    case 'verdict':
      return be(BigInt(text), f.len);
  }
}

/** A prefix `a/len` of an address field: its bytes and length, or undefined for a plain address. */
function prefixOf(f: Field, text: string): { bytes: Buffer; len: number } | undefined {
  if ((f.type !== 'ipv4_addr' && f.type !== 'ipv6_addr') || !text.includes('/')) return undefined;
  const c: Cidr = parseCidr(text, 'address', { family: f.type === 'ipv4_addr' ? 'ipv4' : 'ipv6' });
  if (c.len === f.len * 8) return undefined;
  return { bytes: Buffer.from(cidrBytes(c)), len: c.len };
}

const prefixMask = (bytes: number, len: number): Buffer => be(((1n << BigInt(len)) - 1n) << BigInt(bytes * 8 - len), bytes);

const addOne = (b: Buffer): Buffer | undefined => {
  const out = Buffer.from(b);
  for (let i = out.length - 1; i >= 0; i--) {
    if (out[i]! < 0xff) {
      out[i]!++;
      return out;
    }
    out[i] = 0;
  }
  return undefined; // past the last value
};

/** A value of a set or a range: its first and last key. */
function interval(f: Field, text: string): { lo: Buffer; hi: Buffer } {
  const p = prefixOf(f, text);
  if (p) {
    const mask = prefixMask(f.len, p.len);
    const lo = Buffer.from(p.bytes.map((b, i) => b & mask[i]!));
    const hi = Buffer.from(lo.map((b, i) => b | (~mask[i]! & 0xff)));
    return { lo, hi };
  }
  const dash = text.indexOf('-', 1);
  if (dash > 0 && (f.type === 'inet_service' || f.type === 'ipv4_addr' || f.type === 'ipv6_addr')) return { lo: valueBytes(f, text.slice(0, dash)), hi: valueBytes(f, text.slice(dash + 1)) };
  const v = valueBytes(f, text);
  return { lo: v, hi: v };
}

/** The tokens of a rule: words, quoted strings, and `{`, `}` and (inside braces, before a space: `@th,64,128` is one word) `,` apart. */
export function ruleTokens(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  for (let i = 0; i < text.length; ) {
    const c = text[i]!;
    if (c === ' ') {
      i++;
    } else if (c === '"') {
      const end = text.indexOf('"', i + 1);
      if (end < 0) throw new Error('a string without its closing quote');
      out.push(text.slice(i, end + 1));
      i = end + 1;
    } else if (c === '{' || c === '}' || (c === ',' && depth > 0 && text[i + 1] === ' ')) {
      depth += c === '{' ? 1 : c === '}' ? -1 : 0;
      out.push(c);
      i++;
    } else {
      let j = i;
      while (j < text.length && text[j] !== ' ' && text[j] !== '"' && text[j] !== '{' && text[j] !== '}' && !(text[j] === ',' && depth > 0 && text[j + 1] === ' ')) j++;
      out.push(text.slice(i, j));
      i = j;
    }
  }
  return out;
}

interface Statement {
  exprs: NftExpr[];
  /** A payload compared for equality with a constant: what nft may merge with its neighbour. */
  merge?: { base: PayloadBase; offset: number; len: number; data: Buffer };
}

class RuleReader {
  private i = 0;
  private readonly stmts: Statement[] = [];
  readonly sets: AnonymousSet[] = [];
  private context: { vlan: boolean; network?: Network; l4?: number } = { vlan: false };

  constructor(private readonly tokens: readonly string[]) {}

  private peek(k = 0): string | undefined {
    return this.tokens[this.i + k];
  }

  private next(): string {
    const t = this.tokens[this.i++];
    if (t === undefined) throw new Error('the rule ends too early');
    return t;
  }

  /** A counter's value: a decimal of at most 20 digits. */
  private count(): bigint {
    const t = this.next();
    if (!/^[0-9]{1,20}$/.test(t) || BigInt(t) > 0xffffffffffffffffn) throw new Error(`not a counter value: ${t}`);
    return BigInt(t);
  }

  private expect(t: string): void {
    const got = this.next();
    if (got !== t) throw new Error(`expected ${t}, found ${got}`);
  }

  private payloadMatch(base: PayloadBase, offset: number, len: number, data: Buffer, op: 'eq' | 'neq' = 'eq'): Statement {
    return { exprs: [{ type: 'payload', base, offset, len, dreg: 0 }, { type: 'cmp', op, sreg: 0, data }], ...(op === 'eq' ? { merge: { base, offset, len, data } } : {}) };
  }

  /** The checks a field needs that the rule has not made yet (nft's dependencies). */
  private require(need: Need | undefined): void {
    if (!need) return;
    if (need.vlan && !this.context.vlan) {
      this.stmts.push(this.payloadMatch('ll', 12, 2, be(ETHERTYPES['8021q']!, 2)));
      this.context.vlan = true;
    }
    const n = need.network;
    if (n && this.context.network !== n.proto) {
      if (this.context.network !== undefined) throw new Error(`${n.proto} after ${this.context.network}`);
      const type = be(ETHERTYPES[n.proto]!, 2);
      this.stmts.push(n.by === 'meta' ? { exprs: [{ type: 'meta', key: 'protocol', dreg: 0 }, { type: 'cmp', op: 'eq', sreg: 0, data: type }] } : this.payloadMatch('ll', 12, 2, type));
      this.context.network = n.proto;
    }
    if (need.l4 !== undefined && this.context.l4 !== need.l4) {
      if (this.context.l4 !== undefined) throw new Error(`protocol ${need.l4} after ${this.context.l4}`);
      this.stmts.push({ exprs: [{ type: 'meta', key: 'l4proto', dreg: 0 }, { type: 'cmp', op: 'eq', sreg: 0, data: be(need.l4, 1) }] });
      this.context.l4 = need.l4;
    }
  }

  /** What an equality match with a constant tells the rest of the rule (nft's protocol context). */
  private learn(name: string, value: string): void {
    if (name === 'ether type' || name === 'meta protocol') {
      if (value === 'ip' || value === 'ip6' || value === 'arp') this.context.network = value;
      if (name === 'ether type' && (value === '8021q' || value === '8021ad' || value === 'vlan')) this.context.vlan = true;
    }
    if (name === 'meta l4proto') this.context.l4 = named(PROTOCOLS, value);
  }

  read(): NativeRule {
    while (this.i < this.tokens.length) this.statement();
    return { exprs: mergePayloads(this.stmts).flatMap((s) => s.exprs), sets: this.sets };
  }

  private statement(): void {
    const t = this.peek()!;
    if (t === 'counter') {
      this.i++;
      // `counter packets P bytes B`: the values it starts from.
      if (this.peek() === 'packets') {
        this.i++;
        const packets = this.count();
        if (this.next() !== 'bytes') throw new Error('counter: packets without bytes');
        this.stmts.push({ exprs: [{ type: 'counter', packets, bytes: this.count() }] });
      } else this.stmts.push({ exprs: [{ type: 'counter' }] });
    } else if (t === 'drop' || t === 'accept' || t === 'return') {
      this.i++;
      this.verdict({ code: t });
    } else if (t === 'jump' || t === 'goto') {
      this.i++;
      this.verdict({ code: t, chain: this.next() });
    } else if (t === 'limit') {
      this.stmts.push({ exprs: [this.limit()] });
    } else if (t === 'log') {
      this.stmts.push({ exprs: [this.log()] });
    } else if (t === 'add' && this.peek(1)?.startsWith('@')) {
      this.dynset();
    } else if (t === 'meta' && this.peek(1) === 'mark' && this.peek(2) === 'set') {
      this.markSet();
    } else {
      this.match();
    }
  }

  private verdict(v: Verdict): void {
    this.stmts.push({ exprs: [{ type: 'verdict', verdict: v }] });
  }

  private limit(): NftExpr {
    this.expect('limit');
    this.expect('rate');
    const m = /^(\d+)\/(second|minute|hour|day|week)$/.exec(this.next());
    if (!m) throw new Error('a limit rate is N/unit');
    let burst = 5;
    if (this.peek() === 'burst') {
      this.i++;
      burst = Number(this.next());
      this.expect('packets');
    }
    return { type: 'limit', rate: Number(m[1]), unitSeconds: UNITS[m[2]!]!, burst };
  }

  private log(): NftExpr {
    this.expect('log');
    const out: { type: 'log'; prefix?: string; group?: number } = { type: 'log' };
    for (;;) {
      if (this.peek() === 'prefix') {
        this.i++;
        const s = /^"([^"]*)"$/.exec(this.next());
        if (!s) throw new Error('a log prefix is a quoted string');
        out.prefix = s[1]!;
      } else if (this.peek() === 'group') {
        this.i++;
        out.group = Number(this.next());
      } else {
        return out;
      }
    }
  }

  /** `add @set { key [. key] [timeout Ns] [limit ...] }`. */
  private dynset(): void {
    this.expect('add');
    const set = this.next().slice(1);
    this.expect('{');
    const { loads, needs } = this.keys();
    for (const n of needs) this.require(n);
    let timeoutMs: number | undefined;
    const exprs: NftExpr[] = [];
    while (this.peek() !== '}') {
      if (this.peek() === 'timeout') {
        this.i++;
        const m = /^(\d+)s$/.exec(this.next());
        if (!m) throw new Error('a timeout is Ns');
        timeoutMs = Number(m[1]) * 1000;
      } else if (this.peek() === 'limit') {
        exprs.push(this.limit());
      } else {
        throw new Error(`unexpected ${this.peek()} in a set update`);
      }
    }
    this.expect('}');
    this.stmts.push({ exprs: [...loads, { type: 'dynset', sreg: 0, set, ...(timeoutMs !== undefined ? { timeoutMs } : {}), exprs }] });
  }

  /** `meta mark set meta mark & X` or `... | X`. */
  private markSet(): void {
    for (const w of ['meta', 'mark', 'set', 'meta', 'mark']) this.expect(w);
    const op = this.next();
    const v = named({}, this.next()) >>> 0;
    const [mask, xor] = op === '&' ? [v, 0] : op === '|' ? [~v >>> 0, v] : [NaN, NaN];
    if (Number.isNaN(mask)) throw new Error(`meta mark set with ${op}`);
    this.stmts.push({ exprs: [{ type: 'meta', key: 'mark', dreg: 0 }, { type: 'bitwise', sreg: 0, dreg: 0, mask: hostU32(mask), xor: hostU32(xor!) }, { type: 'metaSet', key: 'mark', sreg: 0 }] });
  }

  /** One or more fields joined by `.`, each loaded into the words after the one before. */
  private keys(): { fields: Field[]; loads: NftExpr[]; needs: (Need | undefined)[] } {
    const fields: Field[] = [];
    const loads: NftExpr[] = [];
    const needs: (Need | undefined)[] = [];
    let word = 0;
    for (;;) {
      const at = fieldAt(this.tokens, this.i);
      if (!at) throw new Error(`unknown field ${this.peek()}`);
      this.i += at.used;
      fields.push(at.field);
      needs.push(at.field.need);
      loads.push(at.field.load(word));
      word += words(at.field.len);
      if (this.peek() !== '.') return { fields, loads, needs };
      this.i++;
    }
  }

  private match(): void {
    const start = this.i;
    const { fields, loads, needs } = this.keys();
    const name = this.tokens.slice(start, this.i).join(' ');
    for (const n of needs) this.require(n);
    const f = fields[0]!;
    if (fields.length > 1 || this.peek()?.startsWith('@') || (this.peek() === '!=' && this.peek(1)?.startsWith('@'))) {
      const invert = this.peek() === '!=';
      if (invert) this.i++;
      const set = this.next();
      if (!set.startsWith('@')) throw new Error('a concatenation is matched against a set');
      this.stmts.push({ exprs: [...loads, { type: 'lookup', sreg: 0, set: { name: set.slice(1) }, invert }] });
      return;
    }
    if (this.peek() === 'vmap') {
      this.i++;
      const map = this.next();
      if (!map.startsWith('@')) throw new Error('vmap takes a named map');
      this.stmts.push({ exprs: [...loads, { type: 'lookup', sreg: 0, set: { name: map.slice(1) }, dreg: 'verdict', invert: false }] });
      return;
    }
    if (f.type === 'ct_state') {
      this.stmts.push({ exprs: [...loads, { type: 'bitwise', sreg: 0, dreg: 0, mask: valueBytes(f, this.next()), xor: Buffer.alloc(4) }, { type: 'cmp', op: 'neq', sreg: 0, data: Buffer.alloc(4) }] });
      return;
    }
    if (this.peek() === '&') {
      this.i++;
      const mask = valueBytes(f, this.next());
      const op = this.next();
      if (op !== '==' && op !== '!=') throw new Error(`a masked field is compared with == or !=, not ${op}`);
      const data = valueBytes(f, this.next());
      this.stmts.push({ exprs: [...loads, { type: 'bitwise', sreg: 0, dreg: 0, mask, xor: Buffer.alloc(f.len) }, { type: 'cmp', op: op === '==' ? 'eq' : 'neq', sreg: 0, data }] });
      return;
    }
    let op: 'eq' | 'neq' = 'eq';
    if (this.peek() === '!=') {
      this.i++;
      op = 'neq';
    }
    if (this.peek() === '{') {
      if (op !== 'eq') throw new Error('!= with a set');
      this.stmts.push({ exprs: [...loads, { type: 'lookup', sreg: 0, set: { anon: this.sets.length }, invert: false }] });
      this.sets.push(this.anonymousSet(f));
      return;
    }
    const value = this.next();
    if (op === 'eq') this.learn(name, value);
    const prefix = prefixOf(f, value);
    if (prefix && f.payload) {
      if (prefix.len % 8 === 0) {
        const n = prefix.len / 8;
        this.stmts.push(this.payloadMatch(f.payload.base, f.payload.offset, n, prefix.bytes.subarray(0, n), op));
      } else {
        const mask = prefixMask(f.len, prefix.len);
        this.stmts.push({ exprs: [...loads, { type: 'bitwise', sreg: 0, dreg: 0, mask, xor: Buffer.alloc(f.len) }, { type: 'cmp', op, sreg: 0, data: Buffer.from(prefix.bytes.map((b, i) => b & mask[i]!)) }] });
      }
      return;
    }
    const range = interval(f, value);
    if (!range.lo.equals(range.hi)) {
      // nft compares a range as two compares, and uses the range expression only for `!=`.
      if (op === 'eq') this.stmts.push({ exprs: [...loads, { type: 'cmp', op: 'gte', sreg: 0, data: range.lo }, { type: 'cmp', op: 'lte', sreg: 0, data: range.hi }] });
      else this.stmts.push({ exprs: [...loads, { type: 'range', op: 'neq', sreg: 0, from: range.lo, to: range.hi }] });
      return;
    }
    if (f.mask) {
      this.stmts.push({ exprs: [...loads, { type: 'bitwise', sreg: 0, dreg: 0, mask: f.mask, xor: Buffer.alloc(f.len) }, { type: 'cmp', op, sreg: 0, data: range.lo }] });
      return;
    }
    if (f.payload) this.stmts.push(this.payloadMatch(f.payload.base, f.payload.offset, f.len, range.lo, op));
    else this.stmts.push({ exprs: [...loads, { type: 'cmp', op, sreg: 0, data: range.lo }] });
  }

  /** `{ a, b-c, d/len }`: a constant set, of intervals once one element is a range or a prefix. */
  private anonymousSet(f: Field): AnonymousSet {
    this.expect('{');
    const items: { lo: Buffer; hi: Buffer }[] = [];
    for (;;) {
      items.push(interval(f, this.next()));
      const sep = this.next();
      if (sep === '}') break;
      if (sep !== ',') throw new Error(`expected , or } in a set, found ${sep}`);
    }
    if (f.type === 'mark' || f.type === 'ct_state' || f.type === 'arp_op' || f.type === 'pkt_type' || !f.origin) throw new Error(`a set of ${f.type}`);
    const intervalSet = items.some((x) => !x.lo.equals(x.hi));
    const sorted = items.sort((a, b) => a.lo.compare(b.lo));
    const elements: AnonymousSet['elements'] = [];
    if (!intervalSet) {
      for (const x of sorted) elements.push({ key: x.lo, end: false });
    } else {
      // The kernel's interval sets: each interval's first key, and the key after its last
      // (flagged as an end); a set that does not start at 0 starts with an end at 0.
      if (!sorted[0]!.lo.equals(Buffer.alloc(f.len))) elements.push({ key: Buffer.alloc(f.len), end: true });
      for (const x of sorted) {
        elements.push({ key: x.lo, end: false });
        const after = addOne(x.hi);
        if (after) elements.push({ key: after, end: true });
      }
    }
    return { keyType: f.type, keyLen: f.len, origin: f.origin, interval: intervalSet, elements };
  }
}

/** Adjacent equality compares of one payload base, merged as nft merges them. */
function mergePayloads(stmts: readonly Statement[]): Statement[] {
  const out: Statement[] = [];
  for (const s of stmts) {
    const last = out[out.length - 1];
    const a = last?.merge;
    const b = s.merge;
    if (a && b && a.base === b.base && a.offset + a.len === b.offset) {
      const total = a.len + b.len;
      if (total <= 16 && (total <= 4 || a.base === 'll' || a.len > 4 || b.len > 4)) {
        const data = Buffer.concat([a.data, b.data]);
        out[out.length - 1] = { exprs: [{ type: 'payload', base: a.base, offset: a.offset, len: total, dreg: 0 }, { type: 'cmp', op: 'eq', sreg: 0, data }], merge: { base: a.base, offset: a.offset, len: total, data } };
        continue;
      }
    }
    out.push(s);
  }
  return out;
}

/** Rules read, by text: most of a host's rules are the same for every guest. */
const memo = new Map<string, NativeRule>();
const MEMO_MAX = 50_000;

/** A rule's expressions and the sets it carries (not to be changed: shared); an error naming the rule when it is not xennet's grammar. */
export function parseNftRule(text: string): NativeRule {
  const known = memo.get(text);
  if (known) return known;
  let rule: NativeRule;
  try {
    rule = new RuleReader(ruleTokens(text)).read();
  } catch (e) {
    throw new XennetError('internal', `cannot write the rule natively: ${text} (${e instanceof Error ? e.message : String(e)})`);
  }
  if (memo.size >= MEMO_MAX) memo.clear();
  memo.set(text, rule);
  return rule;
}
