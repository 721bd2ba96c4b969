import type { IfName } from './ifname.js';

/**
 * What a configured bridge name (a backend's `bridge` node, bridge= in a vif spec) resolves to on
 * a host, as Xen's vif-bridge resolves it: the bridge of that name; else, for `xenbrN` with no
 * link of that name, `ethN` when that is a bridge (the layout of Xen 3.2 and later's
 * network-bridge); else a link that is not a bridge, or nothing.
 */
export type ConfiguredBridge = { state: 'bridge'; bridge: IfName } | { state: 'not-a-bridge'; kind: string | null } | { state: 'missing' };

/** Resolves `name` against the host's links (`kindOf`: a link's kind, null for a plain device, undefined for no link). */
export function resolveConfiguredBridge(name: IfName, kindOf: (link: string) => string | null | undefined): ConfiguredBridge {
  const wanted = kindOf(name);
  if (wanted === 'bridge') return { state: 'bridge', bridge: name };
  if (wanted === undefined) {
    const eth = fallbackOf(name);
    if (eth !== undefined && kindOf(eth) === 'bridge') return { state: 'bridge', bridge: eth };
    return { state: 'missing' };
  }
  return { state: 'not-a-bridge', kind: wanted };
}

/** The bridges a hook may have attached to by this name: itself, and `ethN` for `xenbrN`, whichever existed then. */
export function bridgesResolvableBy(name: IfName): IfName[] {
  const eth = fallbackOf(name);
  return eth === undefined ? [name] : [name, eth];
}

function fallbackOf(name: IfName): IfName | undefined {
  const m = /^xenbr(\d+)$/.exec(name);
  return m ? (`eth${m[1]}` as IfName) : undefined;
}
