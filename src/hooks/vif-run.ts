/**
 * The effects of `vif-xennet`: read xenstore and the links it needs, apply the plan through
 * netlink, install or remove the firewall under the hotplug lock, report to xenstore.
 */
import { applyOp, undoOps, type LinkOpsClient } from '../bridge/apply-ops.js';
import type { LinkState } from '../bridge/model.js';
import type { NetlinkClient } from '../bridge/nl/client.js';
import { describeOp, inverseOf } from '../bridge/ops.js';
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

export async function vifOnline(input: VifHookInput, deps: VifDeps): Promise<VifOutcome> {
  const cfg = resolveVifConfig(input, await readNodes(deps.xs, input));
  const view = await readView(deps.nl, cfg);
  const dev = view.links.get(cfg.device) ?? view.links.get(cfg.name);
  const addresses = dev ? await deps.nl.addressesOf(dev as LinkState) : [];
  const plan = planVifOnline(cfg, view, addresses);
  for (const [i, o] of plan.ops.entries()) {
    try {
      await applyOp(deps.nl, o, 'strict');
    } catch (e) {
      const undo = await undoOps(deps.nl, inverseOf(plan.ops.slice(0, i + 1)));
      throw new HookFailure(`${describeOp(o)} failed: ${reasonOf(e)}${undo.length > 0 ? ` (and undoing failed: ${undo.join('; ')})` : ''}`);
    }
  }
  if (cfg.frontendMtuPath) await deps.xs.write(cfg.frontendMtuPath, String(plan.mtu));
  await withHotplugLock('iptables', () => deps.firewall.install(cfg, plan.bridge), deps.lockDir === undefined ? {} : { dir: deps.lockDir });
  await deps.xs.write(`${input.backendPath}/hotplug-status`, 'connected');
  return { summary: `online ${who(cfg)} on bridge ${plan.bridge}, mtu ${plan.mtu}`, config: cfg, bridge: plan.bridge };
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
    await withHotplugLock('iptables', () => deps.firewall.remove(name), deps.lockDir === undefined ? {} : { dir: deps.lockDir });
  } catch (e) {
    deps.log.warning(`removing the firewall rules of ${name}: ${reasonOf(e)}`);
  }
  return { summary: dev ? `offline ${who({ ...cfg, name })}${dev.master ? `, detached from ${dev.master}` : ''}` : `offline ${name}: already gone` };
}
