/** Plain data of the guest firewall: resolved per-vif policy and compiled rule sets. */
import type { AllowRule, Verdict } from '../config/schema.js';
import type { Cidr, DomainName, IfName, Mac } from '../net/index.js';

export { cidrText, type Cidr } from '../net/index.js';

/** iptables filter, ip6tables filter, ebtables filter, ebtables nat. */
export type TableName = 'ipv4' | 'ipv6' | 'eb' | 'ebnat';
export const tableNames: readonly TableName[] = ['ipv4', 'ipv6', 'ebnat', 'eb'];
export const isEbtables = (t: TableName): boolean => t === 'eb' || t === 'ebnat';
/** The kernel table a TableName lives in (`*filter` or `*nat`). */
export const kernelTable = (t: TableName): 'filter' | 'nat' => (t === 'ebnat' ? 'nat' : 'filter');

export type BuiltinChain = 'FORWARD' | 'INPUT' | 'PREROUTING';

/** A rule in a built-in chain that jumps into xennet's chains. */
export interface RootJump {
  chain: BuiltinChain;
  /** The rule after `-A CHAIN `, e.g. `-o xenbr0 -m physdev --physdev-is-bridged -j XN-FORWARD`. */
  rule: string;
}

/** Owned chains of one table (name -> rules after `-A NAME `, in order) and the root jumps. */
export interface TableRules {
  chains: Map<string, string[]>;
  roots: RootJump[];
}

export type RuleSet = Record<TableName, TableRules>;

export function emptyTable(): TableRules {
  return { chains: new Map(), roots: [] };
}

export function emptyRuleSet(): RuleSet {
  return { ipv4: emptyTable(), ipv6: emptyTable(), eb: emptyTable(), ebnat: emptyTable() };
}

export interface Antispoof {
  mac: boolean;
  arp: boolean;
  ipv4: boolean;
  ipv6: boolean;
}

/** What xennet knows about a live vif before the rule file is applied. */
export interface VifFacts {
  name: IfName;
  bridge: IfName;
  domid?: number;
  devid?: number;
  /** Domain name from xenstore. */
  domain?: DomainName;
  /** xenstore backend `mac`. */
  mac?: Mac;
  /** xenstore backend `ip`. */
  ipv4: Cidr[];
  ipv6: Cidr[];
}

/** A vif's effective policy: rule file (guest, interface, defaults) over xenstore facts. */
export interface ResolvedVif {
  name: IfName;
  bridge: IfName;
  domid?: number;
  devid?: number;
  domain?: DomainName;
  /** The rule-file guest entry this vif matched, if any. */
  guest?: DomainName;
  mac?: Mac;
  ipv4: Cidr[];
  ipv6: Cidr[];
  antispoof: Antispoof;
  inbound: Verdict;
  outbound: Verdict;
  isolation: boolean;
  allowIn: AllowRule[];
  allowOut: AllowRule[];
  ethertypes: number[];
  routerAdvertisements: boolean;
  dhcpServer: boolean;
  logDrops: boolean;
  warnings: string[];
}
