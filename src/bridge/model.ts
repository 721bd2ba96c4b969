/**
 * Plain-data picture of a host's links, addresses and routes, as xennet reads it from the kernel.
 * JSON-serialisable (it is stored in the takeover state file) and free of netlink types, so the
 * planners that consume it are pure and testable without root.
 */

export interface BridgeSettings {
  stpState: number;
  /** In hundredths of a second (the kernel's clock_t unit on the netlink interface). */
  forwardDelay: number;
  nfCallIptables: boolean;
  nfCallIp6tables: boolean;
  /**
   * no_linklocal_learn: the bridge learns no source MAC from frames to 01:80:c2:00:00:0X. Those
   * are handed up without passing the bridge's PREROUTING hooks (LLDP without any hook), so only
   * this keeps a guest from moving another MAC's forwarding entry to itself with them.
   */
  noLinkLocalLearn: boolean;
}

export interface LinkState {
  index: number;
  name: string;
  /** Link kind from IFLA_INFO_KIND (`bridge`, `veth`, ...); null for plain devices. */
  kind: string | null;
  /** Name of the master (bridge) this link is a port of, or null. */
  master: string | null;
  mac: string;
  mtu: number;
  up: boolean;
  /** IFF_NOARP clear. */
  arp: boolean;
  /** IFF_MULTICAST set. */
  multicast: boolean;
  /** For a veth: the ifindex of its peer in this namespace, or null. */
  peerIndex: number | null;
  /** For a macvlan, macvtap, ipvlan or ipvtap: the ifindex of the link it is stacked on. */
  lower?: number;
  /** IFLA_IFALIAS, when set (xennet marks the guest interfaces it renames). */
  alias?: string;
  bridge?: BridgeSettings;
}

export type Family = 'inet' | 'inet6';

/** Address flags xennet reproduces when it moves an address (the rest are kernel-derived). */
export const settableAddressFlags = ['nodad', 'noprefixroute', 'managetempaddr', 'homeaddress', 'mcautojoin'] as const;
export type SettableAddressFlag = (typeof settableAddressFlags)[number];

export interface AddressState {
  family: Family;
  /** Name of the link that holds the address. */
  link: string;
  local: string;
  prefixLen: number;
  /** Point-to-point peer (IFA_ADDRESS when it differs from IFA_LOCAL). */
  peer?: string;
  broadcast?: string;
  label?: string;
  scope: number;
  /** All flags as the kernel reports them (for display and comparison). */
  flags: string[];
  /** Prefix-route metric (IFA_RT_PRIORITY). */
  metric?: number;
  /** Lifetimes in seconds; absent for permanent (forever) addresses. */
  validLft?: number;
  preferredLft?: number;
}

export interface RouteState {
  family: Family;
  table: number;
  /** Destination prefix as `addr/len`, or `default`. */
  dst: string;
  /** Source prefix for source-specific (IPv6) routes. */
  src?: string;
  tos: number;
  protocol: number;
  scope: number;
  type: number;
  /** rtm_flags (RTNH_F_ONLINK and friends). */
  flags: number;
  /** Output link name, if any. */
  dev: string | null;
  gateway?: string;
  metric?: number;
  prefsrc?: string;
  /** RTA_METRICS (mtu, advmss, ...), by name. */
  metrics?: Record<string, number>;
  /** IPv6 router preference (RTA_PREF). */
  pref?: number;
  /** Devices of a multipath route's nexthops (RTA_MULTIPATH); xennet does not carry these. */
  nexthopDevs?: string[];
}

/**
 * A neighbour entry an operator set (the kernel's own are not read: learned ones, and the noarp
 * ones it makes for multicast and broadcast): a static one (`ip neigh add ... lladdr ... nud
 * permanent`) or a proxy one (`ip neigh add proxy ...`, proxy ARP or NDP for an address behind
 * the host).
 */
export interface NeighState {
  family: Family;
  link: string;
  dst: string;
  /** The MAC of a static entry; none for a proxy entry. */
  lladdr?: string;
  proxy: boolean;
  /** NTF_ROUTER: the neighbour is a router (IPv6). */
  router: boolean;
}

export interface HostState {
  links: LinkState[];
  addresses: AddressState[];
  routes: RouteState[];
  /** Static and proxy neighbour entries (absent in journals of versions that did not read them). */
  neighbours?: NeighState[];
}

export const RouteProtocolKernel = 2;
export const RouteTableLocal = 255;
export const RouteTableMain = 254;
export const RouteScopeUniverse = 0;
export const RouteScopeLink = 253;
export const RouteScopeHost = 254;
export const QuietMac = 'fe:ff:ff:ff:ff:ff';

export function linkByName(host: HostState, name: string): LinkState | undefined {
  return host.links.find((l) => l.name === name);
}

export function linkByIndex(host: HostState, index: number): LinkState | undefined {
  return host.links.find((l) => l.index === index);
}

export function portsOf(host: HostState, bridge: string): LinkState[] {
  return host.links.filter((l) => l.master === bridge);
}

export function addressesOn(host: HostState, link: string): AddressState[] {
  return host.addresses.filter((a) => a.link === link);
}

/**
 * Addresses an operator configured (as opposed to ones the kernel derives by itself): every IPv4
 * address, and IPv6 addresses of global or site scope. IPv6 link-local addresses are regenerated
 * by the kernel from the MAC, which xennet carries over.
 */
export function isConfiguredAddress(a: AddressState): boolean {
  return a.family === 'inet' || a.scope !== RouteScopeLink;
}

/**
 * Routes that must be carried when the link they use is replaced: every route through the link
 * except those the kernel creates by itself (connected prefix routes, local-table entries,
 * link-local and multicast routes), which reappear when the addresses do.
 */
export function isCarriedRoute(r: RouteState): boolean {
  return r.protocol !== RouteProtocolKernel && r.table !== RouteTableLocal;
}

export function routesVia(host: HostState, link: string): RouteState[] {
  return host.routes.filter((r) => r.dev === link);
}

/** A short human form of a route, like `ip route` prints it. */
export function describeRoute(r: RouteState): string {
  const parts = [r.dst];
  if (r.gateway) parts.push(`via ${r.gateway}`);
  if (r.dev) parts.push(`dev ${r.dev}`);
  if (r.table !== RouteTableMain) parts.push(`table ${r.table}`);
  if (r.metric !== undefined) parts.push(`metric ${r.metric}`);
  if (r.prefsrc) parts.push(`src ${r.prefsrc}`);
  return parts.join(' ');
}

export function describeAddress(a: AddressState): string {
  return `${a.local}/${a.prefixLen}${a.label && a.label !== a.link ? ` (${a.label})` : ''}`;
}

export function neighboursOn(host: HostState, link: string): NeighState[] {
  return (host.neighbours ?? []).filter((n) => n.link === link);
}

export function describeNeigh(n: NeighState): string {
  return n.proxy ? `proxy ${n.dst}` : `${n.dst} lladdr ${n.lladdr ?? '?'} permanent${n.router ? ' router' : ''}`;
}
