/** Reading and writing /proc/sys values (per network namespace for net.*). */
import { readFileSync, writeFileSync } from 'node:fs';

const pathOf = (key: string): string => `/proc/sys/${key.replace(/\./g, '/')}`;

export function readSysctl(key: string): string | undefined {
  try {
    return readFileSync(pathOf(key), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Writes a value; returns false when the key does not exist (module not loaded). */
export function writeSysctl(key: string, value: string): boolean {
  try {
    writeFileSync(pathOf(key), value);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** The per-interface settings under net.ipv4.conf.<if> / net.ipv6.conf.<if> (names may hold dots). */
const ifPath = (family: 'ipv4' | 'ipv6', ifname: string, key: string): string => {
  if (ifname.includes('/') || ifname === '.' || ifname === '..') throw new Error(`not an interface name: ${JSON.stringify(ifname)}`);
  return `/proc/sys/net/${family}/conf/${ifname}/${key}`;
};

export function readInterfaceSysctl(family: 'ipv4' | 'ipv6', ifname: string, key: string): string | undefined {
  try {
    return readFileSync(ifPath(family, ifname, key), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Writes a per-interface value; false when the setting does not exist (IPv6 disabled, no such link). */
export function writeInterfaceSysctl(family: 'ipv4' | 'ipv6', ifname: string, key: string, value: string): boolean {
  try {
    writeFileSync(ifPath(family, ifname, key), value);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** A link's IP-stack settings as the takeover carries them: key -> value, per family. */
export interface StackSettings {
  ipv4: Record<string, string>;
  ipv6: Record<string, string>;
}

/**
 * The per-interface IP-stack settings the bridge takeover carries from the NIC to the host side
 * (the veth end that takes the NIC's name): what an operator sets for the host's interface in
 * /etc/sysctl.d (accept_ra=2 on a forwarding host, no IPv6, ARP and reverse path behaviour).
 * The kernel keeps a link's settings with the link, and a new link starts with conf/default's: the
 * renamed NIC keeps them, the new host side would not have them. Left out: settings that follow
 * the link's MTU (the MTU is carried), addr_gen_mode and stable_secret (a secret the journal would
 * hold), and what no host interface sets.
 */
export const hostSideStack: Readonly<Record<'ipv4' | 'ipv6', readonly string[]>> = {
  ipv4: [
    'forwarding', 'rp_filter', 'arp_ignore', 'arp_announce', 'arp_filter', 'arp_accept', 'arp_notify', 'proxy_arp', 'accept_redirects', 'secure_redirects',
    'send_redirects', 'shared_media', 'accept_source_route', 'accept_local', 'route_localnet', 'log_martians', 'promote_secondaries', 'ignore_routes_with_linkdown',
    'drop_gratuitous_arp', 'drop_unicast_in_l2_multicast', 'src_valid_mark', 'bootp_relay', 'disable_policy', 'disable_xfrm',
  ],
  ipv6: [
    'disable_ipv6', 'forwarding', 'accept_ra', 'accept_ra_defrtr', 'accept_ra_pinfo', 'accept_ra_rtr_pref', 'accept_ra_min_hop_limit', 'accept_ra_mtu', 'autoconf',
    'accept_dad', 'dad_transmits', 'optimistic_dad', 'use_optimistic', 'accept_redirects', 'accept_source_route', 'use_tempaddr', 'temp_valid_lft', 'temp_prefered_lft',
    'max_addresses', 'router_solicitations', 'router_solicitation_interval', 'router_solicitation_delay', 'router_solicitation_max_interval', 'hop_limit', 'proxy_ndp',
    'keep_addr_on_down', 'ignore_routes_with_linkdown', 'drop_unsolicited_na', 'drop_unicast_in_l2_multicast', 'ndisc_notify',
  ],
};

/**
 * `ifname`'s settings of {@link hostSideStack} (`default`: what a new link starts with); a
 * setting this kernel does not have, or cannot read, is left out. Undefined when the link has
 * neither family's settings (no such link).
 */
export function readStackSettings(ifname: string): StackSettings | undefined {
  const out: StackSettings = { ipv4: {}, ipv6: {} };
  let any = false;
  for (const family of ['ipv4', 'ipv6'] as const) {
    for (const key of hostSideStack[family]) {
      const v = readInterfaceSysctl(family, ifname, key);
      if (v === undefined) continue;
      out[family][key] = v;
      any = true;
    }
  }
  return any ? out : undefined;
}

/** The br_netfilter sysctls xennet sets (the firewall's host settings). */
export const bridgeNetfilterSysctls = ['net.bridge.bridge-nf-call-iptables', 'net.bridge.bridge-nf-call-ip6tables', 'net.bridge.bridge-nf-filter-vlan-tagged', 'net.bridge.bridge-nf-filter-pppoe-tagged'] as const;

/**
 * dom0's own IP stack on a guest's bridge port: frames to the link-local group addresses
 * (01:80:c2:00:00:0X) are not bridged but handed up on the port itself, past the bridge's
 * filters. With IPv6 off on the port, IPv4 unicast in link-layer multicast dropped, and reverse
 * path filtering on (the port has no address, so the kernel takes no IPv4 source as reachable
 * through it: broadcast and multicast with any source but 0.0.0.0 are dropped), a guest cannot
 * use them to reach dom0 (rogue router advertisements, forged sources).
 *
 * `position`: where the kernel reports the setting among a link's settings in a link dump
 * (IFLA_INET_CONF holds IPV4_DEVCONF_x at x - 1, IFLA_INET6_CONF holds DEVCONF_x at x; from
 * include/uapi/linux/ip.h and ipv6.h, which only ever append), so that a reader of every link's
 * settings needs no file per setting.
 */
export const guestPortStack: readonly { family: 'ipv4' | 'ipv6'; key: string; value: string; closed?: readonly string[]; position: number }[] = [
  // DEVCONF_DISABLE_IPV6
  { family: 'ipv6', key: 'disable_ipv6', value: '1', position: 26 },
  // IPV4_DEVCONF_DROP_UNICAST_IN_L2_MULTICAST (30)
  { family: 'ipv4', key: 'drop_unicast_in_l2_multicast', value: '1', position: 29 },
  // IPV4_DEVCONF_RP_FILTER (8). Loose mode (2) closes it too: with no address on the port, any
  // reverse path check fails.
  { family: 'ipv4', key: 'rp_filter', value: '1', closed: ['1', '2'], position: 7 },
];
