/**
 * The effects of `vif-xennet`: read xenstore and the links it needs, apply the plan through
 * netlink, install or remove the firewall under the hotplug lock, report to xenstore.
 */
import { applyOp, undoOps, type LinkOpsClient } from '../bridge/apply-ops.js';
import type { LinkState } from '../bridge/model.js';
import type { NetlinkClient } from '../bridge/nl/client.js';
import { describeOp, inverseOf, type LinkOp } from '../bridge/ops.js';
import { reasonOf } from '../sys/errors.js';
import { withHotplugLock } from '../sys/hotplug-lock.js';
import type { Logger } from '../sys/log.js';
import type { XenstoreClient } from '../xenstore/client.js';
import type { VifFirewall } from './vif-firewall.js';
import type { VifHookInput } from './vif-input.js';
import { HookFailure, namesToRead, planVifOffline, planVifOnline, resolveVifConfig, type LinkView, type VifConfig, type VifStoreNodes } from './vif-plan.js';

export interface VifDeps {
  xs: XenstoreClient;
  nl: Pick<NetlinkClient, 'getLink' | 'listLinks' | 'addressesOf'> & LinkOpsClient;
  firewall: VifFirewall;
  log: Logger;
  /** Where the hotplug lock lives (tests point it elsewhere). */
  lockDir?: string;
  /** Timing marks (XENNET_TIMING=1). */
  mark?: (what: string) => void;
}

export interface VifOutcome {
  summary: string;
  config?: VifConfig;
  bridge?: string;
}

async function readNodes(xs: XenstoreClient, input: VifHookInput): Promise<VifStoreNodes> {
  const base = input.backendPath;
  const [bridge, ip, mac, mtu, vifname, frontend, domainName] = await Promise.all([
    xs.read(`${base}/bridge`),
    xs.read(`${base}/ip`),
    xs.read(`${base}/mac`),
    xs.read(`${base}/mtu`),
    xs.read(`${base}/vifname`),
    xs.read(`${base}/frontend`),
    xs.read(`/local/domain/${input.domid}/name`),
  ]);
  return { bridge, ip, mac, mtu, vifname, frontend, domainName };
}

async function readView(nl: VifDeps['nl'], cfg: VifConfig): Promise<LinkView> {
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

function who(cfg: VifConfig): string {
  return `${cfg.name}${cfg.domainName ? ` (${cfg.domainName})` : ` (domain ${cfg.domid})`}`;
}

const isAttachStep = (o: LinkOp): boolean => o.op === 'set-master' || (o.op === 'set-up' && o.up);

export async function vifOnline(input: VifHookInput, deps: VifDeps): Promise<VifOutcome> {
  const cfg = resolveVifConfig(input, await readNodes(deps.xs, input));
  const view = await readView(deps.nl, cfg);
  const dev = view.links.get(cfg.device) ?? view.links.get(cfg.name);
  const addresses = dev ? await deps.nl.addressesOf(dev as LinkState) : [];
  const plan = planVifOnline(cfg, view, addresses);
  // Everything that can fail on bad input fails here, before any change.
  deps.mark?.('planned');
  const firewall = await deps.firewall.prepare(cfg, plan.bridge);
  deps.mark?.('policy');
  for (const w of firewall.warnings) deps.log.warning(`${cfg.name}: ${w}`);
  // Prepare the vif, install its firewall, and only then attach it: never on the bridge unfiltered.
  const prep = plan.ops.filter((o) => !isAttachStep(o));
  const attach = plan.ops.filter(isAttachStep);
  const done: LinkOp[] = [];
  let installed = false;
  let staged = false;
  let step = '';
  const lock = deps.lockDir === undefined ? {} : { dir: deps.lockDir };
  try {
    for (const o of prep) {
      step = describeOp(o);
      await applyOp(deps.nl, o, 'strict');
      done.push(o);
    }
    step = 'installing the firewall';
    firewall.stage?.();
    staged = true;
    deps.mark?.('prepared');
    await withHotplugLock('iptables', async () => {
      deps.mark?.('locked');
      await firewall.install();
    }, lock);
    deps.mark?.('firewall');
    installed = true;
    for (const o of attach) {
      step = describeOp(o);
      await applyOp(deps.nl, o, 'strict');
      done.push(o);
    }
  } catch (e) {
    const undo = await undoOps(deps.nl, inverseOf(done));
    // Staged but not committed counts too: a later lock holder would otherwise commit it.
    if (installed || staged) await withHotplugLock('iptables', () => deps.firewall.remove(cfg.name), lock).catch((e2: unknown) => undo.push(`firewall: ${reasonOf(e2)}`));
    throw new HookFailure(`${step} failed: ${reasonOf(e)}${undo.length > 0 ? ` (and undoing failed: ${undo.join('; ')})` : ''}`);
  }
  if (cfg.frontendMtuPath) await deps.xs.write(cfg.frontendMtuPath, String(plan.mtu));
  await deps.xs.write(`${input.backendPath}/hotplug-status`, 'connected');
  return { summary: `online ${who(cfg)} on bridge ${plan.bridge}, mtu ${plan.mtu}; ${firewall.summary}`, config: cfg, bridge: plan.bridge };
}

/** offline: every step is attempted; failures are logged, never fatal (offline may come twice). */
export async function vifOffline(input: VifHookInput, deps: VifDeps): Promise<VifOutcome> {
  let nodes: VifStoreNodes = {};
  try {
    nodes = await readNodes(deps.xs, input);
  } catch (e) {
    deps.log.warning(`cannot read ${input.backendPath} (${reasonOf(e)}); using the device name ${input.device}`);
  }
  let cfg: VifConfig;
  try {
    cfg = resolveVifConfig(input, nodes);
  } catch (e) {
    deps.log.warning(`${reasonOf(e)}; using the device name ${input.device}`);
    cfg = { device: input.device, name: input.device, ips: [], domid: input.domid, devid: input.devid };
  }
  const dev = (await deps.nl.getLink(cfg.name)) ?? (await deps.nl.getLink(cfg.device));
  const name = dev?.name ?? cfg.name;
  for (const o of planVifOffline(name, dev)) {
    try {
      await applyOp(deps.nl, o, 'tolerant');
    } catch (e) {
      deps.log.warning(`${describeOp(o)}: ${reasonOf(e)}`);
    }
  }
  try {
    const removed = await withHotplugLock('iptables', () => deps.firewall.remove(name), deps.lockDir === undefined ? {} : { dir: deps.lockDir });
    if (removed) deps.log.debug(`removed the firewall rules of ${name}`);
  } catch (e) {
    deps.log.warning(`removing the firewall rules of ${name}: ${reasonOf(e)}`);
  }
  return { summary: dev ? `offline ${who({ ...cfg, name })}${dev.master ? `, detached from ${dev.master}` : ''}` : `offline ${name}: already gone` };
}
