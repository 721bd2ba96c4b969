/**
 * A small in-memory model of the kernel's link/address/route behaviour, enough to run takeover
 * plans without root: it rejects what the kernel rejects for these ops (duplicate names,
 * duplicate addresses/routes, missing links) and drops routes and addresses as the kernel does.
 */
import ipaddr from 'ipaddr.js';
import type { AddressState, HostState, LinkState, RouteState } from '../../../src/bridge/model.js';
import type { LinkOp } from '../../../src/bridge/ops.js';

export class ModelError extends Error {}

const clone = <T>(x: T): T => structuredClone(x);
const sameAddress = (a: AddressState, b: AddressState): boolean => a.link === b.link && a.local === b.local && a.prefixLen === b.prefixLen;
const sameRoute = (a: RouteState, b: RouteState): boolean =>
  a.family === b.family && a.table === b.table && a.dst === b.dst && a.tos === b.tos && (a.metric ?? 0) === (b.metric ?? 0);

const RTNH_F_ONLINK = 4;
const covers = (prefix: string, len: number, ip: string): boolean => {
  const a = ipaddr.parse(ip);
  const p = ipaddr.parse(prefix);
  return a.kind() === p.kind() && a.match(p, len);
};

/**
 * The kernel refuses a route whose gateway it cannot reach on the route's link (ENETUNREACH): a
 * gateway is reachable through a prefix of an address on the link, or a route there without a
 * gateway that covers it; an IPv6 link-local one always is; `onlink` skips the check.
 */
function gatewayReachable(h: HostState, r: RouteState): boolean {
  const gw = r.gateway;
  if (gw === undefined || (r.flags & RTNH_F_ONLINK) !== 0 || gw.toLowerCase().startsWith('fe80:')) return true;
  if (h.addresses.some((a) => a.link === r.dev && covers(a.local, a.prefixLen, gw))) return true;
  return h.routes.some((x) => x.dev === r.dev && x.gateway === undefined && x.dst !== 'default' && covers(x.dst.split('/')[0]!, Number(x.dst.split('/')[1] ?? (gw.includes(':') ? 128 : 32)), gw));
}

export function applyToModel(start: HostState, ops: readonly LinkOp[]): HostState {
  const h = clone(start);
  let nextIndex = Math.max(0, ...h.links.map((l) => l.index)) + 1;
  const link = (name: string): LinkState => {
    const l = h.links.find((x) => x.name === name);
    if (!l) throw new ModelError(`ENODEV ${name}`);
    return l;
  };
  const freshLink = (name: string, kind: string): LinkState => {
    if (h.links.some((l) => l.name === name)) throw new ModelError(`EEXIST ${name}`);
    const index = nextIndex++;
    const l: LinkState = { index, name, kind, master: null, mac: `02:00:00:00:00:${index.toString(16).padStart(2, '0')}`, mtu: 1500, up: false, arp: true, multicast: true, peerIndex: null };
    h.links.push(l);
    return l;
  };
  const removeLink = (name: string): void => {
    h.links = h.links.filter((l) => l.name !== name);
    h.addresses = h.addresses.filter((a) => a.link !== name);
    h.routes = h.routes.filter((r) => r.dev !== name);
    if (h.neighbours) h.neighbours = h.neighbours.filter((n) => n.link !== name);
    for (const l of h.links) if (l.master === name) l.master = null;
  };
  for (const o of ops) {
    switch (o.op) {
      case 'create-veth': {
        const a = freshLink(o.name, 'veth');
        const b = freshLink(o.peer, 'veth');
        a.peerIndex = b.index;
        b.peerIndex = a.index;
        break;
      }
      case 'create-bridge':
        freshLink(o.name, 'bridge').bridge = { stpState: 0, forwardDelay: 0, nfCallIptables: true, nfCallIp6tables: true, noLinkLocalLearn: true };
        break;
      case 'delete-veth': {
        const a = link(o.name);
        const peer = h.links.find((l) => l.index === a.peerIndex);
        removeLink(o.name);
        if (peer) removeLink(peer.name);
        break;
      }
      case 'delete-bridge':
        link(o.name);
        removeLink(o.name);
        break;
      case 'rename': {
        const l = link(o.from);
        if (l.up) throw new ModelError(`EBUSY rename of ${o.from} while up`);
        if (h.links.some((x) => x.name === o.to)) throw new ModelError(`EEXIST ${o.to}`);
        l.name = o.to;
        for (const a of h.addresses) if (a.link === o.from) a.link = o.to;
        for (const r of h.routes) if (r.dev === o.from) r.dev = o.to;
        for (const x of h.links) if (x.master === o.from) x.master = o.to;
        for (const n of h.neighbours ?? []) if (n.link === o.from) n.link = o.to;
        break;
      }
      case 'set-up': {
        const l = link(o.link);
        l.up = o.up;
        if (!o.up) {
          // The kernel drops routes through a link that goes down, its IPv6 addresses and its
          // neighbour entries (static and proxy ones included).
          h.routes = h.routes.filter((r) => r.dev !== o.link);
          if (h.neighbours) h.neighbours = h.neighbours.filter((n) => n.link !== o.link);
          h.addresses = h.addresses.filter((a) => !(a.link === o.link && a.family === 'inet6'));
        }
        break;
      }
      case 'set-flags':
        Object.assign(link(o.link), { arp: o.arp, multicast: o.multicast });
        break;
      case 'set-mac':
        link(o.link).mac = o.mac;
        break;
      case 'set-mtu':
        link(o.link).mtu = o.mtu;
        break;
      case 'set-master':
        if (o.master !== null && link(o.master).kind !== 'bridge') throw new ModelError(`EINVAL ${o.master} is not a bridge`);
        link(o.link).master = o.master;
        break;
      case 'add-neigh': {
        link(o.neigh.link);
        const list = (h.neighbours ??= []);
        if (list.some((n) => n.link === o.neigh.link && n.dst === o.neigh.dst && n.proxy === o.neigh.proxy)) throw new ModelError(`EEXIST neighbour ${o.neigh.dst}`);
        list.push(clone(o.neigh));
        break;
      }
      case 'delete-neigh': {
        const before = (h.neighbours ?? []).length;
        h.neighbours = (h.neighbours ?? []).filter((n) => !(n.link === o.neigh.link && n.dst === o.neigh.dst && n.proxy === o.neigh.proxy));
        if (h.neighbours.length === before) throw new ModelError(`ENOENT neighbour ${o.neigh.dst}`);
        break;
      }
      case 'set-sysctl':
        link(o.link); // the settings themselves are not modelled
        break;
      case 'add-address':
        link(o.address.link);
        if (h.addresses.some((a) => sameAddress(a, o.address))) throw new ModelError(`EEXIST ${o.address.local}`);
        h.addresses.push(clone(o.address));
        break;
      case 'delete-address': {
        const before = h.addresses.length;
        h.addresses = h.addresses.filter((a) => !sameAddress(a, o.address));
        if (h.addresses.length === before) throw new ModelError(`EADDRNOTAVAIL ${o.address.local}`);
        // Routes preferring a removed source address go with it.
        h.routes = h.routes.filter((r) => r.prefsrc !== o.address.local);
        break;
      }
      case 'add-route': {
        const l = link(o.route.dev ?? '');
        if (!l.up) throw new ModelError(`ENETDOWN ${l.name}`);
        if (o.route.prefsrc && !h.addresses.some((a) => a.local === o.route.prefsrc)) throw new ModelError(`EINVAL prefsrc ${o.route.prefsrc}`);
        if (!gatewayReachable(h, o.route)) throw new ModelError(`ENETUNREACH gateway ${o.route.gateway ?? ''}`);
        if (h.routes.some((r) => sameRoute(r, o.route))) throw new ModelError(`EEXIST route ${o.route.dst}`);
        h.routes.push(clone(o.route));
        break;
      }
      case 'delete-route': {
        const before = h.routes.length;
        h.routes = h.routes.filter((r) => !sameRoute(r, o.route));
        if (h.routes.length === before) throw new ModelError(`ESRCH route ${o.route.dst}`);
        break;
      }
    }
  }
  return h;
}
