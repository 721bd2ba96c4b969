/**
 * The guest firewall as native nftables (pure): xennet's table `bridge xennet`, and `inet xennet`
 * when connection state comes from br_netfilter. Rules are written the way `nft list` prints them.
 *
 * bridge xennet
 *   XN-PRE   base chain, prerouting, priority -310 (before ebtables-nft's nat at -300 and before
 *            the bridge learns the source MAC): `iifname vmap @from_guest` -> XN-O-<vif>, then
 *            the identity guard (nft/guard.ts) for every frame that did not end its walk there:
 *            a guest whose own chains check every source it may carry (sourcesOwnChecked)
 *            accepts what passes them, any other guest's chains return, and a frame from a port
 *            that is no guest's (the uplink, dom0's) misses the map
 *   XN-FWD   base chain, forward, priority -190 (after ebtables-nft's filter at -200, before
 *            br_netfilter at 0): isolation through the sets @guests and @isolated, then
 *            `oifname vmap @to_guest` -> XN-I-<vif> for guests with `inbound: drop`
 *   XN-O-v   from the guest: MAC, ethertypes, then by ethertype: IPv4 to XN-O4-v (DHCP server
 *            guard and DHCP client checks in XN-D4-v, which only UDP port 68 enters), IPv6 to
 *            XN-O6-v (fragment, RA and DHCPv6 server guards, NA targets in XN-N-v), each then
 *            source addresses (XN-S-v), allow_out and the outbound verdict; ARP in XN-O-v itself
 *   XN-I-v   to the guest: tagged frames, non-IP, established and related, then by ethertype:
 *            IPv4 to XN-I4-v (DHCP replies), IPv6 to XN-I6-v (neighbour discovery, DHCPv6
 *            replies), each then allow_in and the inbound verdict
 * inet xennet (connection state `mark`: the kernel has no nf_conntrack_bridge)
 *   XN-CT    base chain, prerouting, priority -170 (after conntrack at -200, before mangle at
 *            -150): bridged packets of established or related connections get mark bit
 *            0x00400000, which XN-I-v reads; XN-PRE clears it on every frame a bridge receives.
 *
 * In the TableRules of table `nftables`, the map and set elements of a vif are the pseudo-chain
 * XN-E-<vif> (one line per element), so that a vif's dispatch entries are diffed, added and
 * removed like its chains; the guard's claimed keys, shared by their owners, are the pseudo-chain
 * XN-CLAIMS; base chains carry their hook line (`type filter hook ...`) as rule 0.
 */
import type { AllowRule } from '../../config/schema.js';
import { cidrSortKey, eui64LinkLocal, hostCidr, type IfName } from '../../net/index.js';
import type { DropReason } from '../drop-reasons.js';
import { DROP_GROUP, DROP_LOG_RATE, DROP_LOG_SET, DROP_LOG_SHARED, dropPrefix } from '../drop-log.js';
import { CHAIN_CLAIMS, compileGuardNft, portClaimLines } from './guard.js';
import { dhcpClientChecked, emptyTable, sourcesOwnChecked, type BridgeConntrack, type Cidr, type ResolvedVif, type TableRules, type TreeMember } from '../model.js';
import { vifChain } from '../names.js';
import { addressSet, ethertypeText, icmpTypes, mark32, naTargetMatch, portSet, rawHex } from './syntax.js';
import { HANDOVER_LIMIT, LEARN_LOG, LEARNED_GUARD, tentativeFrom } from './learned.js';

export const CHAIN_PRE = 'XN-PRE';
export const CHAIN_FWD = 'XN-FWD';
export const CHAIN_CT = 'XN-CT';
/** Mark bit of bridged packets of established or related connections (conntrack `mark`). */
export const MARK_ESTABLISHED = 0x00400000;

export interface BaseChainSpec {
  family: 'bridge' | 'inet';
  hook: 'prerouting' | 'forward';
  priority: number;
  /** The hook line as `nft list` prints it (rule 0 of the chain in TableRules). */
  printed: string;
}

export const BASE_CHAINS: Record<string, BaseChainSpec> = {
  [CHAIN_PRE]: { family: 'bridge', hook: 'prerouting', priority: -310, printed: 'type filter hook prerouting priority dstnat - 10; policy accept;' },
  [CHAIN_FWD]: { family: 'bridge', hook: 'forward', priority: -190, printed: 'type filter hook forward priority filter + 10; policy accept;' },
  [CHAIN_CT]: { family: 'inet', hook: 'prerouting', priority: -170, printed: 'type filter hook prerouting priority -170; policy accept;' },
};

/** xennet's maps and sets in `bridge xennet`, keyed on the bridge port's name. */
export const NFT_SETS = [
  { name: 'from_guest', map: true, target: 'O' },
  { name: 'to_guest', map: true, target: 'I' },
  { name: 'guests', map: false },
  { name: 'isolated', map: false },
  { name: 'learn_reply', map: true, target: 'L' },
] as const;
export type NftSetName = (typeof NFT_SETS)[number]['name'];

/** One line of a vif's XN-E pseudo-chain: `@from_guest "vif1.0" : jump XN-O-vif1.0`. */
export function elementLine(set: NftSetName, vif: string): string {
  const spec = NFT_SETS.find((s) => s.name === set)!;
  return spec.map ? `@${set} "${vif}" : jump ${vifChain(spec.target, vif)}` : `@${set} "${vif}"`;
}

/** Tagged frames: IP inside them would pass the bridge family's checks, which read the outer header. */
const TAGGED = [0x8100, 0x88a8, 0x8864];

/**
 * Constant named sets of `bridge xennet`. Guests' rules use these, or chains of `!=` matches,
 * never anonymous sets: the kernel names and binds each anonymous set by walking every set of
 * the table, which made loading 1000 guests quadratic (3.4 s, most of it there).
 */
export const NFT_CONST_SETS: readonly { name: string; type: 'ether_type' | 'inet_proto'; values: readonly number[] }[] = [
  { name: 'ip_types', type: 'ether_type', values: [0x0800, 0x86dd] },
  // IPv6 extension headers: after a fragment header, one of these means the first fragment may
  // not hold the upper-layer header, so no ICMPv6 or UDP guard could read it.
  { name: 'ipv6_exthdrs', type: 'inet_proto', values: [0, 43, 44, 60, 135] },
  { name: 'tagged_types', type: 'ether_type', values: TAGGED },
];

/** One element of a constant set, as xennet compares it (numbers: nft prints names from files of the host's). */
export const constElementText = (type: 'ether_type' | 'inet_proto', v: number): string => (type === 'ether_type' ? `0x${v.toString(16).padStart(4, '0')}` : String(v));

/**
 * The constant sets' elements as the pseudo-chain XN-CONST, one `@<set> <element>` line each: the
 * guests' address checks match them (`ether type @ip_types drop` is the catch-all of a guest's
 * source check), so an element taken out is a check switched off, and is drift like a rule.
 */
export const CHAIN_CONST = 'XN-CONST';

/** XN-CONST's lines in their one order: by set, then by value. */
export function sortConstLines(lines: Iterable<string>): string[] {
  const rank = (l: string): [number, number, string] => {
    const m = /^@(\S+) (\S+)$/.exec(l);
    const set = NFT_CONST_SETS.findIndex((s) => s.name === m?.[1]);
    const v = m ? Number(m[2]) : NaN;
    return [set < 0 ? NFT_CONST_SETS.length : set, Number.isNaN(v) ? Infinity : v, l];
  };
  return [...new Set(lines)].sort((a, b) => {
    const [sa, va, la] = rank(a);
    const [sb, vb, lb] = rank(b);
    return sa - sb || va - vb || la.localeCompare(lb);
  });
}

export const constSetLines = (): string[] => sortConstLines(NFT_CONST_SETS.flatMap((s) => s.values.map((v) => `@${s.name} ${constElementText(s.type, v)}`)));

const IP_TYPES = 'ether type @ip_types';

/** "None of these": `ether type != ip ether type != arp ...` (a chain of compares, no set). */
const noneOf = (field: string, values: readonly string[]): string => values.map((v) => `${field} != ${v}`).join(' ');

const hostText = (c: Cidr): string => (c.len === (c.family === 'ipv4' ? 32 : 128) ? c.addr : `${c.addr}/${c.len}`);
const sortedCidrs = (cs: readonly Cidr[]): Cidr[] => {
  const seen = new Map<string, Cidr>();
  for (const c of cs) seen.set(cidrSortKey(c), c);
  return [...seen.keys()].sort().map((k) => seen.get(k)!);
};

/** A drop, preceded by its copy to the daemon (drop-log.ts) when the guest logs its drops. */
const logged = (v: ResolvedVif, what: DropReason, match: string, verdict = 'drop'): string[] => {
  const m = match ? `${match} ` : '';
  // (An inbound drop is logged for unicast only: a broadcast or multicast that one guest may send
  // reaches every guest's inbound chain, and would make all of them log at once: drop-log.ts.)
  const unicast = what === 'in' ? 'meta pkttype != broadcast meta pkttype != multicast ' : '';
  // (Then the budget all guests' rules share: DROP_LOG_SHARED.)
  const shared = `add @${DROP_LOG_SET} { ether type limit rate ${DROP_LOG_SHARED.perSecond}/second burst ${DROP_LOG_SHARED.burst} packets }`;
  return [...(v.logDrops ? [`${m}${unicast}limit rate ${DROP_LOG_RATE.perMinute}/minute ${shared} log prefix "${dropPrefix(what, v.name)}" group ${DROP_GROUP}`] : []), `${m}${verdict}`];
};

/**
 * allow_in / allow_out rules as nft rules ending in `verdict` (from the guest's point of view), each with
 * the IP families it is for: `icmp` is ICMP for IPv4 only and `icmpv6` ICMPv6 for IPv6 only
 * (`meta l4proto icmp` alone would also match an IPv6 packet whose next header is 1), so each
 * line goes into the chain of its families' frames.
 */
export function nftAllowLines(rules: readonly AllowRule[], dir: 'in' | 'out', verdict: 'return' | 'accept' = 'return'): { line: string; families: readonly ('ipv4' | 'ipv6')[] }[] {
  const out: { line: string; families: readonly ('ipv4' | 'ipv6')[] }[] = [];
  const field = dir === 'in' ? 'saddr' : 'daddr';
  for (const r of rules) {
    const cidrs = dir === 'in' ? r.from : r.to;
    const families = (['ipv4', 'ipv6'] as const).filter((f) => (r.proto === 'icmp' ? f === 'ipv4' : r.proto === 'icmpv6' ? f === 'ipv6' : true));
    let proto: string;
    if (r.proto === 'tcp' || r.proto === 'udp') proto = r.ports ? `${r.proto} dport ${portSet(r.ports)}` : `meta l4proto ${r.proto}`;
    else if (r.proto === 'icmp') proto = r.icmp_types ? `icmp type ${icmpTypes('ipv4', r.icmp_types)}` : 'meta l4proto icmp';
    else if (r.proto === 'icmpv6') proto = r.icmp_types ? `icmpv6 type ${icmpTypes('ipv6', r.icmp_types)}` : 'meta l4proto ipv6-icmp';
    else proto = '';
    if (!cidrs) {
      out.push({ line: proto ? `${proto} ${verdict}` : `${IP_TYPES} ${verdict}`, families });
      continue;
    }
    for (const f of families) {
      const mine = cidrs.filter((c) => c.family === f);
      if (mine.length === 0) continue;
      out.push({ line: [`${f === 'ipv4' ? 'ip' : 'ip6'} ${field} ${addressSet(f, mine)}`, proto, verdict].filter((x) => x !== '').join(' '), families: [f] });
    }
  }
  return out;
}

/** The allow lines for one family's chain. */
const allowFor = (lines: readonly { line: string; families: readonly ('ipv4' | 'ipv6')[] }[], family: 'ipv4' | 'ipv6'): string[] => lines.filter((l) => l.families.includes(family)).map((l) => l.line);

/** "The DHCP chaddr (UDP payload bytes 28-33) is (`!=`: is not) `mac`". */
const chaddrMatch = (mac: string, op: '' | '!=' = ''): string => `@th,288,48 ${op === '' ? '' : `${op} `}${rawHex(mac.replace(/:/g, ''))}`;

function sourceChain(v: ResolvedVif): string[] | undefined {
  const known = v.ipv4.length > 0 || v.ipv6.length > 0;
  if ((!known && !v.learning) || (!v.antispoof.ipv4 && !v.antispoof.ipv6)) return undefined;
  const s: string[] = [];
  if (v.antispoof.ipv4) {
    for (const c of sortedCidrs(v.ipv4)) s.push(`ip saddr ${hostText(c)} return`);
    if (v.learning) s.push('ip saddr . iifname @learned_ip4 return');
    // Its DHCP client, with its own chaddr where that is checked (a message too short to hold one
    // was not dropped before, as the payload match fails either way: it is dropped here): from
    // 0.0.0.0, and, learning, from any source, since a renewal comes from the address it holds,
    // which is bound again only by the server's answer to it.
    const own = dhcpClientChecked(v) ? ` ${chaddrMatch(v.mac)}` : '';
    s.push(`ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67${own} return`);
    if (v.learning && own !== '') s.push(`ether type ip udp sport 68 udp dport 67${own} return`);
  }
  if (v.antispoof.ipv6) {
    // A learning guest's link-local address is bound like any other, through its DAD (an EUI-64
    // one or a stable-privacy one alike); until then it sends only DAD and MLD from `::`.
    for (const c of sortedCidrs([...v.ipv6, ...(v.mac && !v.learning ? [eui64LinkLocal(v.mac)] : [])])) s.push(`ip6 saddr ${hostText(c)} return`);
    if (v.learning) s.push('ip6 saddr . iifname @learned_ip6 return');
    // Its DHCPv6 client from any link-local source to the servers (a running guest's renewal,
    // before its link-local is bound again).
    if (v.learning) s.push('ip6 saddr fe80::/10 ip6 daddr ff02::1:2 udp sport 546 udp dport 547 return');
    s.push('ip6 saddr :: ip6 daddr ff02::1:ff00:0/104 icmpv6 type nd-neighbor-solicit return');
    s.push('ip6 saddr :: ip6 daddr ff02::16 icmpv6 type mld2-listener-report return');
  }
  // One drop per family, so that each counts (and logs) its own reason.
  if (v.antispoof.ipv4) s.push(...logged(v, 'spoof4', 'ether type ip'));
  if (v.antispoof.ipv6) s.push(...logged(v, 'spoof6', 'ether type ip6'));
  return s;
}

/**
 * The chains of one vif in `bridge xennet`. A frame from the guest is dispatched by its
 * ethertype first: XN-O-v checks the MAC and the ethertype, then sends IPv4 to XN-O4-v and IPv6
 * to XN-O6-v (goto: their end is the end of the guest's checks) and checks ARP itself, so that
 * an IPv4 packet never walks the ARP and IPv6 rules, nor an IPv6 one the IPv4 and ARP rules.
 * A guest whose chains check every source its frames may carry ends them with `accept`: what
 * passes them is done with XN-PRE, the identity guard there after the map has nothing to add.
 */
export function compileVifNft(v: ResolvedVif, conntrack: BridgeConntrack): TableRules {
  const t = emptyTable();
  const O = vifChain('O', v.name);
  const macGuard = v.mac !== undefined && v.antispoof.mac;
  // (The IP inside a tagged frame the guest may send is not checked here: the guard must see it.)
  const ownChecked = sourcesOwnChecked(v) && !TAGGED.some((e) => v.ethertypes.includes(e));
  const o: string[] = [];
  const arp: string[] = [];
  const o4: string[] = [];
  const o6: string[] = [];
  // IPv4 DHCP (UDP port 68 either way), checked in a chain of its own that only such packets
  // enter: every other IPv4 packet passes two rules here instead of all of these.
  const d4: string[] = [];
  if (macGuard) {
    o.push(`ether saddr != ${v.mac} drop`);
    o.push(`${noneOf('ether type', [...new Set([0x0800, 0x0806, 0x86dd, ...v.ethertypes])].sort((a, b) => a - b).map(ethertypeText))} drop`);
  } else if (TAGGED.some((e) => !v.ethertypes.includes(e))) {
    const allowed = TAGGED.filter((e) => v.ethertypes.includes(e));
    o.push(['ether type @tagged_types', ...(allowed.length > 0 ? [noneOf('ether type', allowed.map(ethertypeText))] : []), 'drop'].join(' '));
  }
  if (v.antispoof.arp) {
    // Only Ethernet/IPv4 ARP: the other kinds Linux still accepts carry no checked fields.
    arp.push('arp htype != 1 drop', 'arp ptype != ip drop');
    if (v.mac) arp.push(`arp saddr ether != ${v.mac} drop`);
    if (v.ipv4.length > 0 || v.ipv6.length > 0) arp.push(`${noneOf('arp saddr ip', sortedCidrs([...v.ipv4, hostCidr('ipv4', [0, 0, 0, 0])]).map(hostText))} drop`);
    else if (v.learning) {
      // ARP from a sender not bound here goes to the daemon: a probe (sender 0.0.0.0) or an
      // announcement (gratuitous ARP) binds its address first come first served. Any other
      // sender must be bound to this port.
      arp.push(`arp saddr ip 0.0.0.0 arp operation request ${HANDOVER_LIMIT} ${tentativeFrom('arp daddr ip')} ${LEARN_LOG}`);
      arp.push(`arp saddr ip != 0.0.0.0 arp saddr ip . iifname != @learned_ip4 ${HANDOVER_LIMIT} ${tentativeFrom('arp saddr ip')} ${LEARN_LOG}`);
      arp.push('arp saddr ip != 0.0.0.0 arp saddr ip . iifname != @learned_ip4 drop');
    }
  }
  // Priority-tagged (VLAN 0) frames: receivers take them as untagged (under an 802.1ad tag too,
  // and a second priority tag inside with it), so the IP inside would pass unchecked.
  const vlan0 = [...(v.ethertypes.includes(0x8100) ? ['vlan id 0 drop'] : []), ...(v.ethertypes.includes(0x88a8) ? ['ether type 8021ad vlan id 0 drop'] : [])];
  // A fragmented IPv6 packet whose header chain goes on past the fragment header may hide its
  // ICMPv6 or UDP header from the first fragment (RA-guard evasion, RFC 7113): never legitimate.
  o6.push(...logged(v, 'frag', 'frag nexthdr @ipv6_exthdrs'));
  if (!v.routerAdvertisements) o6.push(...logged(v, 'ra', 'icmpv6 type nd-router-advert'));
  if (!v.dhcpServer) {
    d4.push(...logged(v, 'dhcps', 'ether type ip udp dport 68'));
    o6.push(...logged(v, 'dhcps', 'ether type ip6 udp dport 546'));
  }
  // A DHCP client message is the guest's own only with its own MAC as chaddr: another's would
  // take that client's lease slots at the server (or, learning, its binding's renewals). One too
  // short to hold a chaddr fails the match and is dropped with the rest.
  // A first fragment (its chaddr may lie past its end, and the later fragments carry no UDP
  // header to check) is never a legitimate DHCP message: dropped, nothing reassembles.
  if (dhcpClientChecked(v)) d4.push(...logged(v, 'dhcpc', 'ip frag-off & 8192 != 0 udp sport 68 udp dport 67'), ...logged(v, 'dhcpc', `ether type ip udp sport 68 udp dport 67 ${chaddrMatch(v.mac, '!=')}`));
  const known = v.ipv4.length > 0 || v.ipv6.length > 0;
  if (v.learning && v.mac) {
    // The server replies that are this guest's own go to the daemon, each port with its own rate:
    // a DHCPACK whose chaddr is the guest's MAC (option 53 first, as servers write it; a reply
    // whose first option is another goes too, the daemon reads it whole), a DHCPv6 Reply (msg-type
    // 7). OFFERs, Advertises, and acks for other clients flooded to every port are not read.
    const chaddr = chaddrMatch(v.mac);
    t.chains.set(vifChain('L', v.name), [
      `ether type ip ${chaddr} @th,1984,24 0x350105 ${HANDOVER_LIMIT} ${LEARN_LOG}`,
      `ether type ip ${chaddr} @th,1984,16 != 0x3501 ${HANDOVER_LIMIT} ${LEARN_LOG}`,
      `ether daddr ${v.mac} ether type ip6 @th,64,8 0x7 ${HANDOVER_LIMIT} ${LEARN_LOG}`,
    ]);
  }
  if (v.learning) {
    // What learning reads from the guest: its DAD (binds first come first served), its DHCP
    // and DHCPv6 client messages (a release or decline ends a binding). Rate-limited: a guest
    // cannot flood the daemon.
    if (v.antispoof.ipv6) o6.push(`ip6 saddr :: icmpv6 type nd-neighbor-solicit ${HANDOVER_LIMIT} ${tentativeFrom('@th,64,128')} ${LEARN_LOG}`);
    if (v.antispoof.ipv4) d4.push(`ether type ip udp sport 68 udp dport 67 ${HANDOVER_LIMIT} ${LEARN_LOG}`);
    if (v.antispoof.ipv6) o6.push(`ether type ip6 udp sport 546 udp dport 547 ${HANDOVER_LIMIT} ${LEARN_LOG}`);
  }
  if (v.antispoof.ipv6 && (known || v.learning)) {
    const N = vifChain('N', v.name);
    const targets = [...v.ipv6, ...(v.mac && !v.learning ? [eui64LinkLocal(v.mac)] : [])];
    // No legitimate NA has an extension header before the ICMPv6 header.
    t.chains.set(N, [...logged(v, 'na', 'ip6 nexthdr != ipv6-icmp'), ...targets.map((c) => `${naTargetMatch(c)} return`), ...(v.learning ? ['@th,64,128 . iifname @learned_na return', `ip6 daddr ff02::1 ${HANDOVER_LIMIT} ${tentativeFrom('@th,64,128')} ${LEARN_LOG}`] : []), ...logged(v, 'na', '')]);
    o6.push(`icmpv6 type nd-neighbor-advert jump ${N}`);
  }
  if (d4.length > 0) {
    // Its rules each need port 68 on one side (a non-first fragment, with no UDP header to
    // read, matches neither jump, as it matched none of them). A chain before the rule naming it.
    const D4 = vifChain('D4', v.name);
    t.chains.set(D4, d4);
    o4.unshift(`udp dport 68 jump ${D4}`, `udp sport 68 jump ${D4}`);
  }
  const s = sourceChain(v);
  if (s) {
    const S = vifChain('S', v.name);
    t.chains.set(S, s);
    o4.push(`jump ${S}`);
    o6.push(`jump ${S}`);
  }
  if (v.outbound === 'drop') {
    const allow = nftAllowLines(v.allowOut, 'out', ownChecked ? 'accept' : 'return');
    o4.push(...allowFor(allow, 'ipv4'), ...logged(v, 'out', ''));
    o6.push(...allowFor(allow, 'ipv6'), ...logged(v, 'out', ''));
  } else if (ownChecked) {
    o4.push('accept');
    o6.push('accept');
  }
  // The family chains before XN-O, which names them (a chain is written before a rule names it).
  for (const [kind, type, rules] of [['O4', 'ip', o4], ['O6', 'ip6', o6]] as const) {
    if (rules.length === 0) continue;
    t.chains.set(vifChain(kind, v.name), rules);
    o.push(`ether type ${type} goto ${vifChain(kind, v.name)}`);
  }
  o.push(...arp, ...vlan0, ...(ownChecked ? ['accept'] : []));
  t.chains.set(O, o);

  if (v.inbound === 'drop') {
    // To the guest: tagged frames never, non-IP always, established and related always; then by
    // ethertype, as from the guest: IPv4 to XN-I4, IPv6 to XN-I6 (the end of either: return).
    const i: string[] = [];
    i.push('ether type @tagged_types drop', `${noneOf('ether type', ['ip', 'ip6'])} return`);
    i.push(conntrack === 'bridge' ? 'ct state established,related return' : `meta mark & ${mark32(MARK_ESTABLISHED)} == ${mark32(MARK_ESTABLISHED)} return`);
    const allow = nftAllowLines(v.allowIn, 'in');
    const i4 = ['ether type ip udp sport 67 udp dport 68 return', ...allowFor(allow, 'ipv4'), ...logged(v, 'in', '')];
    const i6 = [...['nd-router-advert', 'nd-neighbor-solicit', 'nd-neighbor-advert'].map((t) => `icmpv6 type ${t} return`), 'ether type ip6 udp sport 547 udp dport 546 return', ...allowFor(allow, 'ipv6'), ...logged(v, 'in', '')];
    for (const [kind, type, rules] of [['I4', 'ip', i4], ['I6', 'ip6', i6]] as const) {
      t.chains.set(vifChain(kind, v.name), rules);
      i.push(`ether type ${type} goto ${vifChain(kind, v.name)}`);
    }
    t.chains.set(vifChain('I', v.name), i);
  }
  // Every drop counts what it drops (status shows a guest's drops).
  for (const [c, rules] of t.chains) t.chains.set(c, rules.map((r) => (r === 'drop' ? 'counter drop' : r.endsWith(' drop') ? `${r.slice(0, -5)} counter drop` : r)));
  return t;
}

/** What the nftables backend cannot check for this guest, as plan/status warnings. */
export function nftWarnings(v: ResolvedVif): string[] {
  const tagged = TAGGED.filter((e) => v.ethertypes.includes(e));
  if (tagged.length === 0) return [];
  return [`allow_ethertypes lets ${tagged.map(ethertypeText).join(', ')} frames out: on the nftables backend the IP inside them is not checked (source address, RA and DHCP guards; VLAN 0 is dropped)`];
}

/** The base chains and every member's map and set elements. */
export function compileSharedNft(members: readonly TreeMember[], conntrack: BridgeConntrack): TableRules {
  const t = emptyTable();
  if (members.length === 0) return t;
  const inbound = members.some((m) => m.inbound);
  const bridges = [...new Set(members.map((m) => m.bridge).filter((b): b is IfName => b !== null))].sort();
  const markState = conntrack === 'mark' && inbound && bridges.length > 0;
  // Per-packet work only for what some guest uses: the mark bit while a guest filters inbound,
  // the forward chain while one does or one is isolated.
  const pre = [BASE_CHAINS[CHAIN_PRE]!.printed];
  if (markState) pre.push(`meta mark set meta mark & ${mark32(~MARK_ESTABLISHED)}`);
  // A guest's chains first: those of a guest that checks every source it may carry end in accept,
  // so that its frames skip the guard's lookups; the others' return, and the guard sees theirs.
  pre.push('iifname vmap @from_guest');
  const guard = compileGuardNft(members);
  pre.push(...guard.rules);
  if (members.some((m) => m.learning)) pre.push(...LEARNED_GUARD.map((g) => g.rule));
  t.chains.set(CHAIN_PRE, pre);
  const fwd = [BASE_CHAINS[CHAIN_FWD]!.printed];
  // A learning guest's DHCP and DHCPv6 replies go to its XN-L chain (which hands its own to the
  // daemon). Only a trusted server's get here: a guest without dhcp_server: true has its replies
  // dropped at prerouting. The ports are compared first (one 32-bit compare): every other packet
  // leaves the rule there, before the map lookup.
  if (members.some((m) => m.learning)) {
    fwd.push('ether type ip udp sport 67 udp dport 68 oifname vmap @learn_reply');
    fwd.push('ether type ip6 udp sport 547 udp dport 546 oifname vmap @learn_reply');
  }
  if (members.some((m) => m.isolated)) fwd.push('iifname @isolated oifname @guests drop', 'iifname @guests oifname @isolated drop');
  if (inbound) fwd.push('oifname vmap @to_guest');
  if (fwd.length > 1) t.chains.set(CHAIN_FWD, fwd);
  if (markState) {
    const names = bridges.map((b) => `"${b}"`);
    t.chains.set(CHAIN_CT, [BASE_CHAINS[CHAIN_CT]!.printed, `iifname ${names.length === 1 ? names[0] : `{ ${names.join(', ')} }`} ct state established,related meta mark set meta mark | ${mark32(MARK_ESTABLISHED)}`]);
  }
  for (const m of members) {
    const e = [elementLine('from_guest', m.name)];
    if (m.inbound) e.push(elementLine('to_guest', m.name));
    e.push(elementLine('guests', m.name));
    if (m.isolated) e.push(elementLine('isolated', m.name));
    if (m.learning) e.push(elementLine('learn_reply', m.name));
    e.push(...portClaimLines(m.name, m.claims));
    t.chains.set(vifChain('E', m.name), e);
  }
  if (guard.keys.length > 0) t.chains.set(CHAIN_CLAIMS, guard.keys);
  t.chains.set(CHAIN_CONST, constSetLines());
  return t;
}

/**
 * Why a rule of a guest's chain drops (TableCodec.dropReason), as the rules compiled above read:
 * XN-O (MAC, ethertype, tagged frames, ARP), XN-O4 and XN-O6 (IPv6 header chains, RA, DHCPv6
 * server, outbound policy), XN-D4 (IPv4 DHCP server and client), XN-S (sources by family), XN-N
 * (NA targets), XN-I (tagged frames), XN-I4 and XN-I6 (inbound policy).
 */
export function nftDropReason(chain: string, rule: string): DropReason | undefined {
  if (!/(^|\s)drop$/.test(rule)) return undefined;
  const kind = /^XN-([A-Z0-9]+)-/.exec(chain)?.[1];
  switch (kind) {
    case 'O':
      if (rule.startsWith('ether saddr != ')) return 'mac';
      if (rule.startsWith('arp ')) return 'arp';
      if (rule.startsWith('ether type @tagged_types') || /\bvlan id 0\b/.test(rule)) return 'tagged';
      return 'ethertype';
    case 'O4':
    case 'O6':
    case 'D4':
      if (rule.startsWith('frag ')) return 'frag';
      if (rule.includes('icmpv6 type nd-router-advert')) return 'ra';
      if (/udp sport 68 udp dport 67\b/.test(rule)) return 'dhcpc';
      if (/udp dport (68|546)\b/.test(rule)) return 'dhcps';
      return 'out';
    case 'S':
      return rule.startsWith('ether type ip6 ') ? 'spoof6' : 'spoof4';
    case 'N':
      return 'na';
    case 'I':
      return 'tagged';
    case 'I4':
    case 'I6':
      return 'in';
    default:
      return undefined;
  }
}
