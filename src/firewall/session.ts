/** Gathers the host's live vifs (netlink + xenstore) for `plan`, `apply` and `status`. */
import { NetlinkClient } from '../bridge/nl/client.js';
import type { AddressState, LinkState, RouteState } from '../bridge/model.js';
import { bridgeNetfilterSysctls, guestPortStack, readSysctl } from '../sys/sysctl.js';
import { reasonOf } from '../sys/errors.js';
import { XenstoreClient } from '../xenstore/client.js';
import { discoverVifs, type DiscoveredVif, type FailedBackend, type PendingBackend } from './discover.js';

export interface HostFacts {
  links: LinkState[];
  vifs: DiscoveredVif[];
  /** Backends whose hook failed and whose interface is on no bridge (discoverVifs). */
  failedBackends: FailedBackend[];
  /** Backends with a vifname waiting for their hook, their link unattached (discoverVifs). */
  pendingBackends: PendingBackend[];
  xenstore: string | null;
  /** Whether xenstore's backends were read (false: unreachable, or a read failed). */
  xenstoreRead: boolean;
  warnings: string[];
  /** With `dom0`: dom0's own addresses (on links that are not guest ports) and its gateways. */
  dom0?: { addresses: string[]; gateways: string[] };
}

/**
 * The kernel's network state as `status` reads it, read once: the links, every address, the
 * routes, the br_netfilter settings and each interface's IP-stack settings. A caller that keys a
 * remembered status on these gives the same snapshot to the read, so that what the status shows is
 * what its key was made of (a setting that flips and flips back during a read cannot leave an
 * answer that matches a key it was not read from).
 */
export interface NetSnapshot {
  links: LinkState[];
  addresses: AddressState[];
  routes: RouteState[];
  bridgeSysctls: Record<string, string | undefined>;
  /** Per interface: its guestPortStack settings, in that order. */
  portSysctls: ReadonlyMap<string, readonly (string | undefined)[]>;
}

/** A port's IP-stack setting as the snapshot holds it (portGaps' reader). */
export function snapshotSetting(snapshot: NetSnapshot): (family: 'ipv4' | 'ipv6', port: string, key: string) => string | undefined {
  return (family, port, key) => snapshot.portSysctls.get(port)?.[guestPortStack.findIndex((st) => st.family === family && st.key === key)];
}

export async function readNetSnapshot(nl: NetlinkClient): Promise<NetSnapshot> {
  // Each link's IP-stack settings come with the link dump (at 1000 guest ports, reading their
  // sysctl files one by one took 35 ms).
  const { links, settings } = await nl.listLinksWithSettings();
  const [addresses, routes] = [await nl.listAddresses(links), await nl.listRoutes(links)];
  const bridgeSysctls = Object.fromEntries(bridgeNetfilterSysctls.map((k) => [k, readSysctl(k)]));
  const portSysctls = new Map(
    links.map((l) => {
      const of = settings.get(l.name);
      return [l.name, guestPortStack.map((st) => of?.[st.family](st.position)?.toString())] as const;
    }),
  );
  return { links, addresses, routes, bridgeSysctls, portSysctls };
}

/** A snapshot read now, on a netlink socket of its own. */
export async function readNetSnapshotNow(): Promise<NetSnapshot> {
  const nl = new NetlinkClient();
  try {
    return await readNetSnapshot(nl);
  } finally {
    nl.close();
  }
}

/** How the warning for a xenstore that cannot be connected to begins. */
export const XENSTORE_UNREACHABLE = 'xenstore is not reachable';

export async function gatherHostFacts(env: NodeJS.ProcessEnv = process.env, options: { dom0?: boolean; snapshot?: NetSnapshot } = {}): Promise<HostFacts> {
  const nl = new NetlinkClient();
  let xs: XenstoreClient | undefined;
  const warnings: string[] = [];
  try {
    const links = options.snapshot?.links ?? (await nl.listLinks());
    try {
      xs = await XenstoreClient.connect(env);
    } catch (e) {
      warnings.push(`${XENSTORE_UNREACHABLE} (${reasonOf(e)}): domain names, MACs and addresses come from the rule file only`);
    }
    // Links a hook has firewalled but not attached yet are live too (their rules must stay).
    const { loadIndex } = await import('./store.js');
    const { silentLogger } = await import('../sys/log.js');
    const recorded = new Map(Object.entries(loadIndex(env, silentLogger).index.vifs).map(([n, e]) => [n, { bridge: e.bridge, ...(e.owner ? { owner: e.owner } : {}), macs: (e.claims?.mac ?? []).map((m) => m.toLowerCase()) }]));
    const found = await discoverVifs(links, xs, recorded);
    // A learning guest's bindings (the xtables backend's ARP and NA rules are made from them).
    const { learnedAddressesByVif } = await import('./learning/state.js');
    const domids = new Map(found.vifs.map((v) => [v.name as string, v.domid]));
    const learned = learnedAddressesByVif(env, undefined, Date.now(), (n) => domids.get(n));
    for (const v of found.vifs) {
      const l = learned.get(v.name);
      if (l) v.learned = l;
    }
    const facts: HostFacts = { links, vifs: found.vifs, failedBackends: found.failed, pendingBackends: found.pending, xenstore: xs?.endpoint ?? null, xenstoreRead: found.xenstoreRead, warnings: [...warnings, ...found.warnings] };
    if (options.dom0) {
      const snap = options.snapshot;
      const own = links.filter((l) => !found.vifs.some((v) => v.name === l.name));
      const ownNames = new Set(own.map((l) => l.name));
      const [addresses, routes] = snap ? [snap.addresses.filter((a) => ownNames.has(a.link)), snap.routes] : [await nl.listAddresses(own), await nl.listRoutes(links)];
      facts.dom0 = { addresses: [...new Set(addresses.map((a) => a.local))], gateways: [...new Set(routes.filter((r) => r.dst === 'default' && r.gateway).map((r) => r.gateway!))] };
    }
    return facts;
  } finally {
    xs?.close();
    nl.close();
  }
}
