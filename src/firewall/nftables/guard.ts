/**
 * The identity guard on nftables (pure): see claims.ts for what it guards. In XN-PRE (bridge
 * prerouting, before the bridge learns a frame's source and before br_netfilter's conntrack), one
 * rule per kind drops a frame whose source is claimed by a guest and does not come in on one of
 * that guest's ports:
 *
 *   ether saddr . iifname != @id_mac_port ether saddr @id_mac counter drop
 *
 * Two sets per kind: `id_<kind>_port` holds (key, port) pairs, each pair one port's own (so a
 * guest's pairs are its XN-E elements, added and removed with it); `id_<kind>` holds the keys
 * (the pseudo-chain XN-CLAIMS, shared by every port that owns a key). The second lookup runs only
 * for frames the first found foreign, so the counters of `id_<kind>`'s elements count each
 * guest's claims from other ports. The NA target is read raw (`@th,64,128`, nft 1.0.6 has no
 * `icmpv6 taddr`), so it has sets of its own with raw keys.
 */
import { LEARNED_GUARD } from './learned.js';
import { CLAIM_KINDS, claimOwners, parseClaims, type ClaimKind } from '../claims.js';
import { raw128 } from './syntax.js';
import type { Claims } from '../model.js';
import type { IfName } from '../../net/index.js';

export const CHAIN_CLAIMS = 'XN-CLAIMS';

export interface ClaimSetSpec {
  kind: ClaimKind;
  /** The set of claimed keys (with per-element counters) and the set of (key, port) pairs. */
  keys: string;
  ports: string;
  /** Declarations as `add set` takes them. */
  keysType: string;
  portsType: string;
  /** The guard rule in XN-PRE, as `nft list` prints it (without its counter's values). */
  rule: string;
  /**
   * The rule as written, when nft would otherwise pick a dependency that misses tagged frames:
   * `arp ...` and `icmpv6 ...` depend on the Ethernet type by default, which the bridge family
   * reads with the VLAN tag put back (802.1Q or 802.1ad, VID 0 included, which receivers take as
   * untagged); `meta protocol` is the protocol inside the tag. nft lists both the same way.
   */
  written?: string;
  /** An element's key as nft prints it. */
  print(key: string): string;
}


export const CLAIM_SETS: readonly ClaimSetSpec[] = [
  { kind: 'mac', keys: 'id_mac', ports: 'id_mac_port', keysType: 'type ether_addr; counter;', portsType: 'type ether_addr . ifname;', rule: 'ether saddr . iifname != @id_mac_port ether saddr @id_mac counter drop', print: (k) => k },
  { kind: 'ipv4', keys: 'id_ip4', ports: 'id_ip4_port', keysType: 'type ipv4_addr; counter;', portsType: 'type ipv4_addr . ifname;', rule: 'arp saddr ip . iifname != @id_ip4_port arp saddr ip @id_ip4 counter drop', written: 'meta protocol arp arp saddr ip . iifname != @id_ip4_port arp saddr ip @id_ip4 counter drop', print: (k) => k },
  { kind: 'ipv4', keys: 'id_ip4', ports: 'id_ip4_port', keysType: 'type ipv4_addr; counter;', portsType: 'type ipv4_addr . ifname;', rule: 'ip saddr . iifname != @id_ip4_port ip saddr @id_ip4 counter drop', print: (k) => k },
  { kind: 'ipv6', keys: 'id_ip6', ports: 'id_ip6_port', keysType: 'type ipv6_addr; counter;', portsType: 'type ipv6_addr . ifname;', rule: 'ip6 saddr . iifname != @id_ip6_port ip6 saddr @id_ip6 counter drop', print: (k) => k },
  { kind: 'ipv6', keys: 'id_na', ports: 'id_na_port', keysType: 'typeof @th,64,128; counter;', portsType: 'typeof @th,64,128 . iifname;', rule: 'icmpv6 type nd-neighbor-advert @th,64,128 . iifname != @id_na_port @th,64,128 @id_na counter drop', written: 'meta protocol ip6 icmpv6 type nd-neighbor-advert @th,64,128 . iifname != @id_na_port @th,64,128 @id_na counter drop', print: raw128 },
];

/** Every set of the guard once (declarations): name and type. */
export const CLAIM_SET_DECLS: readonly { name: string; type: string }[] = [...new Map(CLAIM_SETS.flatMap((s) => [[s.keys, s.keysType], [s.ports, s.portsType]] as [string, string][])).entries()].map(([name, type]) => ({ name, type }));

const setRank = new Map(CLAIM_SET_DECLS.map((d, i) => [d.name, i]));
/** Whether an element line (`@set ...`) belongs to one of the guard's sets. */
export const isClaimLine = (line: string): boolean => setRank.has(/^@(\S+) /.exec(line)?.[1] ?? '');

/** Element lines in one order (set, then text), so compiled and listed lines compare. */
export function sortClaimLines(lines: string[]): string[] {
  const rank = (l: string): number => setRank.get(/^@(\S+) /.exec(l)?.[1] ?? '') ?? 99;
  return lines.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/** The sets a kind writes (keys and ports), once each. */
const setsOf = (kind: ClaimKind): ClaimSetSpec[] => [...new Map(CLAIM_SETS.filter((s) => s.kind === kind).map((s) => [s.keys, s])).values()];

/** XN-E lines of one port: its (key, port) pairs. */
export function portClaimLines(name: IfName, claims: Claims | undefined): string[] {
  if (!claims) return [];
  const out: string[] = [];
  for (const k of CLAIM_KINDS) for (const s of setsOf(k)) for (const key of claims[k]) out.push(`@${s.ports} ${s.print(key)} . "${name}"`);
  return sortClaimLines(out);
}

/** The guard's rules in XN-PRE and the shared key elements (XN-CLAIMS), for these members. */
export function compileGuardNft(members: readonly { name: IfName; claims?: Claims | undefined }[]): { rules: string[]; keys: string[] } {
  const owners = claimOwners(members);
  const rules = CLAIM_SETS.filter((s) => owners[s.kind].size > 0).map((s) => s.rule);
  const keys: string[] = [];
  for (const k of CLAIM_KINDS) for (const s of setsOf(k)) for (const key of owners[k].keys()) keys.push(`@${s.keys} ${s.print(key)}`);
  return { rules, keys: sortClaimLines(keys) };
}

/** The element lines (`@id_mac 00:16:3e:...`) that count one key's claims from other ports. */
export function claimKeyLines(kind: ClaimKind, key: string): string[] {
  return setsOf(kind).map((s) => `@${s.keys} ${s.print(key)}`);
}

/** A guest's claims as its XN-E elements show them (for a guest adopted from the live rules). */
export function claimsFromPortLines(lines: readonly string[]): Claims | undefined {
  const out: Claims = { mac: [], ipv4: [], ipv6: [] };
  for (const l of lines) {
    const m = /^@(id_mac|id_ip4|id_ip6)_port (\S+) \. "[^"]*"$/.exec(l);
    if (m) out[m[1] === 'id_mac' ? 'mac' : m[1] === 'id_ip4' ? 'ipv4' : 'ipv6'].push(m[2]!);
  }
  return parseClaims(out);
}

/** A rule of XN-PRE as it is to be written (see ClaimSetSpec.written). */
export function writtenRule(rule: string): string {
  return CLAIM_SETS.find((s) => s.rule === rule)?.written ?? LEARNED_GUARD.find((g) => g.rule === rule)?.written ?? rule;
}
