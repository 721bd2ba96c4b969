/**
 * The xtables driver's compiler: the guest firewall as iptables and ip6tables filter rules and
 * ebtables nat and filter rules (pure). Rules are written the way `*-save` prints them, so live
 * and desired compare as text.
 *
 * Per vif (v = vif name):
 *   XN-E-v   ebtables nat PREROUTING, from the guest, before the bridge learns the source:
 *            source MAC, the guest marks (for isolation), ARP sender MAC and IP, ethertypes
 *   XN-O-v   iptables, from the guest: DHCP/DHCPv6 server and RA guards, source check (XN-S-v),
 *            NA target check (XN-N-v, IPv6), allow_out, outbound verdict
 *   XN-I-v   iptables, to the guest (inbound: drop): established/related, neighbour discovery,
 *            DHCP replies to the client, allow_in, inbound verdict
 * Shared: the dispatch trees XN-FROM (input port; iptables and ebtables nat) and XN-TO (output
 * port), XN-FORWARD, the isolation tree XN-ISO (ebtables filter FORWARD, when a guest is
 * isolated), and the root jumps: FORWARD/INPUT per bridge (iptables), PREROUTING (ebtables nat),
 * FORWARD (ebtables filter).
 */
import type { AllowRule } from '../../config/schema.js';
import { eui64LinkLocal, parseCidr, type Cidr } from '../../net/index.js';
import { CHAIN_ID, compileGuardXtables, MARK_OWN_CHECKED, NA_NO_EXTENSION_HEADERS, naTargetU32 } from './guard.js';
import type { DropReason } from '../drop-reasons.js';
import { DROP_GROUP, DROP_LOG_HASHLIMIT, DROP_LOG_RATE, DROP_LOG_SHARED, dropPrefix } from '../drop-log.js';
import { cidrText, dhcpClientChecked, emptyRuleSet, sourcesOwnChecked, type ResolvedVif, type RuleSet, type TableRules, type TreeMember, type XtablesTable } from '../model.js';
import { CHAIN_FORWARD, CHAIN_FROM, CHAIN_TO, treeChain, vifChain } from '../names.js';
import { CHAIN_DEFEND, CHAIN_LEARN, DEFEND_CHAIN_RULES, LEARN_CHAIN_RULES, LEARN_RATE, learnedSourceMatch, nflogTarget } from './learned.js';
import { DEFEND_PREFIX, HANDOVER_RATE, LEARN_GROUP, LEARN_PREFIX } from '../learning/log.js';
import { buildTree } from '../tree.js';

export { naTargetU32 } from './guard.js';

type Family = 'ipv4' | 'ipv6';

/** A drop's copy to the daemon (drop-log.ts), as `*-save` prints it. */
// (An inbound drop is logged for unicast only: a broadcast or multicast that one guest may send
// reaches every guest's inbound chain, and would make all of them log at once: drop-log.ts.)
// (Then the budget all guests' rules share: DROP_LOG_SHARED.)
const logRule = (v: ResolvedVif, what: DropReason): string[] =>
  v.logDrops
    ? [`${what === 'in' ? '-m pkttype ! --pkt-type broadcast -m pkttype ! --pkt-type multicast ' : ''}-m limit --limit ${DROP_LOG_RATE.perMinute}/min -m hashlimit --hashlimit-upto ${DROP_LOG_SHARED.perSecond}/sec --hashlimit-burst ${DROP_LOG_SHARED.burst} --hashlimit-name ${DROP_LOG_HASHLIMIT} -j NFLOG --nflog-prefix "${dropPrefix(what, v.name)}" --nflog-group ${DROP_GROUP}`]
    : [];
const dropWithLog = (v: ResolvedVif, what: DropReason, match = ''): string[] => [...logRule(v, what).map((l) => (match ? `${match} ${l}` : l)), `${match ? `${match} ` : ''}-j DROP`];

/** multiport takes at most 15 ports per rule, and a range counts as two. */
export function multiportGroups(ports: readonly string[]): string[][] {
  const groups: string[][] = [];
  let cur: string[] = [];
  let used = 0;
  for (const p of ports) {
    const w = p.includes(':') ? 2 : 1;
    if (used + w > 15) {
      groups.push(cur);
      cur = [];
      used = 0;
    }
    cur.push(p);
    used += w;
  }
  if (cur.length > 0) groups.push(cur);
  return groups;
}

/** Allow-rule lines for one family (rules whose addresses are of the other family are skipped). */
export function allowLines(rules: AllowRule[], dir: 'in' | 'out', family: Family): string[] {
  const out: string[] = [];
  for (const r of rules) {
    if (r.proto === 'icmp' && family !== 'ipv4') continue;
    if (r.proto === 'icmpv6' && family !== 'ipv6') continue;
    const cidrs = dir === 'in' ? r.from : r.to;
    const mine = cidrs?.filter((c) => c.family === family);
    if (cidrs && mine!.length === 0) continue;
    const addrs: (string | undefined)[] = mine ? mine.map(cidrText) : [undefined];
    const protoParts: string[] = [];
    if (r.proto === 'tcp' || r.proto === 'udp') {
      if (!r.ports) protoParts.push(`-p ${r.proto}`);
      else {
        // A range of one port ("80-80") is the port: multiport refuses `80:80`.
        const ports = r.ports.map((p) => {
          const [a, b] = String(p).split('-');
          return b === undefined || a === b ? a! : `${a}:${b}`;
        });
        if (ports.length === 1) protoParts.push(`-p ${r.proto} -m ${r.proto} --dport ${ports[0]}`);
        else for (const group of multiportGroups(ports)) protoParts.push(`-p ${r.proto} -m multiport --dports ${group.join(',')}`);
      }
    } else if (r.proto === 'icmp' || r.proto === 'icmpv6') {
      const p = family === 'ipv4' ? '-p icmp -m icmp --icmp-type' : '-p ipv6-icmp -m icmp6 --icmpv6-type';
      if (r.icmp_types) for (const t of r.icmp_types) protoParts.push(`${p} ${t}`);
      else protoParts.push(family === 'ipv4' ? '-p icmp' : '-p ipv6-icmp');
    } else {
      protoParts.push('');
    }
    for (const a of addrs) {
      for (const pp of protoParts) {
        const addr = a === undefined ? '' : `${dir === 'in' ? '-s' : '-d'} ${a}`;
        out.push([addr, pp, '-j RETURN'].filter((x) => x !== '').join(' '));
      }
    }
  }
  return out;
}

/** Mark bits set on frames from guest ports (ebtables nat), read by the isolation checks. */
export const MARK_GUEST = 0x100000;
export const MARK_ISOLATED = 0x200000;
/** Frames from a guest with `dhcp_server: true` (learning reads their DHCPv6 replies). */
export const MARK_DHCP_SERVER = 0x400000;
const hex = (n: number): string => `0x${n.toString(16)}`;

/** Whether a guest's ebtables nat chain (XN-E) marks its frames isolated. */
export function isolatedByEbChain(rules: readonly string[]): boolean {
  return rules.some((r) => {
    const m = /--mark-or (0x[0-9a-f]+)/.exec(r);
    return m !== null && (Number.parseInt(m[1]!, 16) & MARK_ISOLATED) !== 0;
  });
}

function ipChains(v: ResolvedVif, family: Family, t: TableRules): void {
  const O = vifChain('O', v.name);
  const I = vifChain('I', v.name);
  const S = vifChain('S', v.name);
  const N = vifChain('N', v.name);
  const addrs = family === 'ipv4' ? v.ipv4 : v.ipv6;
  const known = v.ipv4.length > 0 || v.ipv6.length > 0;
  const spoof = family === 'ipv4' ? v.antispoof.ipv4 : v.antispoof.ipv6;
  const clientPort = family === 'ipv4' ? 68 : 546;
  const serverPort = family === 'ipv4' ? 67 : 547;

  const o: string[] = [];
  if (family === 'ipv6' && !v.routerAdvertisements) o.push(...dropWithLog(v, 'ra', '-p ipv6-icmp -m icmp6 --icmpv6-type 134'));
  // Anything to the DHCP client port is a server's answer, whatever its source port.
  if (!v.dhcpServer) o.push(...dropWithLog(v, 'dhcps', `-p udp -m udp --dport ${clientPort}`));
  // A DHCP client message is the guest's own only with its own MAC as chaddr: another's would
  // take that client's lease slots at the server (or, learning, its binding's renewals).
  if (family === 'ipv4' && dhcpClientChecked(v)) o.push(...dropWithLog(v, 'dhcpc', `-p udp -m udp --sport 68 --dport 67 -m u32 ! --u32 "${chaddrU32(v.mac)}"`));
  if (spoof && (known || v.learning)) {
    const s: string[] = addrs.map((c) => `-s ${cidrText(c)} -j RETURN`);
    // A learning guest's sources are its bindings in the kernel's set (they end with their lease).
    if (v.learning) s.push(`${learnedSourceMatch(family, v.name)} -j RETURN`);
    if (family === 'ipv4') {
      s.push('-s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 --dport 67 -j RETURN');
      // Its DHCP client from any source, with its own chaddr (checked again: a message too short
      // to hold one must not pass): a renewal comes from the address it holds, which is bound
      // again only by the server's answer to it.
      if (v.learning && dhcpClientChecked(v)) s.push(`-p udp -m udp --sport 68 --dport 67 -m u32 --u32 "${chaddrU32(v.mac)}" -j RETURN`);
    } else {
      const targets = [...addrs, ...learnedCidrs(v, 'ipv6')];
      // A learning guest's link-local address is bound like any other, through its DAD.
      if (v.mac && !v.learning) {
        const ll = eui64LinkLocal(v.mac);
        s.push(`-s ${cidrText(ll)} -j RETURN`);
        targets.push(ll);
      }
      // Its DHCPv6 client from any link-local source to the servers (a running guest's renewal,
      // before its link-local is bound again).
      if (v.learning) s.push('-s fe80::/10 -d ff02::1:2/128 -p udp -m udp --sport 546 --dport 547 -j RETURN');
      s.push('-s ::/128 -d ff02::1:ff00:0/104 -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j RETURN');
      s.push('-s ::/128 -d ff02::16/128 -p ipv6-icmp -m icmp6 --icmpv6-type 143 -j RETURN');
      // An extension header before the ICMPv6 header would move the target off the offsets the
      // u32 matches read: such an NA is never legitimate, so it is dropped.
      t.chains.set(N, [...dropWithLog(v, 'na', NA_NO_EXTENSION_HEADERS), ...targets.map((c) => `${naTargetU32(c)} -j RETURN`), ...dropWithLog(v, 'na')]);
      o.push(`-p ipv6-icmp -m icmp6 --icmpv6-type 136 -j ${N}`);
    }
    s.push(...dropWithLog(v, family === 'ipv4' ? 'spoof4' : 'spoof6'));
    t.chains.set(S, s);
    o.push(`-j ${S}`);
  }
  if (v.outbound === 'drop') o.push(...allowLines(v.allowOut, 'out', family), ...dropWithLog(v, 'out'));
  t.chains.set(O, o);

  const i: string[] = [];
  if (v.learning && v.mac) {
    if (family === 'ipv4' && spoof) {
      // Its own DHCPACKs (chaddr its MAC; option 53 first, as servers write it, or a reply whose
      // first option is another, which the daemon reads whole) go to the daemon. A server on a
      // guest without dhcp_server never gets this far: its own chains dropped the reply.
      const chaddr = chaddrU32(v.mac);
      i.push(`-p udp -m udp --sport 67 --dport 68 -m u32 --u32 "${chaddr}&&0x0>>0x16&0x3c@0xf8>>0x8=0x350105" ${nflogTarget(LEARN_PREFIX)}`);
      i.push(`-p udp -m udp --sport 67 --dport 68 -m u32 --u32 "${chaddr}&&0x0>>0x16&0x3c@0xf8>>0x10=0x0:0x3500,0x3502:0xffff" ${nflogTarget(LEARN_PREFIX)}`);
    }
  }
  if (v.inbound === 'drop') {
    i.push('-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN');
    if (family === 'ipv6') for (const type of [134, 135, 136]) i.push(`-p ipv6-icmp -m icmp6 --icmpv6-type ${type} -j RETURN`);
    // The guest's own DHCP: offers and acks (to a broadcast or its new address) are not
    // "established" in conntrack. Only server port to client port.
    i.push(`-p udp -m udp --sport ${serverPort} --dport ${clientPort} -j RETURN`);
    i.push(...allowLines(v.allowIn, 'in', family), ...dropWithLog(v, 'in'));
  }
  t.chains.set(I, i);
}

/**
 * The L2 chain, in ebtables nat PREROUTING: it runs before the bridge learns a frame's source
 * MAC, so a forged source neither passes nor moves a forwarding-database entry.
 */
function ebChain(v: ResolvedVif, t: TableRules): void {
  const e: string[] = [];
  const macGuard = v.mac !== undefined && v.antispoof.mac;
  const known = v.ipv4.length > 0 || v.ipv6.length > 0;
  // Every source its frames may carry is checked by its own chains (MAC and ARP here, IP in
  // iptables before conntrack confirms anything): the identity guard need not look at them.
  const ownChecked = sourcesOwnChecked(v);
  if (macGuard) e.push(`-s ! ${v.mac} -j DROP`);
  e.push(`-j mark --mark-or ${hex(MARK_GUEST | (v.isolation ? MARK_ISOLATED : 0) | (ownChecked ? MARK_OWN_CHECKED : 0) | (v.dhcpServer ? MARK_DHCP_SERVER : 0))} --mark-target CONTINUE`);
  if (v.learning) {
    // What learning reads from the guest, once per frame (before it is forwarded to many ports):
    // its DAD and announcements, and its DHCP and DHCPv6 client messages (a release ends a binding).
    if (v.antispoof.ipv6) {
      e.push(`-p IPv6 --ip6-src :: --ip6-proto ipv6-icmp --ip6-icmp-type neighbour-solicitation ${LEARN_RATE} -j ${CHAIN_LEARN}`);
      e.push(`-p IPv6 --ip6-dst ff02::1 --ip6-proto ipv6-icmp --ip6-icmp-type neighbour-advertisement ${LEARN_RATE} -j ${CHAIN_LEARN}`);
      e.push(`-p IPv6 --ip6-proto udp --ip6-sport 546 --ip6-dport 547 ${LEARN_RATE} -j ${CHAIN_LEARN}`);
    }
    if (v.antispoof.ipv4) e.push(`-p IPv4 --ip-proto udp --ip-sport 68 --ip-dport 67 ${LEARN_RATE} -j ${CHAIN_LEARN}`);
  }
  // IP frames (the bulk of the traffic) leave right after the MAC check; ARP is checked next.
  if (macGuard) for (const p of ['IPv4', 'IPv6']) e.push(`-p ${p} -j RETURN`);
  if (v.antispoof.arp) {
    // The arp match does not apply (even negated) to ARP for other hardware or protocols, which
    // Linux still accepts (hardware type 6): only Ethernet/IPv4 ARP leaves the guest.
    e.push('-p ARP --arp-htype ! 1 -j DROP', '-p ARP --arp-ptype ! 0x800 -j DROP');
  }
  if (v.mac && v.antispoof.arp) e.push(`-p ARP --arp-mac-src ! ${v.mac} -j DROP`);
  // (A learning guest's ARP senders are its IPv4 bindings: none to check with IPv4 anti-spoofing off.)
  const arpChecked = v.antispoof.arp && (known || (v.learning && v.antispoof.ipv4));
  if (arpChecked) {
    for (const c of [...v.ipv4, ...learnedCidrs(v, 'ipv4')]) e.push(`-p ARP --arp-ip-src ${c.len === 32 ? c.addr : cidrText(c)} -j RETURN`);
    // A learning guest's probe (sender 0.0.0.0) and announcement (a sender not bound here) go
    // to the daemon: they bind their address first come, first served.
    if (v.learning) e.push(`-p ARP --arp-op Request --arp-ip-src 0.0.0.0 ${LEARN_RATE} -j ${CHAIN_LEARN}`);
    e.push('-p ARP --arp-ip-src 0.0.0.0 -j RETURN');
    if (v.learning) e.push(`-p ARP ${LEARN_RATE} -j ${CHAIN_LEARN}`);
    e.push('-p ARP -j DROP');
  }
  if (macGuard) {
    if (!arpChecked) e.push('-p ARP -j RETURN');
    for (const et of v.ethertypes) e.push(`-p 0x${et.toString(16).padStart(4, '0')} -j RETURN`);
    e.push('-j DROP');
  }
  t.chains.set(vifChain('E', v.name), e);
}

/**
 * ebtables filter, to a learning guest: a reply to its ARP probe (target 0.0.0.0) defends the
 * address it tests; a DHCPv6 reply to its MAC from the uplink, dom0 or a `dhcp_server` guest
 * (not from any other guest: the mark its frames carry says which) goes to the daemon.
 */
function ebLearnChain(v: ResolvedVif, t: TableRules): void {
  const l: string[] = [];
  // Only the uplink's and dom0's replies: another guest's would use up this guest's rate (its
  // own addresses are refused by their declaration or binding, not by a defence).
  if (v.antispoof.ipv4 && v.antispoof.arp) l.push(`-p ARP --mark ${hex(MARK_GUEST)}/${hex(MARK_GUEST)} -j RETURN`, `-p ARP --arp-op Reply --arp-ip-dst 0.0.0.0 ${LEARN_RATE} -j ${CHAIN_DEFEND}`);
  if (v.antispoof.ipv6 && v.mac) {
    // (Two rules: ebtables-nft-save prints only one of a mark match and a limit in one rule.)
    l.push(`-p IPv6 --mark ${hex(MARK_GUEST)}/${hex(MARK_GUEST | MARK_DHCP_SERVER)} -j RETURN`);
    l.push(`-p IPv6 -d ${v.mac} --ip6-proto udp --ip6-sport 547 --ip6-dport 546 ${LEARN_RATE} -j ${CHAIN_LEARN}`);
  }
  t.chains.set(vifChain('L', v.name), l);
}

/** A learning guest's recorded bindings of one family, as host prefixes. */
function learnedCidrs(v: ResolvedVif, family: Family): Cidr[] {
  return v.learning ? (v.learned?.[family] ?? []).map((a) => parseCidr(a)) : [];
}

/** u32 text for "the DHCP chaddr (UDP payload bytes 28-33) is `mac`". */
function chaddrU32(mac: string): string {
  const h = mac.replace(/:/g, '').toLowerCase();
  const hi = `0x${h.slice(0, 8).replace(/^0+(?=.)/, '')}`;
  const lo = `0x${h.slice(8).replace(/^0+(?=.)/, '')}`;
  return `0x0>>0x16&0x3c@0x24=${hi}&&0x0>>0x16&0x3c@0x28>>0x10=${lo}`;
}

/** A guest's own chains in the xtables tables. */
export function compileVifXtables(v: ResolvedVif): RuleSet {
  const rs = emptyRuleSet();
  ipChains(v, 'ipv4', rs.ipv4);
  ipChains(v, 'ipv6', rs.ipv6);
  ebChain(v, rs.ebnat);
  if (v.learning) ebLearnChain(v, rs.eb);
  return rs;
}

/** Isolation leaves: to an isolated guest nothing from a guest; to any guest nothing from an isolated one. */
export const CHAIN_ISO = 'XN-ISO';
export const CHAIN_ISO_FROM_ANY = 'XN-ISO-A';
export const CHAIN_ISO_FROM_ISOLATED = 'XN-ISO-I';
/** ebtables filter: the tree over learning guests' ports (output), to their XN-L chains. */
export const CHAIN_LEARN_TO = 'XN-LT';
/** ip6tables raw: NAs to all nodes handed to the daemon as defences, by input port. */
export const CHAIN_NA_DEFENCE = 'XN-NAD';

/** Dispatch trees, XN-FORWARD, isolation and root jumps for these vifs, in the xtables tables. */
export function compileSharedXtables(members: readonly TreeMember[]): RuleSet {
  const rs = emptyRuleSet();
  if (members.length === 0) return rs;
  const names = members.map((m) => m.name);
  // A learning guest's XN-I chain hands its DHCP replies and NA defences to the daemon.
  const inbound = members.filter((m) => m.inbound || m.learning).map((m) => m.name);
  for (const table of ['ipv4', 'ipv6'] as const) {
    const t = rs[table];
    for (const [k, v] of buildTree(names, { root: CHAIN_FROM, chainFor: (p) => treeChain('F', p), match: (p) => `-m physdev --physdev-in ${p}`, leaf: (n) => vifChain('O', n), verb: '-g' })) t.chains.set(k, v);
    const forward = [`-j ${CHAIN_FROM}`];
    if (inbound.length > 0) {
      for (const [k, v] of buildTree(inbound, { root: CHAIN_TO, chainFor: (p) => treeChain('T', p), match: (p) => `-m physdev --physdev-out ${p}`, leaf: (n) => vifChain('I', n), verb: '-g' })) t.chains.set(k, v);
      forward.push(`-j ${CHAIN_TO}`);
    }
    // Bridged traffic that passed the guests' chains is accepted here (a FORWARD policy of DROP
    // must not cut the guests off), except traffic from a guest interface xennet does not manage
    // (a vif whose rules come from elsewhere, e.g. Xen's vif-bridge): that is left to the rules
    // after this jump. Frames from xennet's guests carry the guest mark (ebtables nat); vif0.N is
    // dom0's own port (netloop).
    t.chains.set(CHAIN_FORWARD, [...forward, `-m mark --mark ${hex(MARK_GUEST)}/${hex(MARK_GUEST)} -j ACCEPT`, '-m physdev --physdev-in vif0.+ -j ACCEPT', '-m physdev --physdev-in vif+ -j RETURN', '-j ACCEPT']);
    for (const b of [...new Set(members.map((m) => m.bridge).filter((b) => b !== null))].sort()) {
      t.roots.push({ chain: 'FORWARD', rule: `-o ${b} -m physdev --physdev-is-bridged -j ${CHAIN_FORWARD}` });
      t.roots.push({ chain: 'INPUT', rule: `-i ${b} -m physdev --physdev-is-in -j ${CHAIN_FROM}` });
    }
  }
  for (const [k, v] of buildTree(names, { root: CHAIN_FROM, chainFor: (p) => treeChain('F', p), match: (p) => `-i ${p}`, leaf: (n) => vifChain('E', n), verb: '-j' })) rs.ebnat.chains.set(k, v);
  rs.ebnat.roots.push({ chain: 'PREROUTING', rule: `-j ${CHAIN_FROM}` });
  // The identity guard: every frame, after its guest's own chain (which marks what it checked).
  const guard = compileGuardXtables(members);
  for (const [k, v] of guard.ebnat) rs.ebnat.chains.set(k, v);
  if (guard.ebnat.has(CHAIN_ID)) rs.ebnat.chains.get(CHAIN_FROM)!.push(`-j ${CHAIN_ID}`);
  for (const [k, v] of guard.ipv6) rs.ipv6.chains.set(k, v);
  // First in XN-FROM: its guest leaves are gotos, from which nothing comes back here.
  if (guard.fromIpv6.length > 0) rs.ipv6.chains.set(CHAIN_FROM, [...guard.fromIpv6, ...rs.ipv6.chains.get(CHAIN_FROM)!]);
  for (const table of ['ipv4raw', 'ipv6raw'] as const) {
    for (const [k, v] of guard[table]) rs[table].chains.set(k, v);
    const root = guard.raw[table];
    if (root) for (const b of [...new Set(members.map((m) => m.bridge).filter((b) => b !== null))].sort()) rs[table].roots.push({ chain: 'PREROUTING', rule: root(b) });
  }
  const learning = members.filter((m) => m.learning).map((m) => m.name);
  if (learning.length > 0) {
    rs.ebnat.chains.set(CHAIN_LEARN, LEARN_CHAIN_RULES);
    rs.eb.chains.set(CHAIN_LEARN, LEARN_CHAIN_RULES);
    rs.eb.chains.set(CHAIN_DEFEND, DEFEND_CHAIN_RULES);
    for (const [k, v] of buildTree(learning, { root: CHAIN_LEARN_TO, chainFor: (p) => `XN-LT-${p}`, match: (p) => `-o ${p}`, leaf: (n) => vifChain('L', n), verb: '-j' })) rs.eb.chains.set(k, v);
    rs.eb.roots.push({ chain: 'FORWARD', rule: `-j ${CHAIN_LEARN_TO}` });
    // An NA to all nodes may defend an address a learning guest tests by DAD: logged once per
    // frame, as it enters the bridge (raw PREROUTING, before it is flooded to every port), at a
    // rate per guest port (a leaf of its own), so that one port's flood neither multiplies by
    // the guests nor uses up another port's share. Which defences count is the daemon's to
    // judge: a guest's NA for an address it may not claim is dropped by its own chains later,
    // and counts for nothing.
    const leaf = (n: string): string[] => [`-m physdev --physdev-in ${n} ${nflogTarget(DEFEND_PREFIX)}`, `-m physdev --physdev-in ${n} -j RETURN`];
    for (const [k, v] of buildTree(names, { root: CHAIN_NA_DEFENCE, chainFor: (p) => `${CHAIN_NA_DEFENCE}-${p}`, match: (p) => `-m physdev --physdev-in ${p}`, leaf: () => '', leafRules: leaf, verb: '-g' })) rs.ipv6raw.chains.set(k, v);
    // Other ports carry many hosts' defences (the uplink: the whole LAN): there the rate is per
    // source address, which is the address defended (a defending NA comes from it), so a guest
    // that makes the LAN defend one address cannot use up the share of another's defence.
    rs.ipv6raw.chains.get(CHAIN_NA_DEFENCE)!.push(`-m hashlimit --hashlimit-upto ${HANDOVER_RATE.perSecond}/sec --hashlimit-burst ${HANDOVER_RATE.burst} --hashlimit-mode srcip --hashlimit-name xn-nad -j NFLOG --nflog-prefix "${DEFEND_PREFIX}" --nflog-group ${LEARN_GROUP}`);
    for (const b of [...new Set(members.map((m) => m.bridge).filter((b) => b !== null))].sort()) rs.ipv6raw.roots.push({ chain: 'PREROUTING', rule: `-i ${b} -d ff02::1/128 -p ipv6-icmp -m icmp6 --icmpv6-type 136 -m physdev --physdev-is-in -j ${CHAIN_NA_DEFENCE}` });
  }
  if (members.some((m) => m.isolated)) {
    const leafOf = new Map<string, string>(members.map((m) => [m.name, m.isolated ? CHAIN_ISO_FROM_ANY : CHAIN_ISO_FROM_ISOLATED]));
    for (const [k, v] of buildTree(names, { root: CHAIN_ISO, chainFor: (p) => treeChain('T', p), match: (p) => `-o ${p}`, leaf: (n) => leafOf.get(n)!, verb: '-j' })) rs.eb.chains.set(k, v);
    rs.eb.chains.set(CHAIN_ISO_FROM_ANY, [`--mark ${hex(MARK_GUEST)}/${hex(MARK_GUEST)} -j DROP`]);
    rs.eb.chains.set(CHAIN_ISO_FROM_ISOLATED, [`--mark ${hex(MARK_ISOLATED)}/${hex(MARK_ISOLATED)} -j DROP`]);
    rs.eb.roots.push({ chain: 'FORWARD', rule: `-j ${CHAIN_ISO}` });
  }
  return rs;
}

/**
 * Why a rule of a guest's chain drops (TableCodec.dropReason), as `*-save` prints the rules
 * compiled above: iptables and ip6tables XN-O (RA, DHCP server, DHCP client, outbound policy),
 * XN-S (sources), XN-N (NA targets), XN-I (inbound policy); ebtables nat XN-E (MAC, ARP,
 * ethertypes).
 */
export function xtablesDropReason(table: XtablesTable, chain: string, rule: string): DropReason | undefined {
  if (!/(^|\s)-j DROP$/.test(rule)) return undefined;
  const kind = /^XN-([A-Z0-9]+)-/.exec(chain)?.[1];
  if (table === 'ebnat') {
    if (kind !== 'E') return undefined;
    if (/^-s ! /.test(rule)) return 'mac';
    if (/^-p ARP\b/.test(rule)) return 'arp';
    return 'ethertype';
  }
  if (table !== 'ipv4' && table !== 'ipv6') return undefined;
  switch (kind) {
    case 'S':
      return table === 'ipv4' ? 'spoof4' : 'spoof6';
    case 'N':
      return 'na';
    case 'I':
      return 'in';
    case 'O':
      if (/--icmpv6-type 134\b/.test(rule)) return 'ra';
      if (/--sport 68 --dport 67\b/.test(rule)) return 'dhcpc';
      if (/--dport (68|546)\b/.test(rule)) return 'dhcps';
      return 'out';
    default:
      return undefined;
  }
}
