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
import { recordOriginal } from '../sys/originals.js';
import { ifindexOf } from '../sys/sysfs.js';

export interface PortGap {
  kind: 'bridge' | 'port';
  name: string;
  problem: string;
}

/** What is missing on these bridges and guest ports (reads the kernel's settings). */
export function portGaps(links: readonly LinkState[], guestPorts: readonly { name: string; bridge: string }[], readSetting: (family: 'ipv4' | 'ipv6', port: string, key: string) => string | undefined = readInterfaceSysctl): PortGap[] {
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
      const v = readSetting(s.family, p.name, s.key);
      return v !== undefined && !(s.closed ?? [s.value]).includes(v);
    });
    if (open.length > 0) out.push({ kind: 'port', name: p.name, problem: `${p.name}: dom0's IP stack is open on this guest port (${open.map((s) => `${s.family} ${s.key} is not ${s.value}`).join(', ')}): link-local frames from the guest reach dom0 unfiltered` });
  }
  return out;
}

/**
 * Closes dom0's IP stack on a guest port. Reads the settings first: only those that differ are
 * written, and when one does, what the port had is recorded (once per port) for `xennet
 * uninstall`. A port already closed costs three reads.
 */
export function closeGuestPort(port: string, env: NodeJS.ProcessEnv = process.env): void {
  const before = guestPortStack.map((s) => readInterfaceSysctl(s.family, port, s.key));
  const open = guestPortStack.filter((s, i) => before[i] !== undefined && before[i] !== s.value);
  if (open.length === 0) return;
  const ifindex = ifindexOf(port);
  if (ifindex !== undefined) {
    const values: Record<string, string> = {};
    guestPortStack.forEach((s, i) => {
      if (before[i] !== undefined) values[`${s.family}/${s.key}`] = before[i]!;
    });
    recordOriginal({ kind: 'port', port, ifindex, values }, env);
  }
  for (const s of open) writeInterfaceSysctl(s.family, port, s.key, s.value);
}

/** Sets no_linklocal_learn on a bridge that lacks it, recording that it was off first. */
export async function hardenBridge(bridge: string, setNoLinkLocalLearn: (bridge: string) => Promise<void>, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const ifindex = ifindexOf(bridge);
  if (ifindex !== undefined) recordOriginal({ kind: 'bridge', bridge, ifindex, noLinkLocalLearn: false }, env);
  await setNoLinkLocalLearn(bridge);
}

/** Closes the gaps: sysctls here, the bridge option through `setNoLinkLocalLearn` (netlink). */
export async function closePortGaps(gaps: readonly PortGap[], setNoLinkLocalLearn: (bridge: string) => Promise<void>, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  for (const g of gaps) {
    if (g.kind === 'bridge') await hardenBridge(g.name, setNoLinkLocalLearn, env);
    else closeGuestPort(g.name, env);
  }
}
