/**
 * Pure planning of the Xen 3.0 "netloop" bridge takeover (network-bridge start):
 *
 *   before:  eth0 (NIC, host MAC/addresses/routes)
 *   after:   peth0 (the NIC, quiet) ──┐
 *            vif0.0 (quiet) ──────────┴─ xenbr0 ;  vif0.0 <-veth-> eth0 (host MAC/addresses/routes)
 *
 * `resolveTakeoverSpec` fills in Xen's defaults, `checkTakeover` refuses unsafe starting points,
 * `planTakeover` returns the steps. Undoing is the inverse sequence (see ./ops.ts).
 */
import { refused, usageError } from '../sys/errors.js';
import { addressesOn, isCarriedRoute, isConfiguredAddress, linkByName, neighboursOn, QuietMac, RouteTableMain, routesVia, type AddressState, type HostState, type LinkState, type RouteState } from './model.js';
import type { StackSettings } from '../sys/sysctl.js';
import type { LinkOp } from './ops.js';

export interface TakeoverSpec {
  /** The NIC that carries the host's addresses (eth0). */
  netdev: string;
  /** The bridge (xenbr0). */
  bridge: string;
  vifnum: number;
  /** The NIC's name after the takeover (peth0). */
  pdev: string;
  /** The veth end that becomes the host's eth0 (veth0). */
  vdev: string;
  /** The veth end that is a bridge port (vif0.0). */
  vif0: string;
}

export interface TakeoverArgs {
  netdev?: string | undefined;
  bridge?: string | undefined;
  vifnum?: number | string | undefined;
}

const IFNAMSIZ = 16;
/** The MTU the kernel gives a new veth end (ETH_DATA_LEN). */
const VethDefaultMtu = 1500;
const ifnamePattern = /^[A-Za-z0-9_][A-Za-z0-9_.:-]*$/;
/** The form of every setting the takeover carries (the journal takes no other). */
const IntegerSetting = /^-?\d{1,20}$/;

export function validateIfname(name: string, what: string): void {
  if (name.length === 0 || name.length >= IFNAMSIZ || !ifnamePattern.test(name) || name === '.' || name === '..') {
    throw usageError(`${what} ${JSON.stringify(name)} is not a valid interface name`, `use 1 to ${IFNAMSIZ - 1} characters of A-Z a-z 0-9 _ . : -`);
  }
}

/** The longest interface name the kernel takes (IFNAMSIZ - 1). */
export const MaxIfnameLength = IFNAMSIZ - 1;

/**
 * The device the host's default route leaves by: the main table's IPv4 default route of lowest
 * metric, else the IPv6 one. `nexthops` is set instead when that route is multipath.
 */
export function defaultRouteDevice(routes: readonly RouteState[]): { dev: string } | { nexthops: string[] } | undefined {
  for (const family of ['inet', 'inet6'] as const) {
    const defaults = routes
      .filter((r) => r.family === family && r.dst === 'default' && r.table === RouteTableMain && (r.dev || r.nexthopDevs?.length))
      .sort((a, b) => (a.metric ?? 0) - (b.metric ?? 0));
    const best = defaults[0];
    if (best) return best.dev ? { dev: best.dev } : { nexthops: best.nexthopDevs ?? [] };
  }
  return undefined;
}

/** The vifnum of a NIC found through the default route: N for Xen's eth<N>, else 0 (xenbr0, veth0, vif0.0). */
export function vifnumOf(nic: string): number {
  const m = /^eth(\d{1,3})$/.exec(nic);
  return m ? Number(m[1]) : 0;
}

/**
 * The names of a takeover.
 *
 * - netdev: `--netdev` (xend's `netdev=`), else the device of the default route (IPv4, else
 *   IPv6; see {@link defaultRouteDevice}). No default route and no `--netdev` is an error.
 * - vifnum: `--vifnum`, else N when the NIC found through the default route is eth<N>, else 0.
 * - bridge = xenbr$vifnum, pdev = p$netdev, vdev = veth$vifnum, vif0 = vif0.$vifnum.
 *
 * With no explicit argument, a takeover recorded in a journal of this boot (`recorded`) wins: the
 * one whose netdev carries the default route, or the only one when there is no default route (a
 * start killed after it took the routes away).
 */
export function resolveTakeoverSpec(args: TakeoverArgs, host: Pick<HostState, 'routes'>, recorded: readonly TakeoverSpec[] = [], purpose: 'start' | 'inspect' = 'start'): TakeoverSpec {
  let vifnum: number | undefined;
  if (args.vifnum !== undefined && args.vifnum !== '') {
    const text = String(args.vifnum);
    if (!/^\d{1,3}$/.test(text)) throw usageError(`vifnum ${JSON.stringify(text)} is not a number from 0 to 999`);
    vifnum = Number(text);
  }
  let netdev = args.netdev;
  if (netdev === undefined) {
    const found = defaultRouteDevice(host.routes);
    if (vifnum === undefined && args.bridge === undefined) {
      const mine = found && 'dev' in found ? recorded.find((s) => s.netdev === found.dev) : recorded.length === 1 && !found ? recorded[0] : undefined;
      if (mine) return { ...mine };
    }
    if (!found) {
      throw refused('there is no default route (IPv4 or IPv6) to tell which NIC carries the host addresses; nothing was changed', 'name the NIC: xennet bridge --netdev <NIC> (network-xennet: netdev=<NIC>)');
    }
    if (!('dev' in found)) {
      throw refused(`the default route is a multipath route (through ${found.nexthops.join(', ')}), so it does not tell which NIC to take over; nothing was changed`, 'name the NIC: xennet bridge --netdev <NIC> (network-xennet: netdev=<NIC>)');
    }
    netdev = found.dev;
    vifnum ??= vifnumOf(netdev);
  }
  vifnum ??= 0;
  const spec: TakeoverSpec = {
    netdev,
    bridge: args.bridge ?? `xenbr${vifnum}`,
    vifnum,
    pdev: `p${netdev}`,
    vdev: `veth${vifnum}`,
    vif0: `vif0.${vifnum}`,
  };
  validateIfname(spec.netdev, 'netdev');
  validateIfname(spec.bridge, 'bridge');
  // Only a start needs the renamed NIC's name: a NIC whose p<name> does not fit was never taken
  // over, and `stop` and `status` say so instead of refusing.
  if (purpose === 'inspect' && spec.pdev.length > MaxIfnameLength) return spec;
  if (spec.pdev.length > MaxIfnameLength) {
    throw refused(
      `the NIC ${spec.netdev} would be renamed ${spec.pdev}, which has ${spec.pdev.length} characters; the kernel allows ${MaxIfnameLength} (IFNAMSIZ); nothing was changed`,
      `give the NIC a name of at most ${MaxIfnameLength - 1} characters (a systemd .link file with [Link] Name=, or a udev rule), then start again`,
    );
  }
  validateIfname(spec.pdev, 'physical device name (p + netdev)');
  const names = [spec.netdev, spec.bridge, spec.pdev, spec.vdev, spec.vif0];
  if (new Set(names).size !== names.length) throw usageError(`names collide: ${names.join(', ')} must all differ`);
  return spec;
}

/** Where the host stands relative to a takeover with this spec. */
export type Layout =
  | { kind: 'original' } // netdev is the NIC, no pdev: start would take over
  | { kind: 'taken-over' } // pdev and vif0 are ports of the bridge, netdev is the veth end
  | { kind: 'other'; reason: string }; // neither: refuse

function isVethPair(a: LinkState | undefined, b: LinkState | undefined): boolean {
  return !!a && !!b && a.kind === 'veth' && b.kind === 'veth' && a.peerIndex === b.index && b.peerIndex === a.index;
}

export function classifyLayout(spec: TakeoverSpec, host: HostState): Layout {
  const net = linkByName(host, spec.netdev);
  const pdev = linkByName(host, spec.pdev);
  const vif0 = linkByName(host, spec.vif0);
  const bridge = linkByName(host, spec.bridge);
  if (pdev && vif0 && bridge?.kind === 'bridge' && pdev.master === spec.bridge && vif0.master === spec.bridge && isVethPair(net, vif0)) {
    return { kind: 'taken-over' };
  }
  if (!net) return { kind: 'other', reason: `network device ${spec.netdev} does not exist` };
  if (pdev) return { kind: 'other', reason: `${spec.pdev} already exists but is not a port of ${spec.bridge} paired with ${spec.netdev}` };
  return { kind: 'original' };
}

/** Refuses (throws) when starting from `host` would be unsafe or ambiguous. Changes nothing. */
export function checkTakeover(spec: TakeoverSpec, host: HostState): void {
  const net = linkByName(host, spec.netdev);
  if (!net) {
    const candidates = host.routes.filter((r) => r.dst === 'default' && r.dev).map((r) => r.dev);
    throw refused(
      `network device ${spec.netdev} does not exist; nothing was changed`,
      candidates.length > 0 ? `the default route uses ${[...new Set(candidates)].join(', ')}: pass --netdev` : 'pass --netdev with the NIC that carries the host addresses',
    );
  }
  if (net.kind === 'bridge') {
    throw refused(`${spec.netdev} is a bridge, not a NIC; nothing was changed`, 'this host already bridges its NIC under that name (Xen 3.2+ layout); point the toolstack at that bridge instead');
  }
  if (net.master !== null) {
    throw refused(`${spec.netdev} is already a port of ${net.master}; nothing was changed`, `detach it first, or take over the device that carries the addresses`);
  }
  if (linkByName(host, spec.pdev)) {
    throw refused(`${spec.pdev} already exists; nothing was changed`, `another tool (Xen's network-bridge?) may have taken this host over; run its stop, or rename ${spec.pdev}`);
  }
  const vdev = linkByName(host, spec.vdev);
  const vif0 = linkByName(host, spec.vif0);
  if (vdev || vif0) {
    if (!isVethPair(vdev, vif0)) {
      throw refused(`${vdev ? spec.vdev : spec.vif0} already exists and is not one end of a ${spec.vdev}/${spec.vif0} veth pair; nothing was changed`, 'remove it or choose another --vifnum');
    }
    if (vdev!.master !== null || (vif0!.master !== null && vif0!.master !== spec.bridge)) {
      throw refused(`the existing ${spec.vdev}/${spec.vif0} pair is already attached elsewhere; nothing was changed`);
    }
  }
  const stacked = host.links.filter((l) => l.lower === net.index);
  if (stacked.length > 0) {
    throw refused(
      `${stacked.map((l) => `${l.name} (${l.kind ?? 'link'})`).join(', ')} ${stacked.length === 1 ? 'is' : 'are'} stacked on ${spec.netdev}, which then cannot be a bridge port (the kernel refuses it: EBUSY); nothing was changed`,
      `move ${stacked.length === 1 ? 'it' : 'them'} onto the host side after the takeover, or remove ${stacked.length === 1 ? 'it' : 'them'} first`,
    );
  }
  const multipath = host.routes.find((r) => r.nexthopDevs?.includes(spec.netdev));
  if (multipath) {
    throw refused(`route ${multipath.dst} (table ${multipath.table}) is a multipath route through ${spec.netdev}, which xennet cannot carry over; nothing was changed`, 'replace it by single-path routes for the takeover');
  }
  const bridge = linkByName(host, spec.bridge);
  if (bridge && bridge.kind !== 'bridge') {
    throw refused(`${spec.bridge} exists and is not a bridge (kind ${bridge.kind ?? 'device'}); nothing was changed`, 'choose another --bridge');
  }
}

/** Order in which addresses are removed: secondaries before primaries, so none is promoted or cascaded. */
function removalOrder(addresses: AddressState[]): AddressState[] {
  return [...addresses].reverse();
}

/**
 * The steps of a takeover from `host` (which must pass {@link checkTakeover}). Links are named as
 * they are at the moment each step runs.
 */
/**
 * The IP-stack settings a takeover carries: the NIC's, and the ones the future host side has (an
 * existing veth end's own, else conf/default's, which a new link starts with).
 */
export interface TakeoverStacks {
  nic: StackSettings;
  hostSide: StackSettings;
}

export function planTakeover(spec: TakeoverSpec, host: HostState, stacks?: TakeoverStacks): LinkOp[] {
  checkTakeover(spec, host);
  const net = linkByName(host, spec.netdev)!;
  const { netdev: N, pdev: P, vdev: V, vif0: W, bridge: B } = spec;
  const addresses = addressesOn(host, N).filter(isConfiguredAddress);
  // Routes without a gateway first (added in this order, removed in the reverse): a gateway is
  // reachable only through one of them (a /32 address whose gateway is a host route, the hosters'
  // layout), and the kernel refuses the gateway route before it (ENETUNREACH).
  const routes: RouteState[] = routesVia(host, N)
    .filter(isCarriedRoute)
    .sort((a, b) => Number(a.gateway !== undefined) - Number(b.gateway !== undefined));
  const ops: LinkOp[] = [];

  // 1. The veth pair (new links start down with ARP and multicast on and a random MAC).
  const existingV = linkByName(host, V);
  const existingW = linkByName(host, W);
  if (!existingV) ops.push({ op: 'create-veth', name: V, peer: W });
  // A new veth end starts with a random MAC and the kernel's default MTU: always set both.
  const fresh = { mac: '', mtu: 0, up: false, arp: true, multicast: true, master: null };
  const vState = existingV ?? fresh;
  const wState = existingW ?? fresh;

  // 2. The bridge, reused when it exists.
  const existingB = linkByName(host, B);
  if (!existingB) ops.push({ op: 'create-bridge', name: B });
  const bState = existingB ?? { up: false, arp: true, multicast: true };

  // 3. Prepare the future host side: the NIC's MAC and MTU.
  if (existingV && existingV.up) ops.push({ op: 'set-up', link: V, up: false, was: true });
  if (vState.mac !== net.mac) ops.push({ op: 'set-mac', link: V, mac: net.mac, was: vState.mac || QuietMac });
  if (vState.mtu !== net.mtu) ops.push({ op: 'set-mtu', link: V, mtu: net.mtu, was: vState.mtu || VethDefaultMtu });

  // The NIC's IP-stack settings (/etc/sysctl.d's net.ipv6.conf.eth0.accept_ra=2 and the like):
  // the renamed NIC keeps its own, the host side gets them before it comes up (disable_ipv6 first,
  // before any other IPv6 setting; none of them needs the link up).
  if (stacks) {
    for (const family of ['ipv4', 'ipv6'] as const) {
      for (const [key, value] of Object.entries(stacks.nic[family]).sort(([a], [b]) => (a === 'disable_ipv6' ? -1 : b === 'disable_ipv6' ? 1 : 0))) {
        const was = stacks.hostSide[family][key];
        if (was === undefined || was === value || !IntegerSetting.test(value) || !IntegerSetting.test(was)) continue;
        ops.push({ op: 'set-sysctl', link: V, family, key, value, was });
      }
    }
  }

  // 4. Quiet vif0.0: no ARP, no multicast, the fe:ff:ff:ff:ff:ff MAC bridges never adopt.
  if (wState.up) ops.push({ op: 'set-up', link: W, up: false, was: true });
  ops.push({ op: 'set-flags', link: W, arp: false, multicast: false, was: { arp: wState.arp, multicast: wState.multicast } });
  ops.push({ op: 'set-mac', link: W, mac: QuietMac, was: wState.mac || QuietMac });
  if (wState.mtu !== net.mtu) ops.push({ op: 'set-mtu', link: W, mtu: net.mtu, was: wState.mtu || VethDefaultMtu });

  // 5. Take the host's neighbour entries, routes and addresses off the NIC, then take it down (the
  // kernel drops a link's neighbour entries when it goes down: taken off by a step of their own,
  // they are put back by its inverse, once the NIC is up again).
  const neighbours = neighboursOn(host, N);
  for (const n of neighbours) ops.push({ op: 'delete-neigh', neigh: n });
  for (const r of [...routes].reverse()) ops.push({ op: 'delete-route', route: r });
  for (const a of removalOrder(addresses)) ops.push({ op: 'delete-address', address: a });
  if (net.up) ops.push({ op: 'set-up', link: N, up: false, was: true });

  // 6. Swap the names: eth0 -> peth0, veth0 -> eth0.
  ops.push({ op: 'rename', from: N, to: P, index: net.index });
  ops.push({ op: 'rename', from: V, to: N, pairedWith: W });

  // 7. Quiet peth0.
  ops.push({ op: 'set-flags', link: P, arp: false, multicast: false, was: { arp: net.arp, multicast: net.multicast } });
  ops.push({ op: 'set-mac', link: P, mac: QuietMac, was: net.mac });

  // 8. Bridge up with its two ports.
  ops.push({ op: 'set-flags', link: B, arp: false, multicast: false, was: { arp: bState.arp, multicast: bState.multicast } });
  if (!bState.up) ops.push({ op: 'set-up', link: B, up: true, was: false });
  if (wState.master !== B) ops.push({ op: 'set-master', link: W, master: B, was: null });
  ops.push({ op: 'set-up', link: W, up: true, was: false });
  ops.push({ op: 'set-master', link: P, master: B, was: null });
  ops.push({ op: 'set-up', link: P, up: true, was: false });

  // 9. The new eth0: the NIC's flags, up, then its addresses (primaries first) and routes.
  if (vState.arp !== net.arp || vState.multicast !== net.multicast) {
    ops.push({ op: 'set-flags', link: N, arp: net.arp, multicast: net.multicast, was: { arp: vState.arp, multicast: vState.multicast } });
  }
  if (net.up) ops.push({ op: 'set-up', link: N, up: true, was: false });
  for (const a of addresses) ops.push({ op: 'add-address', address: a });
  for (const r of routes) ops.push({ op: 'add-route', route: r });
  for (const n of neighbours) ops.push({ op: 'add-neigh', neigh: n });
  return ops;
}

/** Ports of the bridge other than the two the takeover put there (guest vifs, other NICs). */
export function foreignPorts(spec: TakeoverSpec, host: HostState): string[] {
  return host.links.filter((l) => l.master === spec.bridge && l.name !== spec.pdev && l.name !== spec.vif0).map((l) => l.name);
}
