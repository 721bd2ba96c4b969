/**
 * Performs link operations against the kernel through the typed netlink client.
 *
 * Two modes: `strict` (a forward change from a state the planner just read: every error stops it)
 * and `tolerant` (undoing after a crash or failure, or stopping: an op whose effect is already in
 * place, or whose object is gone, counts as done). Both make every op safe to run twice.
 */
import { XennetError, reasonOf } from '../sys/errors.js';
import type { NetlinkClient } from './nl/client.js';
import { NetlinkError } from './nl/client.js';
import type { LinkState } from './model.js';
import { describeOp, type LinkOp } from './ops.js';

export type ApplyMode = 'strict' | 'tolerant';

/** A client-shaped subset, so tests can wrap the real client. */
export type LinkOpsClient = Pick<
  NetlinkClient,
  | 'getLink'
  | 'createBridge'
  | 'createVethPair'
  | 'deleteLink'
  | 'rename'
  | 'setMaster'
  | 'setStackSetting'
  | 'setUp'
  | 'setArpMulticast'
  | 'setMac'
  | 'setAlias'
  | 'setMtu'
  | 'addAddress'
  | 'deleteAddress'
  | 'addRoute'
  | 'deleteRoute'
  | 'addNeighbour'
  | 'deleteNeighbour'
>;

/** errno names that mean "this op's effect is already in place" for each kind of op. */
const alreadyDone: Partial<Record<LinkOp['op'], string[]>> = {
  'create-veth': ['EEXIST'],
  'create-bridge': ['EEXIST'],
  'delete-veth': ['ENODEV'],
  'delete-bridge': ['ENODEV'],
  'add-address': ['EEXIST'],
  'delete-address': ['EADDRNOTAVAIL', 'ENODEV', 'ENOENT'],
  'add-route': ['EEXIST'],
  'delete-route': ['ESRCH', 'ENODEV', 'ENOENT'],
  'add-neigh': ['EEXIST'],
  'delete-neigh': ['ENOENT', 'ENODEV'],
};

async function perform(client: LinkOpsClient, o: LinkOp, mode: ApplyMode): Promise<'done' | 'skipped'> {
  if (o.op === 'rename') {
    // Two lookups by name, not a dump of every link (a vif hook renames on hosts with many vifs).
    const [from, to] = await Promise.all([client.getLink(o.from), client.getLink(o.to)]);
    if (mode === 'tolerant' && !from && to) return 'skipped';
    if (to) throw new XennetError('refused', `cannot rename ${o.from} to ${o.to}: a link named ${o.to} exists`);
    if (from && o.index !== undefined && from.index !== o.index) {
      throw new XennetError('refused', `not renaming ${o.from} to ${o.to}: ${o.from} is another link than the one to rename (ifindex ${from.index}, not ${o.index})`);
    }
    if (from && o.pairedWith !== undefined && !(await isPairedWith(client, from, o.pairedWith))) {
      throw new XennetError('refused', `not renaming ${o.from} to ${o.to}: ${o.from} is not the veth paired with ${o.pairedWith}`);
    }
  }
  if (o.op === 'delete-veth') {
    const link = await client.getLink(o.name);
    if (link && !(await isPairedWith(client, link, o.peer))) {
      throw new XennetError('refused', `not deleting ${o.name}: it is not the veth paired with ${o.peer}`);
    }
  }
  switch (o.op) {
    case 'create-veth':
      await client.createVethPair(o.name, o.peer);
      break;
    case 'create-bridge':
      await client.createBridge(o.name, { stpState: 0, forwardDelay: 0, nfCallIptables: true, nfCallIp6tables: true, multicastSnooping: false, noLinkLocalLearn: true });
      break;
    case 'delete-veth':
    case 'delete-bridge':
      await client.deleteLink(o.name);
      break;
    case 'rename':
      await client.rename(o.from, o.to);
      break;
    case 'set-up':
      await client.setUp(o.link, o.up);
      break;
    case 'set-flags':
      await client.setArpMulticast(o.link, o.arp, o.multicast);
      break;
    case 'set-mac':
      await client.setMac(o.link, o.mac);
      break;
    case 'set-alias':
      await client.setAlias(o.link, o.alias);
      break;
    case 'set-mtu':
      await client.setMtu(o.link, o.mtu);
      break;
    case 'set-master':
      await client.setMaster(o.link, o.master);
      break;
    case 'set-sysctl':
      await client.setStackSetting(o.link, o.family, o.key, o.value);
      break;
    case 'add-address':
      await client.addAddress(o.address);
      break;
    case 'delete-address':
      await client.deleteAddress(o.address);
      break;
    case 'add-route':
      await client.addRoute(o.route);
      break;
    case 'delete-route':
      await client.deleteRoute(o.route);
      break;
    case 'add-neigh':
      await client.addNeighbour(o.neigh);
      break;
    case 'delete-neigh':
      await client.deleteNeighbour(o.neigh);
      break;
  }
  return 'done';
}

/** Whether `link` is a veth whose peer, in this namespace, is the link named `peer`. */
async function isPairedWith(client: LinkOpsClient, link: LinkState, peer: string): Promise<boolean> {
  if (link.kind !== 'veth' || link.peerIndex === null) return false;
  return (await client.getLink(peer))?.index === link.peerIndex;
}

/** Runs one op; in tolerant mode, an op whose effect is in place or whose link is gone is skipped. */
export async function applyOp(client: LinkOpsClient, o: LinkOp, mode: ApplyMode): Promise<'done' | 'skipped'> {
  try {
    return await perform(client, o, mode);
  } catch (e) {
    if (e instanceof NetlinkError) {
      const inPlace = (alreadyDone[o.op] ?? []).includes(e.errno);
      // Removing something already gone is never an error; in tolerant mode nothing in place is.
      if (inPlace && (mode === 'tolerant' || o.op.startsWith('delete'))) return 'skipped';
      if (mode === 'tolerant' && e.errno === 'ENODEV') return 'skipped';
    }
    throw e;
  }
}

export class StepFailed extends XennetError {
  readonly step: number;
  constructor(step: number, total: number, o: LinkOp, cause: unknown, undone: boolean, undoErrors: string[]) {
    const tail = undone
      ? undoErrors.length === 0
        ? 'the completed steps were undone and the host is as it was'
        : `undoing the completed steps also failed (${undoErrors.join('; ')}); run the same command again to finish the repair`
      : 'nothing was undone';
    super('step-failed', `step ${step} of ${total} (${describeOp(o)}) failed: ${reasonOf(cause)}; ${tail}`, { cause });
    this.step = step;
  }
}

/** Undoes ops (already inverted, in run order) tolerantly; returns the errors it could not get past. */
export async function undoOps(client: LinkOpsClient, inverse: readonly LinkOp[], onStep?: (i: number) => void): Promise<string[]> {
  const errors: string[] = [];
  for (const [i, o] of inverse.entries()) {
    try {
      await applyOp(client, o, 'tolerant');
    } catch (e) {
      errors.push(`${describeOp(o)}: ${reasonOf(e)}`);
    }
    onStep?.(i + 1);
  }
  return errors;
}
