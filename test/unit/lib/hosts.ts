/** Host fixtures for planner tests. */
import type { AddressState, HostState, LinkState, RouteState } from '../../../src/bridge/model.js';

export function nic(name: string, index: number, extra: Partial<LinkState> = {}): LinkState {
  return { index, name, kind: null, master: null, mac: '52:54:00:12:34:56', mtu: 1400, up: true, arp: true, multicast: true, peerIndex: null, ...extra };
}

export function addr(link: string, local: string, prefixLen: number, extra: Partial<AddressState> = {}): AddressState {
  return { family: local.includes(':') ? 'inet6' : 'inet', link, local, prefixLen, scope: local.startsWith('fe80') ? 253 : 0, flags: ['permanent'], ...extra };
}

export function route(dev: string, dst: string, extra: Partial<RouteState> = {}): RouteState {
  return { family: (extra.gateway ?? dst).includes(':') ? 'inet6' : 'inet', table: 254, dst, tos: 0, protocol: 3, scope: 0, type: 1, flags: 0, dev, ...extra };
}

/** The dom0 of the issue: eth0 with primary + secondary IPv4, global IPv6, and four routes. */
export function dom0(): HostState {
  return {
    links: [nic('lo', 1, { kind: null, mac: '00:00:00:00:00:00', mtu: 65536, arp: false, multicast: false }), nic('eth0', 2)],
    addresses: [
      addr('lo', '127.0.0.1', 8, { scope: 254 }),
      addr('eth0', '192.168.0.2', 24, { broadcast: '192.168.0.255' }),
      addr('eth0', '192.168.0.3', 24, { label: 'eth0:1', flags: ['permanent', 'secondary'] }),
      addr('eth0', '2001:db8::2', 64, { flags: ['nodad', 'permanent'] }),
      addr('eth0', 'fe80::5054:ff:fe12:3456', 64),
    ],
    routes: [
      route('eth0', 'default', { gateway: '192.168.0.1' }),
      route('eth0', '10.8.0.0/16', { gateway: '192.168.0.1', prefsrc: '192.168.0.3' }),
      route('eth0', '10.9.0.0/16', { gateway: '192.168.0.1', metric: 50, table: 100 }),
      route('eth0', 'default', { gateway: '2001:db8::1', metric: 1024 }),
      route('eth0', '192.168.0.0/24', { protocol: 2, scope: 253, prefsrc: '192.168.0.2' }),
      route('eth0', '192.168.0.2/32', { protocol: 2, table: 255, type: 2, scope: 254 }),
      route('eth0', 'fe80::/64', { protocol: 2, metric: 256 }),
    ],
    neighbours: [
      { family: 'inet', link: 'eth0', dst: '192.168.0.1', lladdr: '52:54:00:00:00:01', proxy: false, router: false },
      { family: 'inet6', link: 'eth0', dst: '2001:db8::60', proxy: true, router: false },
    ],
  };
}
