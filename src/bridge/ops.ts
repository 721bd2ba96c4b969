/**
 * Link operations: the plain-data steps of a network change. Each op can be printed, stored in
 * the takeover journal, and inverted; the executor (./apply-ops.ts) performs them.
 */
import { describeAddress, describeNeigh, describeRoute, type AddressState, type NeighState, type RouteState } from './model.js';

export type LinkOp =
  | { op: 'create-veth'; name: string; peer: string }
  | { op: 'create-bridge'; name: string }
  | { op: 'delete-veth'; name: string; peer: string }
  | { op: 'delete-bridge'; name: string }
  /**
   * `index`: the link's ifindex, when the plan knows it; `pairedWith`: the link is a veth whose
   * peer has that name. Either makes the rename refuse a link of that name that is another one
   * (an undo run again over a host already restored must never rename the NIC).
   */
  | { op: 'rename'; from: string; to: string; index?: number; pairedWith?: string }
  | { op: 'set-up'; link: string; up: boolean; was: boolean }
  | { op: 'set-flags'; link: string; arp: boolean; multicast: boolean; was: { arp: boolean; multicast: boolean } }
  | { op: 'set-mac'; link: string; mac: string; was: string }
  | { op: 'set-alias'; link: string; alias: string; was: string }
  | { op: 'set-mtu'; link: string; mtu: number; was: number }
  | { op: 'set-master'; link: string; master: string | null; was: string | null }
  /** A per-interface IP-stack setting (net.<family>.conf.<link>.<key>). */
  | { op: 'set-sysctl'; link: string; family: 'ipv4' | 'ipv6'; key: string; value: string; was: string }
  | { op: 'add-address'; address: AddressState }
  | { op: 'delete-address'; address: AddressState }
  | { op: 'add-route'; route: RouteState }
  | { op: 'delete-route'; route: RouteState }
  | { op: 'add-neigh'; neigh: NeighState }
  | { op: 'delete-neigh'; neigh: NeighState };

export function invert(o: LinkOp): LinkOp {
  switch (o.op) {
    case 'create-veth':
      return { op: 'delete-veth', name: o.name, peer: o.peer };
    case 'delete-veth':
      return { op: 'create-veth', name: o.name, peer: o.peer };
    case 'create-bridge':
      return { op: 'delete-bridge', name: o.name };
    case 'delete-bridge':
      return { op: 'create-bridge', name: o.name };
    case 'rename': {
      const r: LinkOp = { op: 'rename', from: o.to, to: o.from };
      if (o.index !== undefined) r.index = o.index;
      if (o.pairedWith !== undefined) r.pairedWith = o.pairedWith;
      return r;
    }
    case 'set-up':
      return { op: 'set-up', link: o.link, up: o.was, was: o.up };
    case 'set-flags':
      return { op: 'set-flags', link: o.link, arp: o.was.arp, multicast: o.was.multicast, was: { arp: o.arp, multicast: o.multicast } };
    case 'set-mac':
      return { op: 'set-mac', link: o.link, mac: o.was, was: o.mac };
    case 'set-alias':
      return { op: 'set-alias', link: o.link, alias: o.was, was: o.alias };
    case 'set-mtu':
      return { op: 'set-mtu', link: o.link, mtu: o.was, was: o.mtu };
    case 'set-master':
      return { op: 'set-master', link: o.link, master: o.was, was: o.master };
    case 'set-sysctl':
      return { op: 'set-sysctl', link: o.link, family: o.family, key: o.key, value: o.was, was: o.value };
    case 'add-address':
      return { op: 'delete-address', address: o.address };
    case 'delete-address':
      return { op: 'add-address', address: o.address };
    case 'add-route':
      return { op: 'delete-route', route: o.route };
    case 'delete-route':
      return { op: 'add-route', route: o.route };
    case 'add-neigh':
      return { op: 'delete-neigh', neigh: o.neigh };
    case 'delete-neigh':
      return { op: 'add-neigh', neigh: o.neigh };
  }
}

/** The inverse sequence: what undoes `ops` when run in order. */
export function inverseOf(ops: readonly LinkOp[]): LinkOp[] {
  return [...ops].reverse().map(invert);
}

export function describeOp(o: LinkOp): string {
  switch (o.op) {
    case 'create-veth':
      return `create veth pair ${o.name}/${o.peer}`;
    case 'delete-veth':
      return `delete veth pair ${o.name}/${o.peer}`;
    case 'create-bridge':
      return `create bridge ${o.name} (STP off, forward delay 0, netfilter calls on)`;
    case 'delete-bridge':
      return `delete bridge ${o.name}`;
    case 'rename':
      return `rename ${o.from} to ${o.to}`;
    case 'set-up':
      return `set ${o.link} ${o.up ? 'up' : 'down'}`;
    case 'set-flags':
      return `set ${o.link} arp ${o.arp ? 'on' : 'off'}, multicast ${o.multicast ? 'on' : 'off'}`;
    case 'set-mac':
      return `set MAC of ${o.link} to ${o.mac}`;
    case 'set-alias':
      return o.alias === '' ? `clear the alias of ${o.link}` : `set the alias of ${o.link} to ${o.alias}`;
    case 'set-mtu':
      return `set MTU of ${o.link} to ${o.mtu}`;
    case 'set-master':
      return o.master === null ? `detach ${o.link} from ${o.was ?? 'its bridge'}` : `attach ${o.link} to ${o.master}`;
    case 'set-sysctl':
      return `set net.${o.family}.conf.${o.link}.${o.key} to ${o.value}`;
    case 'add-address':
      return `add address ${describeAddress(o.address)} to ${o.address.link}`;
    case 'delete-address':
      return `remove address ${describeAddress(o.address)} from ${o.address.link}`;
    case 'add-route':
      return `add route ${describeRoute(o.route)}`;
    case 'delete-route':
      return `remove route ${describeRoute(o.route)}`;
    case 'add-neigh':
      return `add neighbour ${describeNeigh(o.neigh)} on ${o.neigh.link}`;
    case 'delete-neigh':
      return `remove neighbour ${describeNeigh(o.neigh)} from ${o.neigh.link}`;
  }
}
