/** Plain data of the guest firewall: resolved per-vif policy and compiled rule sets. */
import type { AllowRule, Verdict } from '../config/schema.js';
import type { Cidr, DomainName, IfName, Mac } from '../net/index.js';
import type { DomainIdentity, PolicyNameSource } from './domain-identity.js';
import type { Counter } from './live.js';

export { cidrText, type Cidr } from '../net/index.js';

/**
 * iptables filter, ip6tables filter, iptables raw, ip6tables raw, ebtables filter, ebtables nat
 * (the xtables backend), and xennet's own nftables tables (`bridge xennet`, `inet xennet`: the
 * nftables backend). Every table is always read and compared: the backend not in use has nothing
 * of xennet's, so switching backends is the same diff as any other change.
 */
export type XtablesTable = 'ipv4' | 'ipv6' | 'ipv4raw' | 'ipv6raw' | 'eb' | 'ebnat';
export type TableName = XtablesTable | 'nftables';
export const xtablesTables: readonly XtablesTable[] = ['ipv4', 'ipv6', 'ipv4raw', 'ipv6raw', 'ebnat', 'eb'];
export const tableNames: readonly TableName[] = [...xtablesTables, 'nftables'];
export const isEbtables = (t: TableName): boolean => t === 'eb' || t === 'ebnat';
export const isXtables = (t: TableName): t is XtablesTable => t !== 'nftables';
/** The kernel table a TableName lives in (`*filter`, `*nat` or `*raw`). */
export const kernelTable = (t: TableName): 'filter' | 'nat' | 'raw' => (t === 'ebnat' ? 'nat' : t === 'ipv4raw' || t === 'ipv6raw' ? 'raw' : 'filter');
/** A table's name in messages. */
export const tableLabel: Readonly<Record<TableName, string>> = { ipv4: 'iptables', ipv6: 'ip6tables', ipv4raw: 'iptables raw', ipv6raw: 'ip6tables raw', eb: 'ebtables', ebnat: 'ebtables nat', nftables: 'nftables' };
/** The iptables family of an iptables table. */
export const ipFamilyOf = (t: 'ipv4' | 'ipv6' | 'ipv4raw' | 'ipv6raw'): 'ipv4' | 'ipv6' => (t === 'ipv4' || t === 'ipv4raw' ? 'ipv4' : 'ipv6');
/** How a table's rules are written: iptables or ebtables options, or nft statements. */
export type RuleDialect = 'iptables' | 'ebtables' | 'nft';
export const dialectOf = (t: TableName): RuleDialect => (t === 'nftables' ? 'nft' : isEbtables(t) ? 'ebtables' : 'iptables');

export type BackendKind = 'xtables' | 'nftables';
/**
 * Where the nftables backend gets connection state for `inbound: drop`: from the bridge family
 * itself (nf_conntrack_bridge), or from br_netfilter's pass through the inet hooks, where
 * `inet xennet` turns `ct state established,related` into a mark bit the bridge table reads.
 */
export type BridgeConntrack = 'bridge' | 'mark';
/** What the firewall compiles to. */
export type Engine = { kind: 'xtables' } | { kind: 'nftables'; conntrack: BridgeConntrack };
export const XTABLES: Engine = { kind: 'xtables' };


/** What the shared chains need to know about a vif. */
export interface TreeMember {
  name: IfName;
  /** Null when unknown (rules adopted from live for a link that is not attached). */
  bridge: IfName | null;
  /** Whether its XN-I chain has rules (else traffic to it skips the to-guest tree). */
  inbound: boolean;
  /** Whether it may neither reach nor be reached by other guests. */
  isolated: boolean;
  /** Whether it learns its addresses (nftables: its DHCP replies are handed to the daemon). */
  learning?: true;
  /** What only its ports may carry as a source (the identity guard). */
  claims?: Claims;
}

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
  return { ipv4: emptyTable(), ipv6: emptyTable(), ipv4raw: emptyTable(), ipv6raw: emptyTable(), eb: emptyTable(), ebnat: emptyTable(), nftables: emptyTable() };
}

/**
 * A guest's identity on the bridge (canonical texts): the source MAC and host addresses that only
 * its own ports may carry while it is attached.
 */
export interface Claims {
  mac: string[];
  ipv4: string[];
  /** Its IPv6 addresses, the EUI-64 link-local of its MAC included. */
  ipv6: string[];
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
  /** Which name the policy comes from (xl's migration names, stub domains); else `domain`. */
  identity?: DomainIdentity;
  /** What the identity was read from (domain-identity.ts namesKey): a rename changes it. */
  namesKey?: string;
  /** xenstore backend `mac`. */
  mac?: Mac;
  /** xenstore backend `ip`. */
  ipv4: Cidr[];
  ipv6: Cidr[];
  /** Its learned bindings that have not ended (the state directory's record). */
  learned?: LearnedAddresses;
  /** Why address learning cannot run on this host now (the backend lacks what it needs). */
  learningUnavailable?: string;
}

/** A learning guest's bound host addresses, canonical texts, sorted. */
export interface LearnedAddresses {
  ipv4: string[];
  ipv6: string[];
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
  /** The name the policy was resolved from, and how it was found. */
  policyName?: DomainName;
  nameSource: PolicyNameSource;
  /** The stub domain's guest (nameSource `stubdom`). */
  target?: number;
  /** A live migration in flight: the guest runs on another host, or not yet on this one. */
  elsewhere: boolean;
  /** Whether its MAC and addresses are refused as a source on every other port. */
  identityGuard: boolean;
  /** Whether its addresses are learned (learn_addresses, no declared address, anti-spoofing on). */
  learning: boolean;
  /** Whether `learn_addresses: false` leaves it open: no declared address, none learned. */
  addressesOpen: boolean;
  /** It would learn its addresses, but learning cannot run on this host: why (it is left open). */
  learningUnavailable?: string;
  /**
   * A learning guest's bindings as recorded when its rules were made: the xtables backend writes
   * its ARP senders and NA targets as rules from them (nftables reads its sets instead).
   */
  learned?: LearnedAddresses;
  namesKey?: string;
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

/**
 * Whether a guest's own chains check every source its frames may carry (its MAC, ARP sender, IPv4
 * and IPv6 sources, NA targets) against its own MAC and host addresses, and all of those are its
 * claims (claims.ts): the identity guard then need not look at its frames, since it lets a port's
 * own claims through. A prefix lets it use addresses of others inside it, so only host addresses
 * count; a guest that learns its addresses (none declared) is never one of these, nor one whose
 * keys are not claimed (`identity_guard: false`, a live migration in flight): another guest may
 * claim the same key, and only the guard tells them apart.
 */
export function sourcesOwnChecked(v: ResolvedVif): boolean {
  const known = v.ipv4.length > 0 || v.ipv6.length > 0;
  return v.identityGuard && !v.elsewhere && v.mac !== undefined && v.antispoof.mac && v.antispoof.arp && v.antispoof.ipv4 && v.antispoof.ipv6 && known && [...v.ipv4, ...v.ipv6].every((a) => a.len === (a.family === 'ipv4' ? 32 : 128));
}

/** Whether a guest's DHCP client messages are checked for its own MAC as chaddr (not a relay's or a server's). */
export function dhcpClientChecked(v: ResolvedVif): v is ResolvedVif & { mac: Mac } {
  return v.mac !== undefined && v.antispoof.mac && v.antispoof.ipv4 && !v.dhcpServer;
}

/**
 * The changes that make one table's owned chains and root jumps as desired (the core's diff); the
 * fields marked nftables are the nftables driver's (its TableCodec fills them in).
 */
export interface TablePlan {
  /** Chains to create or rewrite, with their full contents. */
  write: Map<string, string[]>;
  /** The counters some rules in `write` start from, by chain and rule index (a guest's drops carried over its chains' rewrite: counter-carry.ts). */
  presets?: Map<string, Map<number, Counter>>;
  /** Owned chains to delete. */
  remove: string[];
  addRoots: RootJump[];
  /** Root jumps to delete, as the live table spells them (duplicates included). */
  removeRoots: RootJump[];
  /** nftables: xennet's tables (by family) to delete whole, nothing being wanted in them. */
  dropTables?: ('bridge' | 'inet')[];
  /** nftables: the guests' element pseudo-chains in `write` that are live now (to detach first). */
  replacing?: string[];
  /** nftables: what the element pseudo-chains in `write` and `remove` hold now (to change by difference). */
  before?: Map<string, string[]>;
  /**
   * nftables: the change assumes xennet's table is there (an incremental change from the record):
   * the transaction fails when it is not (someone's `flush ruleset`), and the commit then
   * reconciles from the live rules instead of adding one guest to an empty table.
   */
  expectTable?: boolean;
  /**
   * nftables: xennet's tables (by family) that are dormant now. The change's `add table` wakes
   * them; their base chains are refilled in place (the kernel refuses to add a base chain in the
   * transaction that wakes its table).
   */
  wake?: ('bridge' | 'inet')[];
}
