/**
 * What `status` says about where guests are attached and about the bridges they join: a guest off
 * its bridge or on another than its backend names, a bridge that is down, the ports of a takeover
 * (the NIC, dom0's port) down, elsewhere or gone, a takeover cut short or its bridge gone, no
 * bridge at all. Pure: from the links, the discovered guests and the takeover journals, read by
 * the caller.
 */
import type { TakeoverSpec } from '../bridge/takeover-plan.js';
import type { BackendBridge, DiscoveredVif } from '../firewall/discover.js';
import { attachAgain, backendBridge, bridgeNamed } from '../firewall/discover.js';
import { printable } from '../net/index.js';

/** A link as these checks need it. */
export interface LinkFacts {
  master: string | null;
  up: boolean;
  kind: string | null;
}

/** A bridge of the host: its ports, and those of them that are no guest's (uplinks). */
export interface BridgeFacts {
  name: string;
  up: boolean;
  ports: readonly string[];
  uplinks: readonly string[];
}

/** A takeover journal of this boot, or why it cannot be read. */
export type JournalFacts = { path: string; journal: { phase: string; spec: Pick<TakeoverSpec, 'bridge' | 'netdev' | 'pdev' | 'vif0'> } } | { path: string; unreadable: string };

/** A list of names in a status line: the first ten, and how many more. */
export function listed(names: readonly string[]): string {
  return names.length > 10 ? `${names.slice(0, 10).join(', ')} and ${names.length - 10} more` : names.join(', ');
}

/**
 * A firewalled guest attached by its hook and off its bridge since, or on another bridge than its
 * backend's `bridge` node names (`who`: how the guest is named; `found`: its interface as
 * discovered).
 */
export function guestPlacementProblems(
  who: string,
  v: { bridge: string | null; hotplugStatus: string | null },
  found: Pick<DiscoveredVif, 'leaving' | 'link' | 'configuredBridge'> | undefined,
  links: ReadonlyMap<string, LinkFacts>,
  xenstore: boolean,
): string[] {
  const problems: string[] = [];
  // Attached by its hook, detached since (by hand, or by `xennet bridge stop --force`): the
  // rules are in place and the guest has no network. Nothing attaches it again by itself.
  const detached = xenstore && v.hotplugStatus === 'connected' && found?.leaving === false ? found.link : undefined;
  if (detached?.master === null && v.bridge !== null) {
    problems.push(`${who}: its hook finished (hotplug-status "connected"), but its interface is on no bridge, not on ${v.bridge}: the guest has no network; ${attachAgain({ link: detached.name, bridge: backendBridge(v.bridge, links) })} (its rules are in place)`);
  }
  // On another bridge than its configuration names (moved by hand, or the configuration changed
  // since): which of the two is right, only the operator knows; a node naming no bridge makes
  // its next start fail.
  const named: BackendBridge | undefined = found?.configuredBridge;
  if (named?.state === 'invalid') {
    problems.push(`${who}: its backend's bridge node is no interface name ("${named.node}"): its hook fails at the guest's next start; fix bridge= in its vif configuration`);
  } else if (named !== undefined && found!.link.master !== null) {
    const [link, master] = [printable(found!.link.name), printable(found!.link.master)];
    const on = `${who}: its interface is on bridge ${master}, but its backend names ${bridgeNamed(named)} (bridge= in its vif configuration)`;
    if (named.state === 'bridge') problems.push(`${on}: the guest is on another network than its configuration gives it; \`ip link set ${link} master ${printable(named.bridge)}\` moves it there (if ${master} is the right one, fix bridge=: the guest joins ${printable(named.node)} at its next start)`);
    else problems.push(`${on}, which ${named.state === 'missing' ? 'does not exist' : 'is not a bridge'}: its hook fails at the guest's next start; fix bridge= in its vif configuration`);
  }
  return problems;
}

/**
 * The bridges and the takeovers of this boot: problems (the guests or dom0 cut off, a takeover
 * half done) and notes (a port of a bridge with guests kept down; a takeover running now).
 * `takeoverRunning`: the pid holding a bridge's takeover lock, if any.
 */
export function layoutFindings(f: {
  bridges: readonly BridgeFacts[];
  links: ReadonlyMap<string, LinkFacts>;
  guestPorts: ReadonlySet<string>;
  journals: readonly JournalFacts[];
  takeoverRunning: (bridge: string) => number | undefined;
}): { problems: string[]; notes: string[] } {
  const problems: string[] = [];
  const notes: string[] = [];
  const { bridges, links } = f;
  // A bridge that is down carries nothing: its guests have no network, and neither has dom0 on
  // it. The same for the NIC a takeover put on it (the guests reach nothing beyond the host) and
  // for dom0's port of the legacy layout.
  const guestPorts = (b: BridgeFacts): string[] => b.ports.filter((p) => f.guestPorts.has(p));
  const takeovers = f.journals.flatMap((j) => ('journal' in j && j.journal.phase === 'up' ? [j.journal.spec] : []));
  for (const b of bridges) {
    const guests = guestPorts(b);
    const made = takeovers.some((t) => t.bridge === b.name);
    if (!b.up && (guests.length > 0 || made)) {
      problems.push(`bridge ${printable(b.name)} is down: ${guests.length > 0 ? `its guest interface${guests.length === 1 ? '' : 's'} (${listed(guests.map(printable))}) ${guests.length === 1 ? 'has' : 'have'} no network, nor has a guest started from now on` : 'a guest started from now on has no network on it'}; \`ip link set ${printable(b.name)} up\` brings it up`);
    }
  }
  for (const t of takeovers) {
    const bridge = bridges.find((b) => b.name === t.bridge);
    if (!bridge?.up) continue;
    for (const [port, what, effect] of [
      [t.pdev, `the NIC ${printable(t.bridge)} took over`, 'the guests on it and this host reach nothing beyond it'],
      [t.vif0, `dom0's port of ${printable(t.bridge)}`, 'this host reaches neither the guests nor the network through it'],
    ] as const) {
      const l = links.get(port);
      const p = printable(port);
      if (l === undefined) problems.push(`${p}, ${what}, is gone: ${effect}; \`xennet bridge status\` shows the host's layout`);
      else if (l.master !== t.bridge) problems.push(`${p}, ${what}, is ${l.master === null ? 'on no bridge' : `on bridge ${printable(l.master)}`}: ${effect}; \`ip link set ${p} master ${printable(t.bridge)}${l.up ? '' : ' up'}\` puts it back`);
      else if (!l.up) problems.push(`${p} is down, ${what}: ${effect}; \`ip link set ${p} up\` brings it up`);
    }
  }
  // Any other port of a bridge with guests that is down (a NIC of a bridge the distribution set
  // up): a note, as a port kept down on purpose (libvirt's `-nic` dummy) is no fault.
  const ownPorts = new Set<string>(takeovers.flatMap((t) => [t.pdev, t.vif0]));
  for (const b of bridges) {
    if (!b.up || guestPorts(b).length === 0) continue;
    const down = b.uplinks.filter((p) => !ownPorts.has(p) && links.get(p)?.up === false);
    if (down.length > 0) notes.push(`${listed(down.map(printable))}, ${down.length === 1 ? 'a port' : 'ports'} of ${printable(b.name)} with guests on it, ${down.length === 1 ? 'is' : 'are'} down: whatever the guests reach through ${down.length === 1 ? 'it' : 'them'} is cut off (\`ip link set ${printable(down[0]!)} up\` brings ${down.length === 1 ? 'it' : 'one'} up)`);
  }
  // The bridge the guests join: a takeover cut short, or none at all (a takeover that failed and
  // was undone, or never ran), leaves every guest started from now on without a network.
  let gone = false;
  for (const j of f.journals) {
    // Its text is a file's name and what a file says (root's, but no less printed as it is).
    if ('unreadable' in j) {
      problems.push(`${printable(j.unreadable)}: \`xennet bridge start\` and \`stop\` refuse to act on it`);
      continue;
    }
    const [bridge, netdev] = [printable(j.journal.spec.bridge), printable(j.journal.spec.netdev)];
    if (j.journal.phase === 'up') {
      // Another bridge (docker0, virbr0) does not stand in for it: the guests name theirs.
      if (!bridges.some((b) => b.name === j.journal.spec.bridge)) {
        gone = true;
        problems.push(`bridge ${bridge} is gone, though the takeover of this boot made it (taking over ${netdev}): a guest started from now on has no bridge to join, and its hook fails; \`xennet bridge start\` and \`stop\` refuse while the host lacks the layout its journal records (\`xennet bridge status\` shows what differs): make ${bridge} again with its ports, or move the journal away and set the network up by hand`);
      }
      continue;
    }
    const what = `a ${j.journal.phase === 'starting' ? 'start' : 'stop'} of ${bridge} (taking over ${netdev})`;
    const pid = f.takeoverRunning(j.journal.spec.bridge);
    if (pid !== undefined) notes.push(`${what} is running now (pid ${pid}): the host's network is changing`);
    else problems.push(`${what} was interrupted: the host's network is half changed; \`xennet bridge status\` shows it, the next \`xennet bridge start\` or \`stop\` repairs it`);
  }
  if (bridges.length === 0 && !gone) problems.push('no bridge on this host: a guest\'s interface has none to join, and its hook fails; `xennet bridge start` takes the NIC over onto xenbr0 (`xennet bridge status` shows the host\'s layout)');
  return { problems, notes };
}

/**
 * Lock paths of the state directory a lock cannot be taken on (something other than a lock file
 * is there: `refusedLockPaths`), and what each keeps from working until it is removed.
 */
export function refusedLockProblems(refused: readonly { path: string; what: string }[]): string[] {
  return refused.map(({ path, what }) => {
    const name = path.slice(path.lastIndexOf('/') + 1);
    const takeover = /^takeover-(.+)\.lock$/.exec(name);
    const effect = name === 'learned.lock' ? 'no learned address is bound or ended (the daemon logs each failure)' : takeover ? `\`xennet bridge start\` and \`stop\` of ${printable(takeover[1]!)} refuse to run` : 'what takes it refuses to run';
    return `${printable(path)} is ${what}, not a lock file: ${effect}; remove it (\`rm -r ${printable(path)}\`): xennet makes the lock file again`;
  });
}
