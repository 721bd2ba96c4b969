/**
 * Pure planning of `vif-xennet online|offline`: what the toolstack, argv and xenstore say
 * (precedence env < argv < xenstore), which bridge to use (as vif-bridge resolves it), and the
 * link operations that bring the vif onto it.
 */
import type { AddressState, LinkState } from '../bridge/model.js';
import { QuietMac } from '../bridge/model.js';
import type { LinkOp } from '../bridge/ops.js';
import { XennetError } from '../sys/errors.js';
import { checkIfname, checkMac, checkMtu, parseIpList, type GuestAddress } from './validate.js';
import type { VifHookInput } from './vif-input.js';

/** The xenstore nodes a vif hook reads (absent nodes are undefined). */
export interface VifStoreNodes {
  bridge?: string | undefined;
  ip?: string | undefined;
  mac?: string | undefined;
  mtu?: string | undefined;
  vifname?: string | undefined;
  frontend?: string | undefined;
  /** /local/domain/<domid>/name */
  domainName?: string | undefined;
}

export interface VifConfig {
  /** The device the toolstack created. */
  device: string;
  /** Its name once `vifname` is applied (equal to device without vifname). */
  name: string;
  bridge?: string;
  ips: GuestAddress[];
  mac?: string;
  mtu?: number;
  domainName?: string;
  domid: number;
  devid: number;
  /** Where the frontend reads its MTU. */
  frontendMtuPath?: string;
}

/** A failure to report to the toolstack (hotplug-error), already phrased for a person. */
export class HookFailure extends XennetError {
  constructor(message: string, hint?: string) {
    super('refused', message, hint === undefined ? {} : { hint });
  }
}

export function resolveVifConfig(input: VifHookInput, nodes: VifStoreNodes): VifConfig {
  const nonEmpty = (v: string | undefined): string | undefined => (v !== undefined && v.trim() !== '' ? v.trim() : undefined);
  const bridge = nonEmpty(nodes.bridge) ?? input.vars.bridge;
  const ip = nonEmpty(nodes.ip) ?? input.vars.ip;
  const cfg: VifConfig = { device: input.device, name: input.device, ips: [], domid: input.domid, devid: input.devid };
  try {
    if (bridge !== undefined) cfg.bridge = checkIfname(bridge, 'bridge');
    if (ip !== undefined) cfg.ips = parseIpList(ip, `${input.backendPath}/ip`);
    const mac = nonEmpty(nodes.mac);
    if (mac !== undefined) cfg.mac = checkMac(mac, `${input.backendPath}/mac`);
    const mtu = nonEmpty(nodes.mtu);
    if (mtu !== undefined) cfg.mtu = checkMtu(mtu, `${input.backendPath}/mtu`);
    const vifname = nonEmpty(nodes.vifname);
    if (vifname !== undefined) cfg.name = checkIfname(input.typeIf === 'tap' ? `${vifname}-emu` : vifname, `${input.backendPath}/vifname`);
  } catch (e) {
    throw new HookFailure(e instanceof Error ? e.message : String(e), 'fix the guest configuration (vif = [...]) and recreate the interface');
  }
  const name = nonEmpty(nodes.domainName);
  if (name !== undefined && /^[\x20-\x7e]{1,128}$/.test(name)) cfg.domainName = name;
  if (input.typeIf === 'vif') {
    const frontend = nonEmpty(nodes.frontend);
    cfg.frontendMtuPath = frontend && /^\/local\/domain\/\d+\/device\/vif\/\d+$/.test(frontend) ? `${frontend}/mtu` : `/local/domain/${input.domid}/device/vif/${input.devid}/mtu`;
  }
  return cfg;
}

/** Links the planner may look at, by name; a name mapped to undefined does not exist. */
export interface LinkView {
  links: Map<string, LinkState | undefined>;
  /** The first bridge on the host (by ifindex), for when none is configured. */
  firstBridge?: string | undefined;
}

/** The names whose links the online planner needs (the caller reads exactly these). */
export function namesToRead(cfg: VifConfig): string[] {
  const names = new Set([cfg.device, cfg.name]);
  if (cfg.bridge) {
    names.add(cfg.bridge);
    const m = /^xenbr(\d+)$/.exec(cfg.bridge);
    if (m) names.add(`eth${m[1]}`);
  }
  return [...names];
}

/** vif-bridge's bridge resolution, including the xenbrN -> ethN fallback of the 3.2+ layout. */
export function resolveBridge(cfg: VifConfig, view: LinkView): string {
  if (!cfg.bridge) {
    if (view.firstBridge) return view.firstBridge;
    throw new HookFailure('Could not find bridge, and none was specified', 'set bridge= in the vif configuration or create a bridge (xennet bridge start)');
  }
  const wanted = view.links.get(cfg.bridge);
  if (wanted?.kind === 'bridge') return cfg.bridge;
  const m = /^xenbr(\d+)$/.exec(cfg.bridge);
  if (!wanted && m && view.links.get(`eth${m[1]}`)?.kind === 'bridge') return `eth${m[1]}`;
  if (wanted) throw new HookFailure(`Could not find bridge device ${cfg.bridge}: it is a ${wanted.kind ?? 'plain device'}, not a bridge`);
  throw new HookFailure(`Could not find bridge device ${cfg.bridge}`, 'create it (xennet bridge start) or fix bridge= in the vif configuration');
}

export interface VifOnlinePlan {
  bridge: string;
  mtu: number;
  ops: LinkOp[];
}

/**
 * online: rename to vifname (refusing a name in use), down, MAC fe:ff:ff:ff:ff:ff, addresses
 * flushed, MTU from xenstore or the bridge, attached unless already, up.
 */
export function planVifOnline(cfg: VifConfig, view: LinkView, addressesOnDevice: AddressState[]): VifOnlinePlan {
  const bridge = resolveBridge(cfg, view);
  const bridgeLink = view.links.get(bridge)!;
  let dev = view.links.get(cfg.device);
  const ops: LinkOp[] = [];
  if (cfg.name !== cfg.device) {
    const taken = view.links.get(cfg.name);
    if (!dev && taken) {
      dev = taken; // a repeated online: the rename already happened
    } else if (taken) {
      throw new HookFailure(`Cannot rename interface ${cfg.device}. An interface with name ${cfg.name} already exists.`, 'two guests ask for the same vifname; give each a unique one');
    } else if (dev) {
      if (dev.up) ops.push({ op: 'set-up', link: cfg.device, up: false, was: true });
      ops.push({ op: 'rename', from: cfg.device, to: cfg.name });
      dev = { ...dev, name: cfg.name, up: false };
    }
  }
  if (!dev) throw new HookFailure(`interface ${cfg.device} does not exist`, 'the backend driver (netback) did not create it, or the guest is already gone');
  const X = cfg.name;
  if (dev.up) ops.push({ op: 'set-up', link: X, up: false, was: true });
  if (dev.mac !== QuietMac) ops.push({ op: 'set-mac', link: X, mac: QuietMac, was: dev.mac });
  for (const a of [...addressesOnDevice].reverse()) ops.push({ op: 'delete-address', address: { ...a, link: X } });
  const mtu = cfg.mtu ?? bridgeLink.mtu;
  if (dev.mtu !== mtu) ops.push({ op: 'set-mtu', link: X, mtu, was: dev.mtu });
  if (dev.master !== bridge) ops.push({ op: 'set-master', link: X, master: bridge, was: dev.master });
  ops.push({ op: 'set-up', link: X, up: true, was: false });
  return { bridge, mtu, ops };
}

/** offline: down and detached; nothing for a vif that is already gone. */
export function planVifOffline(name: string, dev: LinkState | undefined): LinkOp[] {
  if (!dev) return [];
  const ops: LinkOp[] = [];
  if (dev.up) ops.push({ op: 'set-up', link: name, up: false, was: true });
  if (dev.master !== null) ops.push({ op: 'set-master', link: name, master: null, was: dev.master });
  return ops;
}
