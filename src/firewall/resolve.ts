/**
 * Resolves a live vif's effective policy: the rule file's guest (by the domain's real name: see
 * domain-identity.ts) and interface (by devid or MAC), over the host defaults, over what xenstore
 * says (`mac`, `ip`). A guest not in the file still gets anti-spoofing from xenstore; with no
 * known address, only MAC and ARP-MAC.
 */
import type { AllowRule, GuestEntry, PolicyFile } from '../config/schema.js';
import { cidrText, type Cidr, type DomainName, type Mac } from '../net/index.js';
import type { Antispoof, ResolvedVif, VifFacts } from './model.js';

/** The rule file's entry for a domain name (own keys only: `constructor` is not a guest). */
export function guestEntry(policy: PolicyFile, name: string | undefined): [DomainName, GuestEntry] | undefined {
  const guests = policy.guests;
  if (name === undefined || !guests || !Object.hasOwn(guests, name)) return undefined;
  return [name as DomainName, guests[name as DomainName]!];
}

function antispoofOf(v: GuestEntry['antispoof'] | undefined, base: Antispoof): Antispoof {
  if (v === undefined) return base;
  if (typeof v === 'boolean') return { mac: v, arp: v, ipv4: v, ipv6: v };
  return { mac: v.mac ?? base.mac, arp: v.arp ?? base.arp, ipv4: v.ipv4 ?? base.ipv4, ipv6: v.ipv6 ?? base.ipv6 };
}

export function resolveVif(policy: PolicyFile, facts: VifFacts): ResolvedVif {
  const d = policy.defaults ?? {};
  const warnings: string[] = [];
  const policyName = facts.identity ? facts.identity.policyName : facts.domain;
  const entry = guestEntry(policy, policyName);
  const guestName = entry?.[0];
  const g: GuestEntry | undefined = entry?.[1];
  // The interface: guest-level fields describe devid 0; `interfaces` match by devid, else MAC.
  let iface: { mac?: Mac | undefined; ipv4?: Cidr[] | undefined; ipv6?: Cidr[] | undefined } | undefined;
  if (g) {
    const byDevid = g.interfaces?.find((i) => i.devid !== undefined && i.devid === facts.devid);
    const byMac = g.interfaces?.find((i) => i.mac !== undefined && i.mac === facts.mac);
    if (byDevid) iface = byDevid;
    else if (byMac) iface = byMac;
    else if ((facts.devid ?? 0) === 0 || (g.mac !== undefined && g.mac === facts.mac)) iface = { mac: g.mac, ipv4: g.ipv4, ipv6: g.ipv6 };
    else warnings.push(`guest ${guestName} has no interface for devid ${facts.devid}; using xenstore's mac and ip`);
  }
  const mac = iface?.mac ?? facts.mac;
  if (iface?.mac && facts.mac && iface.mac !== facts.mac) warnings.push(`the rule file says MAC ${iface.mac} but xenstore says ${facts.mac}; the rule file wins, a guest using ${facts.mac} is blocked`);
  const fileV4 = iface?.ipv4;
  const fileV6 = iface?.ipv6;
  const ipv4 = fileV4 && fileV4.length > 0 ? fileV4 : facts.ipv4;
  const ipv6 = fileV6 && fileV6.length > 0 ? fileV6 : facts.ipv6;
  const antispoof = antispoofOf(g?.antispoof, antispoofOf(d.antispoof, { mac: true, arp: true, ipv4: true, ipv6: true }));
  if (!mac && (antispoof.mac || antispoof.arp)) warnings.push('no MAC known (rule file or xenstore mac): MAC and ARP anti-spoofing are off');
  // Learning is the default for a guest with no declared address; `learn_addresses: false` leaves
  // it open (it may send from any address), as the operator asked.
  const learnKey = g?.learn_addresses ?? d.learn_addresses ?? true;
  const undeclared = ipv4.length === 0 && ipv6.length === 0 && (antispoof.ipv4 || antispoof.ipv6);
  const wantsLearning = learnKey && undeclared;
  // Learning reads the guest's own DHCP replies by their chaddr: without its MAC it cannot.
  const learning = wantsLearning && mac !== undefined && facts.learningUnavailable === undefined;
  if (wantsLearning && mac === undefined) warnings.push('no address declared, and its addresses cannot be learned without its MAC (xenstore mac or the rule file): it has no address anti-spoofing');
  else if (wantsLearning && !learning) warnings.push(`no address declared, and its addresses cannot be learned: ${facts.learningUnavailable}; it has no address anti-spoofing until then`);
  if (undeclared && !learnKey) warnings.push('learn_addresses: false and no address declared (rule file or xenstore ip): it is open, only MAC and ARP-MAC anti-spoofing apply');
  if (!antispoof.mac || !antispoof.arp || !antispoof.ipv4 || !antispoof.ipv6) {
    const off = (Object.keys(antispoof) as (keyof Antispoof)[]).filter((k) => !antispoof[k]);
    warnings.push(`anti-spoofing is off for ${off.join(', ')}`);
  }
  const r: ResolvedVif = {
    name: facts.name,
    bridge: facts.bridge,
    ipv4,
    ipv6,
    antispoof,
    inbound: g?.inbound ?? d.inbound ?? 'accept',
    outbound: g?.outbound ?? d.outbound ?? 'accept',
    isolation: g?.isolation ?? d.isolation ?? false,
    allowIn: g?.allow_in ?? [],
    allowOut: g?.allow_out ?? [],
    ethertypes: [...new Set([...(d.allow_ethertypes ?? []), ...(g?.allow_ethertypes ?? [])])].sort((a, b) => a - b),
    routerAdvertisements: g?.router_advertisements ?? d.router_advertisements ?? false,
    dhcpServer: g?.dhcp_server ?? d.dhcp_server ?? false,
    logDrops: g?.log_drops ?? d.log_drops ?? true,
    nameSource: facts.identity?.source ?? 'name',
    elsewhere: facts.identity?.elsewhere ?? false,
    identityGuard: g?.identity_guard ?? d.identity_guard ?? true,
    learning,
    addressesOpen: undeclared && !learnKey,
    warnings,
  };
  if (policyName !== undefined) r.policyName = policyName;
  if (facts.namesKey !== undefined) r.namesKey = facts.namesKey;
  if (facts.identity?.target !== undefined) r.target = facts.identity.target;
  if (facts.identity) warnings.push(...facts.identity.warnings);
  if (learning) r.learned = facts.learned ?? { ipv4: [], ipv6: [] };
  if (wantsLearning && mac !== undefined && facts.learningUnavailable !== undefined) r.learningUnavailable = facts.learningUnavailable;
  if (facts.domain !== undefined) r.domain = facts.domain;
  if (facts.domid !== undefined) r.domid = facts.domid;
  if (facts.devid !== undefined) r.devid = facts.devid;
  if (guestName !== undefined) r.guest = guestName;
  if (mac !== undefined) r.mac = mac;
  for (const [dir, rules] of [['allow_in', r.allowIn], ['allow_out', r.allowOut]] as const) {
    rules.forEach((rule, i) => {
      const cidrs = dir === 'allow_in' ? rule.from : rule.to;
      if (rule.proto === 'any' && !cidrs) warnings.push(`${dir}[${i}] allows all traffic ${dir === 'allow_in' ? 'to' : 'from'} the guest`);
      const earlier = rules.slice(0, i).findIndex((e) => shadows(e, rule, dir));
      if (earlier >= 0) warnings.push(`${dir}[${i}] is shadowed by ${dir}[${earlier}] and never matches anything new`);
    });
  }
  return r;
}

/** Whether rule `a` matches everything rule `b` matches (simple, conservative cases). */
function shadows(a: AllowRule, b: AllowRule, dir: 'allow_in' | 'allow_out'): boolean {
  if (a.proto !== 'any' && a.proto !== b.proto) return false;
  const ac = dir === 'allow_in' ? a.from : a.to;
  const bc = dir === 'allow_in' ? b.from : b.to;
  if (ac && (!bc || !bc.every((c) => ac.some((x) => cidrText(x) === cidrText(c))))) return false;
  if (a.ports) {
    if (!b.ports) return false;
    const covered = (p: number | string): boolean => {
      const [lo, hi] = String(p).split('-').map(Number) as [number, number | undefined];
      return a.ports!.some((q) => {
        const [qlo, qhi] = String(q).split('-').map(Number) as [number, number | undefined];
        return lo >= qlo && (hi ?? lo) <= (qhi ?? qlo);
      });
    };
    if (!b.ports.every(covered)) return false;
  }
  if (a.icmp_types && (!b.icmp_types || !b.icmp_types.every((t) => a.icmp_types!.includes(t)))) return false;
  return true;
}
