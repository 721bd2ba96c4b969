/**
 * Pure comparison of what a takeover must preserve: the host-side link's identity (MAC, MTU,
 * up, ARP, multicast), its configured addresses and its carried routes.
 */
import { addressesOn, describeAddress, describeNeigh, describeRoute, isCarriedRoute, isConfiguredAddress, linkByName, neighboursOn, routesVia, type AddressState, type HostState, type NeighState, type RouteState } from './model.js';

const addressKey = (a: AddressState): string =>
  [a.family, a.local, a.prefixLen, a.peer ?? '', a.broadcast ?? '', a.label ?? '', a.scope, a.metric ?? '', a.flags.filter((f) => f !== 'tentative' && f !== 'secondary').join(',')].join('|');

const routeKey = (r: RouteState): string =>
  [r.family, r.table, r.dst, r.src ?? '', r.tos, r.protocol, r.scope, r.type, r.flags & 0x4, r.dev ?? '', r.gateway ?? '', r.metric ?? '', r.prefsrc ?? '', JSON.stringify(r.metrics ?? {}), r.pref ?? ''].join('|');

/** Differences in what `link` carries between two readings; empty when identical. */
export function compareHostSide(before: HostState, after: HostState, link: string): string[] {
  const diffs: string[] = [];
  const b = linkByName(before, link);
  const a = linkByName(after, link);
  if (!b || !a) {
    if (!!b !== !!a) diffs.push(`${link} ${b ? 'is missing' : 'appeared'}`);
    return diffs;
  }
  for (const k of ['mac', 'mtu', 'up', 'arp', 'multicast'] as const) {
    if (a[k] !== b[k]) diffs.push(`${link} ${k} is ${String(a[k])}, was ${String(b[k])}`);
  }
  const bAddr = new Map(addressesOn(before, link).filter(isConfiguredAddress).map((x) => [addressKey(x), x]));
  const aAddr = new Map(addressesOn(after, link).filter(isConfiguredAddress).map((x) => [addressKey(x), x]));
  for (const [k, x] of bAddr) if (!aAddr.has(k)) diffs.push(`address ${describeAddress(x)} is missing from ${link}`);
  for (const [k, x] of aAddr) if (!bAddr.has(k)) diffs.push(`address ${describeAddress(x)} on ${link} is new`);
  const bRoutes = new Map(routesVia(before, link).filter(isCarriedRoute).map((x) => [routeKey(x), x]));
  const aRoutes = new Map(routesVia(after, link).filter(isCarriedRoute).map((x) => [routeKey(x), x]));
  for (const [k, x] of bRoutes) if (!aRoutes.has(k)) diffs.push(`route ${describeRoute(x)} is missing`);
  for (const [k, x] of aRoutes) if (!bRoutes.has(k)) diffs.push(`route ${describeRoute(x)} is new`);
  // A snapshot without neighbours (a journal of a version that did not read them) compares none.
  if (before.neighbours && after.neighbours) {
    const key = (n: NeighState): string => JSON.stringify([n.family, n.dst, n.proxy, n.lladdr ?? null, n.router]);
    const bN = new Map(neighboursOn(before, link).map((x) => [key(x), x]));
    const aN = new Map(neighboursOn(after, link).map((x) => [key(x), x]));
    for (const [k, x] of bN) if (!aN.has(k)) diffs.push(`neighbour ${describeNeigh(x)} is missing from ${link}`);
    for (const [k, x] of aN) if (!bN.has(k)) diffs.push(`neighbour ${describeNeigh(x)} on ${link} is new`);
  }
  return diffs;
}
