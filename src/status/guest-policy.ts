/**
 * A guest's policy in plain words, setting by setting, each with where it comes from: a line of
 * the rule file (the guest's own entry, or `defaults`), xenstore, or xennet's built-in default.
 * What `xennet status GUEST` shows; it follows resolve.ts (which decides) and must say the same.
 */
import type { AllowRule, GuestEntry, PolicyFile } from '../config/schema.js';
import { cidrText, printable } from '../net/index.js';
import { guestEntry } from '../firewall/resolve.js';

export interface PolicySetting {
  /** The rule file's key (antispoof.ipv4, inbound, allow_in, ...). */
  setting: string;
  value: string;
  /** Where it comes from: the guest's entry, `defaults`, xennet's built-in default, xenstore, learning; `none`: nobody set it. */
  origin: 'guest' | 'defaults' | 'built-in' | 'xenstore' | 'learned' | 'none';
  /** The rule file's key path and its line, for the first two. */
  path?: string;
  line?: number;
  /** The same in words: `web01 line 6`, `defaults line 3`, `built-in`, `xenstore ip`. */
  from: string;
}

export interface PolicyExplained {
  /** The rule file's guest entry it matched (undefined: none, the defaults apply). */
  guest?: string;
  /** The entry's line, when there is one. */
  line?: number;
  settings: PolicySetting[];
}

export interface GuestFacts {
  /** The name its policy is looked up by (the domain's name, or its migration/stub name). */
  policyName: string | null;
  devid: number | null;
  mac: string | null;
  /** What the firewall resolved as its addresses (rule file or xenstore ip). */
  addresses: string[];
  addressSource: 'declared' | 'learned' | 'open' | 'none';
}

type LineOf = (path: readonly string[]) => number | undefined;

const BUILT_IN = { origin: 'built-in', from: 'built-in' } as const;
const on = (b: boolean): string => (b ? 'yes' : 'no');

/** "tcp 22,80 from 10.0.0.0/8" */
export function ruleText(r: AllowRule, dir: 'allow_in' | 'allow_out'): string {
  const parts: string[] = [r.proto === 'any' ? 'any protocol' : r.proto];
  if (r.ports) parts.push(`port${r.ports.length === 1 ? '' : 's'} ${r.ports.join(',')}`);
  if (r.icmp_types) parts.push(`type${r.icmp_types.length === 1 ? '' : 's'} ${r.icmp_types.join(',')}`);
  const cidrs = dir === 'allow_in' ? r.from : r.to;
  parts.push(cidrs ? `${dir === 'allow_in' ? 'from' : 'to'} ${cidrs.map(cidrText).join(', ')}` : dir === 'allow_in' ? 'from anywhere' : 'to anywhere');
  return parts.join(' ');
}

export function explainPolicy(policy: PolicyFile, lineOf: LineOf | undefined, facts: GuestFacts): PolicyExplained {
  const found = guestEntry(policy, facts.policyName ?? undefined);
  const name = found?.[0];
  const g: GuestEntry | undefined = found?.[1];
  const d = policy.defaults ?? {};
  const where = (path: string[]): Pick<PolicySetting, 'origin' | 'path' | 'line' | 'from'> => {
    const line = lineOf?.(path);
    const origin = path[0] === 'defaults' ? 'defaults' : 'guest';
    const who = origin === 'defaults' ? 'defaults' : printable(path[1] ?? '');
    return { origin, path: path.join('.'), ...(line !== undefined ? { line } : {}), from: `${who}${line !== undefined ? ` line ${line}` : ''}` };
  };
  const gp = (key: string): string[] => ['guests', name!, key];
  /** A setting the guest's entry, else `defaults`, else xennet decides. */
  const layered = <T>(key: keyof GuestEntry & keyof NonNullable<PolicyFile['defaults']>, builtIn: T, show: (v: T) => string): PolicySetting => {
    const own = g?.[key] as T | undefined;
    const dflt = d[key] as T | undefined;
    if (own !== undefined) return { setting: key, value: show(own), ...where(gp(key)) };
    if (dflt !== undefined) return { setting: key, value: show(dflt), ...where(['defaults', key]) };
    return { setting: key, value: show(builtIn), ...BUILT_IN };
  };
  const settings: PolicySetting[] = [];
  settings.push(layered('inbound', 'accept', (v: string) => v));
  settings.push(layered('outbound', 'accept', (v: string) => v));
  for (const dir of ['allow_in', 'allow_out'] as const) {
    const rules = g?.[dir] ?? [];
    if (rules.length === 0) settings.push({ setting: dir, value: 'none', origin: 'none', from: '-' });
    rules.forEach((r, i) => settings.push({ setting: `${dir}[${i}]`, value: ruleText(r, dir), ...where([...gp(dir), String(i)]) }));
  }
  // Anti-spoofing, family by family: the guest's `antispoof` (true/false, or per family) over the defaults'.
  for (const fam of ['mac', 'arp', 'ipv4', 'ipv6'] as const) {
    const pick = (v: GuestEntry['antispoof'] | undefined, base: string[]): { value: boolean; path: string[] } | undefined => {
      if (v === undefined) return undefined;
      if (typeof v === 'boolean') return { value: v, path: base };
      const x = v[fam];
      return x === undefined ? undefined : { value: x, path: [...base, fam] };
    };
    const got = pick(g?.antispoof, g ? gp('antispoof') : []) ?? pick(d.antispoof, ['defaults', 'antispoof']);
    settings.push({ setting: `antispoof.${fam}`, value: on(got?.value ?? true), ...(got ? where(got.path) : BUILT_IN) });
  }
  settings.push(layered('isolation', false, on));
  settings.push(layered('identity_guard', true, on));
  settings.push(layered('dhcp_server', false, on));
  settings.push(layered('router_advertisements', false, on));
  settings.push(layered('log_drops', true, on));
  settings.push(layered('learn_addresses', true, on));
  const ethertypes = [...new Set([...(d.allow_ethertypes ?? []), ...(g?.allow_ethertypes ?? [])])].sort((a, b) => a - b);
  // Both lists count (the defaults' and the guest's): the guest's line is named when it has one.
  const etFrom = g?.allow_ethertypes ? where(gp('allow_ethertypes')) : d.allow_ethertypes ? where(['defaults', 'allow_ethertypes']) : BUILT_IN;
  const both = Boolean(g?.allow_ethertypes && d.allow_ethertypes);
  settings.push({ setting: 'allow_ethertypes', value: ethertypes.length > 0 ? ethertypes.map((e) => `0x${e.toString(16).padStart(4, '0')}`).join(', ') : 'only IPv4/IPv6/ARP', ...etFrom, ...(both ? { from: `${etFrom.from} + defaults` } : {}) });
  settings.push(addressesSetting(g, name, where, facts));
  const out: PolicyExplained = { settings };
  if (name !== undefined) {
    out.guest = name;
    const line = lineOf?.(['guests', name]);
    if (line !== undefined) out.line = line;
  }
  return out;
}

/** Its addresses: the rule file's interface (by devid, else MAC, else the guest's own fields for devid 0), else xenstore's ip, else learned or none. */
function addressesSetting(g: GuestEntry | undefined, name: string | undefined, where: (path: string[]) => Pick<PolicySetting, 'origin' | 'path' | 'line' | 'from'>, facts: GuestFacts): PolicySetting {
  const value = facts.addresses.length > 0 ? facts.addresses.join(', ') : 'none declared';
  if (facts.addressSource === 'learned') return { setting: 'addresses', value: 'learned (DHCP, DHCPv6, DAD)', origin: 'learned', from: 'the daemon' };
  if (facts.addressSource === 'open') return { setting: 'addresses', value: 'open: any source (learn_addresses: false)', origin: 'none', from: '-' };
  if (facts.addressSource === 'none') return { setting: 'addresses', value: facts.addresses.length > 0 ? 'not checked (antispoof off for IP)' : 'none: any source (cannot learn)', origin: 'none', from: '-' };
  if (g && name !== undefined) {
    // As resolve.ts matches: by devid first, then by MAC.
    const byDevid = g.interfaces?.findIndex((x) => x.devid !== undefined && x.devid === facts.devid) ?? -1;
    const i = byDevid >= 0 ? byDevid : (g.interfaces?.findIndex((x) => x.mac !== undefined && facts.mac !== null && x.mac === facts.mac) ?? -1);
    const iface = i >= 0 ? g.interfaces![i]! : undefined;
    const base = iface ? ['guests', name, 'interfaces', String(i)] : (facts.devid ?? 0) === 0 || (g.mac !== undefined && g.mac === facts.mac) ? ['guests', name] : undefined;
    const src = iface ?? (base ? g : undefined);
    const keys = src ? (['ipv4', 'ipv6'] as const).filter((k) => (src[k]?.length ?? 0) > 0) : [];
    if (base && keys.length > 0) return { setting: 'addresses', value, ...where([...base, keys[0]!]) };
  }
  return { setting: 'addresses', value, origin: 'xenstore', from: 'xenstore ip' };
}
