/**
 * The effects of `vif-xennet`: read xenstore and the links it needs, apply the plan through
 * netlink, install or remove the firewall under the hotplug lock, report to xenstore. Every wait
 * is bounded by the hook's deadline. The vif is attached to the bridge while the hotplug lock is
 * held and after its rules are in, so no firewall change (another hook, `xennet apply`) ever
 * sees it attached without its rules.
 */
import { applyOp, undoOps, type LinkOpsClient } from '../bridge/apply-ops.js';
import type { LinkState } from '../bridge/model.js';
import type { NetlinkClient } from '../bridge/nl/client.js';
import { describeOp, inverseOf, type LinkOp } from '../bridge/ops.js';
import type { IfName } from '../net/index.js';
import { Deadline } from '../sys/deadline.js';
import { reasonOf } from '../sys/errors.js';
import { killPoint } from '../sys/test-seams.js';
import { acquireHotplugLock, type HeldHotplugLock, type HotplugLockOptions } from '../sys/hotplug-lock.js';
import type { Logger } from '../sys/log.js';
import type { XenstoreClient } from '../xenstore/client.js';
import { domainIdentity, readDomainNames } from '../firewall/domain-identity.js';
import { closeGuestPort, hardenBridge } from '../firewall/port-hardening.js';
import { forgetPort } from '../sys/originals.js';
import type { PreparedFirewall, VifFirewall } from './vif-firewall.js';
import type { VifHookInput } from './vif-input.js';
import { backendPresent } from './backend-present.js';
import { HookFailure, namesToRead, offlineTarget, ownerMark, planVifOffline, planVifOnline, resolveVifConfig, type LinkView, type VifConfig, type VifStoreNodes } from './vif-plan.js';

/**
 * The hook's budget, counted from the process start (libxl starts its 40 s clock when it spawns
 * the script, and SIGKILLs it then): the work must be done or given up by HOOK_WORK_MS, and a
 * watchdog reports and exits at HOOK_BUDGET_MS whatever is still running.
 */
export const HOOK_BUDGET_MS = 35_000;
export const HOOK_WORK_MS = 31_000;
/** Kept back from the lock wait so a failure can still be undone and reported in time. */
export const REPORT_RESERVE_MS = 6_000;

export interface VifDeps {
  xs: XenstoreClient;
  nl: Pick<NetlinkClient, 'getLink' | 'listLinks' | 'addressesOf' | 'setBridgeNoLinkLocalLearn'> & LinkOpsClient;
  firewall: VifFirewall;
  log: Logger;
  /** The environment (where the state directory is; default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Where the hotplug lock lives (default: $XENNET_HOTPLUG_LOCK_DIR, else /var/run/xen-hotplug). */
  lockDir?: string;
  /** When the hook must be done (default: HOOK_BUDGET_MS from now). */
  deadline?: Deadline;
  /** Timing marks (XENNET_TIMING=1) and the phase a watchdog reports. */
  mark?: (what: string) => void;
  /** Takes the hotplug lock (default: flock on the lock file; the daemon queues its callers first). */
  acquireLock?: (name: string, options: HotplugLockOptions) => Promise<HeldHotplugLock>;
  /**
   * Whether whoever runs the call has given it up (the daemon's watchdog answered the toolstack
   * already, or the client the toolstack ran was killed): a call that goes on past that point
   * attaches nothing and reports nothing.
   */
  abandoned?: () => boolean;
}

export interface VifOutcome {
  summary: string;
  config?: VifConfig;
  bridge?: string;
}

export async function readNodes(xs: XenstoreClient, input: VifHookInput): Promise<VifStoreNodes> {
  const base = input.backendPath;
  const [bridge, ip, mac, mtu, vifname, frontend, names] = await Promise.all([
    xs.read(`${base}/bridge`),
    xs.read(`${base}/ip`),
    xs.read(`${base}/mac`),
    xs.read(`${base}/mtu`),
    xs.read(`${base}/vifname`),
    xs.read(`${base}/frontend`),
    readDomainNames(xs, input.domid),
  ]);
  return { bridge, ip, mac, mtu, vifname, frontend, domainName: names.name, target: names.target, targetName: names.targetName };
}

export async function readView(nl: VifDeps['nl'], cfg: VifConfig): Promise<LinkView> {
  const names = namesToRead(cfg);
  const found = await Promise.all(names.map((n) => nl.getLink(n)));
  const view: LinkView = { links: new Map(names.map((n, i) => [n, found[i]])) };
  if (!cfg.bridge) {
    const first = (await nl.listLinks()).filter((l) => l.kind === 'bridge').sort((a, b) => a.index - b.index)[0];
    if (first) {
      view.firstBridge = first.name;
      view.links.set(first.name, first);
    }
  }
  return view;
}

function who(cfg: VifConfig, name: string = cfg.name): string {
  return `${name}${cfg.domainName ? ` (${cfg.domainName})` : ` (domain ${cfg.domid})`}`;
}

const isAttachStep = (o: LinkOp): boolean => o.op === 'set-master' || (o.op === 'set-up' && o.up);

function lockOptions(deps: VifDeps, deadline: Deadline): HotplugLockOptions {
  // The lock wait may use the budget except what undoing and reporting a failure need.
  const opts: HotplugLockOptions = { deadline: Deadline.in(deadline.slice(Number.POSITIVE_INFINITY, REPORT_RESERVE_MS)) };
  if (deps.lockDir !== undefined) opts.dir = deps.lockDir;
  return opts;
}

export async function vifOnline(input: VifHookInput, deps: VifDeps): Promise<VifOutcome> {
  const deadline = deps.deadline ?? Deadline.in(HOOK_WORK_MS);
  deps.mark?.('reading xenstore');
  // A call that comes late (one xend stopped waiting for) for a device the toolstack removed
  // since: nothing of the guest's is left to attach or to trust.
  const [present, nodes] = await Promise.all([backendPresent(deps.xs, input.backendPath), readNodes(deps.xs, input)]);
  if (!present) throw new HookFailure(`the backend ${input.backendPath} is gone: the toolstack removed the device; nothing is brought online`);
  const cfg = resolveVifConfig(input, nodes);
  deps.mark?.('reading links');
  const view = await readView(deps.nl, cfg);
  const dev = view.links.get(cfg.device) ?? view.links.get(cfg.name);
  const addresses = dev ? await deps.nl.addressesOf(dev as LinkState) : [];
  const plan = planVifOnline(cfg, view, addresses);
  for (const w of plan.warnings) deps.log.warning(`${cfg.name}: ${w}`);
  // Everything that can fail on bad input fails here, before any change.
  deps.mark?.('planned');
  const firewall = await deps.firewall.prepare(cfg, plan.bridge);
  deps.mark?.('policy');
  for (const w of firewall.warnings) deps.log.warning(`${cfg.name}: ${w}`);
  // Prepare the vif, then under the lock install its firewall and only then attach it.
  const prep = plan.ops.filter((o) => !isAttachStep(o));
  const attach = plan.ops.filter(isAttachStep);
  const done: LinkOp[] = [];
  let staged = false;
  /**
   * Rules found installed for a vif this call attaches (the daemon prepared them when the backend
   * appeared). A repeated online of an attached vif rewrites its chains instead: that repairs them.
   */
  let found = false;
  let step = '';
  let current: LinkOp | undefined;
  const givenUp = (): void => {
    if (deps.abandoned?.()) throw new Error('the call was given up on (at its budget, or its client is gone): the toolstack has its answer');
  };
  const attachAll = async (): Promise<void> => {
    deps.mark?.('attaching');
    step = 'attaching';
    givenUp();
    for (const o of attach) {
      step = describeOp(o);
      current = o;
      await applyOp(deps.nl, o, 'strict');
      done.push(o);
    }
    // Given up while attaching: undone (below), so that no port is left attached after the failure was reported.
    givenUp();
  };
  try {
    for (const o of prep) {
      step = describeOp(o);
      current = o;
      await applyOp(deps.nl, o, 'strict');
      done.push(o);
    }
    step = `closing dom0's IP stack on ${cfg.name}`;
    closeGuestPort(cfg.name, deps.env);
    if (plan.hardenBridge) {
      step = `setting no_linklocal_learn on bridge ${plan.bridge}`;
      await hardenBridge(plan.bridge, (b) => deps.nl.setBridgeNoLinkLocalLearn(b, true), deps.env);
    }
    step = 'installing the firewall';
    found = attach.some((o) => o.op === 'set-master') && firewall.installed();
    if (!found) {
      firewall.stage();
      staged = true;
      killPoint('hook:staged');
    }
    deps.mark?.('waiting for the hotplug lock');
    const held = staged ? await lockOrCommitted(deps, deadline, firewall) : await (deps.acquireLock ?? acquireHotplugLock)('iptables', lockOptions(deps, deadline));
    if (held) {
      try {
        // Rules found installed are trusted only once what others staged is committed (a
        // removal of this vif may be among it); otherwise this call installs them.
        if (found && !(await firewall.settle())) {
          found = false;
          firewall.stage();
          staged = true;
        }
        if (staged) {
          deps.mark?.('installing the firewall');
          await firewall.commit();
        }
        await attachAll();
      } finally {
        held.release();
      }
    } else {
      // Another lock holder committed our change in its batch; the rules are in.
      await attachAll();
    }
  } catch (e) {
    deps.mark?.('undoing');
    const undo = await undoOps(deps.nl, inverseOf(done));
    // A change nobody committed has no rules to remove; one a batch holder may have taken has:
    // the vif is detached again (undo above), so removing them opens no window. Rules found
    // installed for a vif this call was to attach go too (it is not attached: they serve nobody).
    const remove = (staged && firewall.unstage() === 'maybe-committed') || found;
    if (remove) {
      await underLock(deps, { ...(deps.lockDir === undefined ? {} : { dir: deps.lockDir }), deadline: Deadline.in(Math.max(1000, deadline.slice(5000, 1500))) }, () => deps.firewall.remove(target(cfg, [cfg.name]))).catch((e2: unknown) =>
        undo.push(`firewall: ${reasonOf(e2)}`),
      );
    }
    // The plan found the vifname free by its links' own names; the kernel also refuses another link's alternative name.
    const taken = current?.op === 'rename' && (e as { errno?: unknown }).errno === 'EEXIST' ? current.to : undefined;
    const why = taken === undefined ? '' : `: the name ${taken} is taken by another link, as its name or an alternative name (ip link show ${taken})`;
    throw new HookFailure(`${step} failed: ${reasonOf(e)}${why}${undo.length > 0 ? ` (and undoing failed: ${undo.join('; ')})` : ''}`, taken === undefined ? undefined : 'give each guest interface a unique vifname');
  }
  deps.mark?.('reporting');
  if (cfg.frontendMtuPath) await deps.xs.write(cfg.frontendMtuPath, String(plan.mtu));
  // connected, and a hotplug-error left by an earlier failed attempt goes: one transaction,
  // while the backend is there (removed meanwhile: its offline is next, and detaches the vif).
  await deps.xs.transaction(async (tx) => {
    if (!(await backendPresent(tx, input.backendPath))) return;
    await tx.rm(`${input.backendPath}/hotplug-error`);
    await tx.write(`${input.backendPath}/hotplug-status`, 'connected');
  });
  return { summary: `online ${who(cfg)} on bridge ${plan.bridge}, mtu ${plan.mtu}; ${firewall.summary}`, config: cfg, bridge: plan.bridge };
}

/**
 * Waits for whichever comes first: the hotplug lock (then the caller commits), or another lock
 * holder committing our staged change in its batch (then no lock is needed: in a boot storm the
 * hooks do not queue one by one behind the lock). Returns the lock, or undefined.
 */
export async function lockOrCommitted(deps: VifDeps, deadline: Deadline, firewall: PreparedFirewall): Promise<HeldHotplugLock | undefined> {
  const stop = new AbortController();
  const lock = (deps.acquireLock ?? acquireHotplugLock)('iptables', { ...lockOptions(deps, deadline), signal: stop.signal }).then((held) => ({ held }));
  const committed = firewall.committedByOthers(stop.signal).then(() => ({ held: undefined }));
  try {
    const first = await Promise.race([lock, committed]);
    if (first.held === undefined) {
      // Let go of the lock if it arrives anyway.
      lock.then((l) => l.held.release(), () => undefined);
    }
    return first.held;
  } finally {
    stop.abort();
  }
}

async function underLock<T>(deps: VifDeps, options: HotplugLockOptions, fn: () => Promise<T>): Promise<T> {
  const held = await (deps.acquireLock ?? acquireHotplugLock)('iptables', options);
  try {
    return await fn();
  } finally {
    held.release();
  }
}

function target(cfg: VifConfig, names: IfName[]): { domid: number; devid: number; names: IfName[] } {
  return { domid: cfg.domid, devid: cfg.devid, names: [...new Set(names)] };
}

/**
 * offline: every step is attempted; link failures are logged (offline may come twice). Only a
 * link provably this guest's is touched. Its rules are removed only once it is off the bridge;
 * a vif that could not be detached keeps its rules and the hook fails.
 */
export async function vifOffline(input: VifHookInput, deps: VifDeps): Promise<VifOutcome> {
  const deadline = deps.deadline ?? Deadline.in(HOOK_WORK_MS);
  let nodes: VifStoreNodes = {};
  let cfg: VifConfig;
  const plain = (): VifConfig => ({ device: input.device, name: input.device, ips: [], domid: input.domid, devid: input.devid, identity: domainIdentity({ domid: input.domid }), namesKey: '' });
  deps.mark?.('reading xenstore');
  try {
    nodes = await readNodes(deps.xs, input);
  } catch (e) {
    deps.log.warning(`cannot read ${input.backendPath} (${reasonOf(e)}); acting on the device ${input.device} only`);
  }
  try {
    cfg = resolveVifConfig(input, nodes);
  } catch (e) {
    deps.log.warning(`${reasonOf(e)}; acting on the device ${input.device} only`);
    cfg = plain();
  }
  deps.mark?.('reading links');
  let renamed = cfg.name !== cfg.device ? await deps.nl.getLink(cfg.name) : undefined;
  const device = await deps.nl.getLink(cfg.device);
  if (!device && (!renamed || renamed.alias !== ownerMark(cfg.domid, cfg.devid))) {
    // The device was renamed, and xenstore does not say (or no longer says) to what: the link
    // carrying this guest's mark is the one (a guest's rules never go while it is attached).
    const mark = ownerMark(cfg.domid, cfg.devid);
    const marked = (await deps.nl.listLinks()).find((l) => l.alias === mark);
    if (marked) {
      if (renamed) deps.log.warning(`${renamed.name} is not this guest's interface; ${marked.name} carries its mark`);
      renamed = marked;
      cfg = { ...cfg, name: marked.name as IfName };
    }
  }
  const { link: dev, refused } = offlineTarget(cfg, renamed, device);
  for (const why of refused) deps.log.warning(`not touching it: ${why}`);
  const name = (dev?.name ?? cfg.name) as IfName;
  for (const o of planVifOffline(name, dev)) {
    try {
      await applyOp(deps.nl, o, 'tolerant');
    } catch (e) {
      deps.log.warning(`${describeOp(o)}: ${reasonOf(e)}`);
    }
  }
  const after = dev ? await deps.nl.getLink(dev.name) : undefined;
  if (after && after.index === dev?.index && after.master !== null) {
    throw new HookFailure(`${dev.name} is still attached to ${after.master}; its firewall rules stay in place`, 'detach it by hand (ip link set dev X nomaster), then run offline again');
  }
  // Rules are removed for the names this guest's interface provably had: the device's own name,
  // and the renamed link's when it carries the mark (or when the firewall records this owner).
  const names: IfName[] = [cfg.device];
  if (dev && dev.name !== cfg.device) names.push(dev.name as IfName);
  deps.mark?.('waiting for the hotplug lock');
  const removeSoon = deps.firewall.removeSoon?.bind(deps.firewall);
  const removed = removeSoon ? await removeSoon(target(cfg, names)) : await underLock(deps, lockOptions(deps, deadline), () => deps.firewall.remove(target(cfg, names)));
  if (removed) deps.log.debug(`removed the firewall rules of ${names.join(', ')}`);
  // The port's record of its settings before xennet: the link goes with the guest.
  for (const n of names) forgetPort(n, deps.env);
  return { summary: dev ? `offline ${who(cfg, dev.name)}${dev.master ? `, detached from ${dev.master}` : ''}` : `offline ${name}: already gone` };
}
