/**
 * The identity guard on xtables (pure): see claims.ts for what it guards. It runs in ebtables nat
 * PREROUTING, before the bridge learns a frame's source and before br_netfilter hands it to
 * conntrack, reached from the end of the dispatch tree XN-FROM:
 *
 *   XN-ID   frames of a guest whose own chain checked every source it may carry (MAC, ARP, and
 *           IP in iptables; mark bit MARK_OWN_CHECKED) return at once; all others go through
 *   XN-M    a trie over the claimed MACs (source MAC)
 *   XN-A    a trie over the claimed IPv4 addresses (ARP sender); ARP inside a priority tag
 *           (802.1Q VID 0) and 802.1ad frames, whose sender ebtables cannot read and which
 *           guests take as untagged, are dropped
 *
 * IP sources in the raw tables of iptables and ip6tables, from PREROUTING of each bridge with
 * guests: br_netfilter hands them IP from inside VLAN and PPPoE headers too, and a drop there
 * comes before conntrack sees the packet (the kernel confirms a broadcast's connection when the
 * bridge hands it up to dom0, before any filter table):
 *
 *   XN-4    a trie over the claimed IPv4 addresses (IPv4 source)
 *   XN-6    a trie over the claimed IPv6 addresses (IPv6 source)
 *
 * and in ip6tables filter, from the top of XN-FROM (FORWARD and INPUT):
 *
 *   XN-NA   a trie over the claimed IPv6 addresses (target of a neighbour advertisement)
 *
 * Each trie branches on the next hex digit of the key with a prefix match, like the dispatch tree
 * on vif names, so a frame visits a few short chains whatever the number of guests. A leaf returns
 * for each port that owns the key and drops everything else (its counter is the guest's count of
 * claims from other ports).
 */
import { createHash } from 'node:crypto';
import { cidrBytes, inetNtop6, type Cidr } from '../../net/index.js';
import { claimOwners, keyDigits, memoized, parseClaims, type ClaimKind } from '../claims.js';
import type { Claims, TableRules } from '../model.js';
import type { IfName } from '../../net/index.js';
import { buildTree } from '../tree.js';

/** Mark bit (ebtables nat) of frames whose own guest chain checked every source they may carry. */
export const MARK_OWN_CHECKED = 0x800000;

export const CHAIN_ID = 'XN-ID';
export const CHAIN_NA = 'XN-NA';

/** u32 match text for "the NA target address (bytes 48-63 of the packet) is in `c`". */
export function naTargetU32(c: Cidr): string {
  return naTargetU32Bytes(cidrBytes(c), c.len);
}

function naTargetU32Bytes(bytes: readonly number[], len: number): string {
  const parts: string[] = [];
  for (let w = 0; w < 4; w++) {
    const bits = Math.max(0, Math.min(32, len - w * 32));
    if (bits === 0) break;
    const value = ((bytes[w * 4]! << 24) | (bytes[w * 4 + 1]! << 16) | (bytes[w * 4 + 2]! << 8) | bytes[w * 4 + 3]!) >>> 0;
    const mask = bits === 32 ? 0xffffffff : ((0xffffffff << (32 - bits)) >>> 0);
    const off = `0x${(48 + w * 4).toString(16)}`;
    parts.push(bits === 32 ? `${off}=0x${value.toString(16)}` : `${off}&0x${mask.toString(16)}=0x${((value & mask) >>> 0).toString(16)}`);
  }
  return `-m u32 --u32 "${parts.join('&&')}"`;
}

/** The NA is directly after the fixed IPv6 header (next header 58), so its target is at bytes 48-63. */
export const NA_NO_EXTENSION_HEADERS = '-m u32 ! --u32 "0x4&0xff00=0x3a00"';

const hex2 = (b: number): string => b.toString(16).padStart(2, '0');

/** The bytes and length (bits) of a digit prefix (`pattern` may end with the wildcard `+`). */
function prefixOf(pattern: string, digits: number): { bytes: number[]; bits: number } {
  const p = pattern.endsWith('+') ? pattern.slice(0, -1) : pattern;
  const full = p.padEnd(digits, '0');
  const bytes: number[] = [];
  for (let i = 0; i < digits; i += 2) bytes.push(Number.parseInt(full.slice(i, i + 2), 16));
  return { bytes, bits: p.length * 4 };
}

function macMatch(pattern: string): string {
  const { bytes, bits } = prefixOf(pattern, 12);
  const mac = bytes.map(hex2).join(':');
  if (bits === 48) return `-s ${mac}`;
  const mask = bytes.map((_, i) => hex2(i * 8 + 8 <= bits ? 0xff : i * 8 >= bits ? 0 : (0xff << (8 - (bits - i * 8))) & 0xff)).join(':');
  return `-s ${mac}/${mask}`;
}

/** An address or prefix as the ebtables options print it (`192.168.0.96/28`, a host without a length). */
function addressArg(family: 'ipv4' | 'ipv6', pattern: string): string {
  const { bytes, bits } = prefixOf(pattern, family === 'ipv4' ? 8 : 32);
  const text = family === 'ipv4' ? bytes.join('.') : inetNtop6(bytes);
  return bits === (family === 'ipv4' ? 32 : 128) ? text : `${text}/${bits}`;
}

const hashed = (p: string): string => createHash('sha1').update(p).digest('hex').slice(0, 10);

interface Trie {
  kind: ClaimKind;
  table: 'ebnat' | 'ipv4raw' | 'ipv6raw' | 'ipv6';
  root: string;
  chainFor(prefix: string): string;
  /** The match of a digit prefix, or of a whole key. */
  match(pattern: string): string;
  /** "From port p" in the leaf rules. */
  fromPort(port: IfName): string;
}

/** An address or prefix as iptables-save prints it (always with its length). */
function cidrArg(family: 'ipv4' | 'ipv6', pattern: string): string {
  const { bytes, bits } = prefixOf(pattern, family === 'ipv4' ? 8 : 32);
  return `${family === 'ipv4' ? bytes.join('.') : inetNtop6(bytes)}/${bits}`;
}

const physdevIn = (p: IfName): string => `-m physdev --physdev-in ${p}`;

const TRIES: readonly Trie[] = [
  { kind: 'mac', table: 'ebnat', root: 'XN-M', chainFor: (p) => `XN-M-${p}`, match: macMatch, fromPort: (p) => `-i ${p}` },
  { kind: 'ipv4', table: 'ebnat', root: 'XN-A', chainFor: (p) => `XN-A-${p}`, match: (p) => `-p ARP --arp-ip-src ${addressArg('ipv4', p)}`, fromPort: (p) => `-i ${p}` },
  { kind: 'ipv4', table: 'ipv4raw', root: 'XN-4', chainFor: (p) => `XN-4-${p}`, match: (p) => `-s ${cidrArg('ipv4', p)}`, fromPort: physdevIn },
  { kind: 'ipv6', table: 'ipv6raw', root: 'XN-6', chainFor: (p) => `XN-6-${hashed(p)}`, match: (p) => `-s ${cidrArg('ipv6', p)}`, fromPort: physdevIn },
  {
    kind: 'ipv6',
    table: 'ipv6',
    root: CHAIN_NA,
    chainFor: (p) => `XN-NA-${hashed(p)}`,
    match: (p) => {
      const { bytes, bits } = prefixOf(p, 32);
      return naTargetU32Bytes(bytes, bits);
    },
    fromPort: physdevIn,
  },
];

/** A trie's match for a prefix or key, and its node chain's name (computed once each). */
const matchOf = (t: Trie, pattern: string): string => memoized(`m ${t.root} ${pattern}`, () => t.match(pattern));
const chainOf = (t: Trie, prefix: string): string => memoized(`c ${t.root} ${prefix}`, () => t.chainFor(prefix));

/** A leaf's rule that lets one owner port through, in the order the save tools print it. */
function ownerRule(t: Trie, match: string, port: IfName): string {
  // ebtables-save prints the protocol first, then the input port, then the protocol's options;
  // iptables-save the source address before the matches.
  const m = /^(-p \S+) (.*)$/.exec(match);
  if (t.table === 'ebnat') return m ? `${m[1]} ${t.fromPort(port)} ${m[2]} -j RETURN` : `${match} ${t.fromPort(port)} -j RETURN`;
  return match.startsWith('-s ') ? `${match} ${t.fromPort(port)} -j RETURN` : `${t.fromPort(port)} ${match} -j RETURN`;
}


export interface GuardRules {
  ebnat: TableRules['chains'];
  ipv4raw: TableRules['chains'];
  ipv6raw: TableRules['chains'];
  ipv6: TableRules['chains'];
  /** The first rule of XN-FROM in ip6tables (into XN-NA), when IPv6 addresses are claimed. */
  fromIpv6: string[];
  /** The root jumps of raw PREROUTING, per bridge with guests (into XN-4, XN-6). */
  raw: { ipv4raw: ((bridge: string) => string) | undefined; ipv6raw: ((bridge: string) => string) | undefined };
}

const markHex = `0x${MARK_OWN_CHECKED.toString(16)}`;
/** Frames whose own guest chain did not check every source they may carry. */
const unchecked = `-m mark ! --mark ${markHex}/${markHex}`;

/** The guard's chains for these members (empty when nobody claims anything). */
export function compileGuardXtables(members: readonly { name: IfName; claims?: Claims | undefined }[]): GuardRules {
  const out: GuardRules = { ebnat: new Map(), ipv4raw: new Map(), ipv6raw: new Map(), ipv6: new Map(), fromIpv6: [], raw: { ipv4raw: undefined, ipv6raw: undefined } };
  const owners = claimOwners(members);
  const entry: string[] = [`--mark ${markHex}/${markHex} -j RETURN`];
  for (const t of TRIES) {
    const keys = owners[t.kind];
    if (keys.size === 0) continue;
    const byDigits = new Map([...keys].map(([k, ports]) => [keyDigits(t.kind, k), ports]));
    const chains = buildTree(byDigits.keys(), {
      root: t.root,
      chainFor: (p) => chainOf(t, p),
      match: (p) => matchOf(t, p),
      leaf: () => '',
      leafRules: (d) => {
        const match = matchOf(t, d);
        return [...byDigits.get(d)!.map((p) => ownerRule(t, match, p)), `${match} -j DROP`];
      },
      verb: '-j',
    });
    if (t.root === CHAIN_NA) {
      // An extension header before the ICMPv6 header moves the target off the offsets u32 reads.
      chains.set(t.root, [`${NA_NO_EXTENSION_HEADERS} -j DROP`, ...chains.get(t.root)!]);
      out.fromIpv6.push(`-p ipv6-icmp -m icmp6 --icmpv6-type 136 -j ${CHAIN_NA}`);
    } else if (t.table === 'ipv4raw' || t.table === 'ipv6raw') {
      const root = t.root;
      out.raw[t.table] = (bridge) => `-i ${bridge} -m physdev --physdev-is-in ${unchecked} -j ${root}`;
    } else if (t.kind === 'mac') entry.push(`-j ${t.root}`);
    else {
      entry.push(`-p ARP -j ${t.root}`);
      // ARP the arp match cannot read, which guests take as untagged: in a priority tag, or
      // behind an 802.1ad tag (ebtables cannot see its VLAN id).
      entry.push('-p 802_1Q --vlan-id 0 --vlan-encap 0806 -j DROP', '-p 0x88a8 -j DROP');
    }
    for (const [c, r] of chains) out[t.table].set(c, r);
  }
  if (entry.length > 1) out.ebnat.set(CHAIN_ID, entry);
  return out;
}

/** The leaf drop rules of one claimed key, per table (for the counters `status` shows). */
export function claimDropRules(kind: ClaimKind, key: string): { table: 'ebnat' | 'ipv4raw' | 'ipv6raw' | 'ipv6'; rule: string }[] {
  return TRIES.filter((t) => t.kind === kind).map((t) => ({ table: t.table, rule: `${matchOf(t, keyDigits(kind, key))} -j DROP` }));
}

/** Chains of the guard (tries and entry), by name. */
export const isGuardChain = (c: string): boolean => c === CHAIN_ID || TRIES.some((t) => c === t.root || c.startsWith(`${t.root}-`));

/**
 * What a port owns as the live guard shows it (its leaves' RETURN rules in ebtables nat and
 * ip6tables), for a guest adopted from the live rules without a record: its claims stay guarded.
 */
export function claimsFromGuardLive(tables: readonly ReadonlyMap<string, readonly string[]>[], port: string): Claims | undefined {
  const out: Claims = { mac: [], ipv4: [], ipv6: [] };
  const escaped = port.replace(/[.+]/g, '\\$&');
  const fromPort = new RegExp(`(^| )(-i|--physdev-in) ${escaped}( |$)`);
  for (const chains of tables) {
    for (const [c, rules] of chains) {
      if (!isGuardChain(c)) continue;
      for (const r of rules) {
        if (!r.endsWith(' -j RETURN') || !fromPort.test(r)) continue;
        const mac = /(?:^| )-s ([0-9a-fA-F:]+)(?: |$)/.exec(r)?.[1];
        const v4 = /--arp-ip-src (\S+)/.exec(r)?.[1];
        const v6 = /(?:^| )-s ([0-9a-f:]+)\/128(?: |$)/.exec(r)?.[1];
        if (mac && mac.split(':').length === 6) out.mac.push(mac.split(':').map((x) => x.padStart(2, '0')).join(':').toLowerCase());
        if (v4 && !v4.includes('/')) out.ipv4.push(v4);
        if (v6) out.ipv6.push(v6);
      }
    }
  }
  return parseClaims(out);
}

/** The ports the live guard lets through somewhere (owners of a claimed key). */
export function guardPorts(chains: ReadonlyMap<string, readonly string[]>): Set<string> {
  const out = new Set<string>();
  for (const [c, rules] of chains) {
    if (!isGuardChain(c)) continue;
    for (const r of rules) {
      const m = r.endsWith(' -j RETURN') ? /(?:^| )(?:-i|--physdev-in) (\S+)/.exec(r) : null;
      if (m) out.add(m[1]!);
    }
  }
  return out;
}
