/**
 * What the guest firewall needs outside the rule tables, on the links themselves:
 *
 *   - every bridge with guests learns no source MAC from frames to the link-local group addresses
 *     (no_linklocal_learn): those frames skip the bridge's PREROUTING hooks, where a guest's
 *     forged source would be dropped;
 *   - dom0's IP stack is closed on every guest port (IPv6 off, IPv4 unicast inside link-layer
 *     multicast dropped, reverse path filtering on): the same frames are handed up on the port
 *     itself, past every filter.
 *
 * The vif hook sets both when it attaches a vif; `plan` reports what is missing, `apply` sets it,
 * `status` reports it as a problem.
 */
import type { LinkState } from '../bridge/model.js';
import { guestPortStack, readInterfaceSysctl, writeInterfaceSysctl } from '../sys/sysctl.js';

export interface PortGap {
  kind: 'bridge' | 'port';
  name: string;
  problem: string;
}

/** What is missing on these bridges and guest ports (reads the kernel's settings). */
export function portGaps(links: readonly LinkState[], guestPorts: readonly { name: string; bridge: string }[]): PortGap[] {
  const out: PortGap[] = [];
  const bridges = new Set(guestPorts.map((p) => p.bridge));
  for (const b of [...bridges].sort()) {
    const link = links.find((l) => l.name === b);
    if (link?.bridge && !link.bridge.noLinkLocalLearn) {
      out.push({ kind: 'bridge', name: b, problem: `bridge ${b} learns source MACs from link-local frames (no_linklocal_learn is off): a guest can move another host's forwarding entry to itself` });
    }
  }
  for (const p of guestPorts) {
    const open = guestPortStack.filter((s) => {
      const v = readInterfaceSysctl(s.family, p.name, s.key);
      return v !== undefined && !(s.closed ?? [s.value]).includes(v);
    });
    if (open.length > 0) out.push({ kind: 'port', name: p.name, problem: `${p.name}: dom0's IP stack is open on this guest port (${open.map((s) => `${s.family} ${s.key} is not ${s.value}`).join(', ')}): link-local frames from the guest reach dom0 unfiltered` });
  }
  return out;
}

/** Closes the gaps: sysctls here, the bridge option through `setNoLinkLocalLearn` (netlink). */
export async function closePortGaps(gaps: readonly PortGap[], setNoLinkLocalLearn: (bridge: string) => Promise<void>): Promise<void> {
  for (const g of gaps) {
    if (g.kind === 'bridge') await setNoLinkLocalLearn(g.name);
    else for (const s of guestPortStack) writeInterfaceSysctl(s.family, g.name, s.key, s.value);
  }
}
