/**
 * Pure planning of `vif-xennet online|offline`: what the toolstack, argv and xenstore say
 * (precedence env < argv < xenstore), parsed once into value types; which bridge to use (as
 * vif-bridge resolves it); which link is provably this guest's; and the link operations that
 * bring the vif onto the bridge.
 *
 * Ownership. The hook acts only on a link it can prove is this guest's interface: the device the
 * backend created (`vif<D>.<N>`, by Xen's naming), or the link xennet renamed to the guest's
 * `vifname`, which carries xennet's mark in its alias (`xennet:vif<D>.<N>`, set before the
 * rename). A `vifname` that names dom0's NIC, a bridge, `lo`, `vif0.N` or another guest's
 * interface is never acted on, online or offline.
 */
import type { AddressState, LinkState } from '../bridge/model.js';
import { QuietMac } from '../bridge/model.js';
import type { LinkOp } from '../bridge/ops.js';
import { bridgesResolvableBy, resolveConfiguredBridge } from '../net/bridge-node.js';
import { InvalidValue, looksLikeXenVif, parseDomainName, parseGuestAddressList, parseIfName, parseMac, parseMtu, type Cidr, type DomainName, type IfName, type Mac, type Mtu } from '../net/index.js';
import { XennetError } from '../sys/errors.js';
import { domainIdentity, namesKey, type DomainIdentity, type DomainNames } from '../firewall/domain-identity.js';
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
  /** /local/domain/<domid>/target (a stub domain's guest) and that guest's name. */
  target?: string | undefined;
  targetName?: string | undefined;
}

export interface VifConfig {
  /** The device the backend created (vif<D>.<N>[-emu]). */
  device: IfName;
  /** Its name once `vifname` is applied (equal to device without vifname). */
  name: IfName;
  bridge?: IfName;
  ips: Cidr[];
  mac?: Mac;
  mtu?: Mtu;
  domainName?: DomainName;
  /** Which name the policy comes from (xl's migration names, stub domains). */
  identity: DomainIdentity;
  /** What the identity was read from: it changes when the domain is renamed. */
  namesKey: string;
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

/** The mark xennet puts in a guest interface's alias, so a renamed link can be told apart. */
export function ownerMark(domid: number, devid: number): string {
  return `xennet:vif${domid}.${devid}`;
}

const fixConfig = 'fix the guest configuration (vif = [...]) and recreate the interface';

/** The guest's own interface names, or a refusal. `vifname` may not be anyone else's. */
export function checkVifname(input: Pick<VifHookInput, 'device' | 'typeIf' | 'backendPath'>, raw: string): IfName {
  const what = `${input.backendPath}/vifname`;
  const base = parseIfName(raw, what);
  const name = parseIfName(input.typeIf === 'tap' ? `${base}-emu` : base, what);
  if (name === 'lo') throw new InvalidValue(what, raw, 'names the loopback interface');
  if (looksLikeXenVif(name) && name !== input.device) throw new InvalidValue(what, raw, `names the Xen interface of another domain (this guest's is ${input.device})`);
  return name;
}

export function resolveVifConfig(input: VifHookInput, nodes: VifStoreNodes): VifConfig {
  // Xen's scripts take a node that is empty as absent; anything else is taken as written.
  const given = (v: string | undefined): string | undefined => (v !== undefined && v !== '' ? v : undefined);
  const names: DomainNames = { domid: input.domid, name: given(nodes.domainName), target: given(nodes.target), targetName: given(nodes.targetName) };
  const cfg: VifConfig = { device: input.device, name: input.device, ips: [], domid: input.domid, devid: input.devid, identity: domainIdentity(names), namesKey: namesKey(names) };
  const base = input.backendPath;
  try {
    const bridge = given(nodes.bridge) ?? input.vars.bridge;
    if (bridge !== undefined) cfg.bridge = parseIfName(bridge, given(nodes.bridge) !== undefined ? `${base}/bridge` : 'bridge');
    const ip = given(nodes.ip) ?? input.vars.ip;
    if (ip !== undefined) cfg.ips = parseGuestAddressList(ip, given(nodes.ip) !== undefined ? `${base}/ip` : 'ip');
    const mac = given(nodes.mac);
    if (mac !== undefined) cfg.mac = parseMac(mac, `${base}/mac`);
    const mtu = given(nodes.mtu);
    if (mtu !== undefined) cfg.mtu = parseMtu(mtu, `${base}/mtu`);
    const vifname = given(nodes.vifname);
    if (vifname !== undefined) cfg.name = checkVifname(input, vifname);
  } catch (e) {
    throw new HookFailure(e instanceof Error ? e.message : String(e), fixConfig);
  }
  if (input.envName !== cfg.device && input.envName !== cfg.name) {
    throw new HookFailure(`the toolstack named interface ${input.envName}, which is neither this guest's device ${cfg.device} nor its vifname`, 'the hook acts only on the interface of the backend in XENBUS_PATH');
  }
  const name = given(nodes.domainName);
  if (name !== undefined) {
    try {
      cfg.domainName = parseDomainName(name);
    } catch {
      /* shown as "domain <id>"; a name with control characters matches no rule-file guest */
    }
  }
  if (input.typeIf === 'vif') {
    const frontend = given(nodes.frontend);
    cfg.frontendMtuPath = frontend && /^\/local\/domain\/[1-9]\d{0,4}\/device\/vif\/(0|[1-9]\d{0,4})$/.test(frontend) ? `${frontend}/mtu` : `/local/domain/${input.domid}/device/vif/${input.devid}/mtu`;
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
  return [...new Set<string>([cfg.device, cfg.name, ...(cfg.bridge ? bridgesResolvableBy(cfg.bridge) : [])])];
}

/** vif-bridge's bridge resolution, including the xenbrN -> ethN fallback of the 3.2+ layout. */
export function resolveBridge(cfg: VifConfig, view: LinkView): IfName {
  if (!cfg.bridge) {
    if (view.firstBridge) return parseIfName(view.firstBridge, 'the first bridge');
    throw new HookFailure('Could not find bridge, and none was specified', 'set bridge= in the vif configuration or create a bridge (xennet bridge start)');
  }
  const resolved = resolveConfiguredBridge(cfg.bridge, (name) => view.links.get(name)?.kind);
  if (resolved.state === 'bridge') return resolved.bridge;
  if (resolved.state === 'not-a-bridge') throw new HookFailure(`Could not find bridge device ${cfg.bridge}: it is a ${resolved.kind ?? 'plain device'}, not a bridge`);
  throw new HookFailure(`Could not find bridge device ${cfg.bridge}`, 'create it (xennet bridge start) or fix bridge= in the vif configuration');
}

/**
 * Why `link` cannot be this guest's interface, or undefined when it provably is: the backend's
 * device by name, or a link carrying this guest's mark. Never a bridge, never another guest's.
 */
export function notOwnedReason(cfg: VifConfig, link: LinkState): string | undefined {
  const mark = ownerMark(cfg.domid, cfg.devid);
  if (link.kind === 'bridge') return `${link.name} is a bridge`;
  if (link.name === 'lo') return `${link.name} is the loopback interface`;
  if (link.alias !== undefined && link.alias.startsWith('xennet:') && link.alias !== mark) return `${link.name} belongs to another guest (${link.alias.slice(7)})`;
  if (link.name === cfg.device) return undefined;
  if (link.alias === mark) return undefined;
  return `${link.name} is not this guest's interface (xennet did not rename ${cfg.device} to it)`;
}

export interface VifOnlinePlan {
  bridge: IfName;
  mtu: number;
  ops: LinkOp[];
  /** Bridge-wide hardening the attach needs: no_linklocal_learn when the bridge lacks it. */
  hardenBridge: boolean;
  warnings: string[];
}

/** IPv6 needs links of at least 1280 bytes; a port below that takes the bridge below it too. */
const IPV6_MIN_MTU = 1280;

/**
 * online: mark, rename to vifname (refusing a name in use), down, MAC fe:ff:ff:ff:ff:ff,
 * addresses flushed, MTU from xenstore or the bridge, attached unless already, up.
 */
export function planVifOnline(cfg: VifConfig, view: LinkView, addressesOnDevice: AddressState[]): VifOnlinePlan {
  const bridge = resolveBridge(cfg, view);
  const bridgeLink = view.links.get(bridge)!;
  let dev = view.links.get(cfg.device);
  const ops: LinkOp[] = [];
  const mark = ownerMark(cfg.domid, cfg.devid);
  if (cfg.name !== cfg.device) {
    const taken = view.links.get(cfg.name);
    if (!dev && taken) {
      // A repeated online finds the rename done, but only a link carrying our mark is ours.
      const why = notOwnedReason(cfg, taken);
      if (why) throw new HookFailure(`interface ${cfg.device} does not exist and ${why}; refusing to touch ${cfg.name}`, fixConfig);
      dev = taken;
    } else if (taken) {
      throw new HookFailure(`Cannot rename interface ${cfg.device}. An interface with name ${cfg.name} already exists.`, 'the vifname is taken (by another guest or by dom0); give each guest interface a unique one');
    } else if (dev) {
      const why = notOwnedReason(cfg, dev);
      if (why) throw new HookFailure(`refusing to touch ${cfg.device}: ${why}`);
      if (dev.alias !== mark) ops.push({ op: 'set-alias', link: cfg.device, alias: mark, was: dev.alias ?? '' });
      if (dev.up) ops.push({ op: 'set-up', link: cfg.device, up: false, was: true });
      ops.push({ op: 'rename', from: cfg.device, to: cfg.name });
      dev = { ...dev, name: cfg.name, up: false, alias: mark };
    }
  }
  if (!dev) throw new HookFailure(`interface ${cfg.device} does not exist`, 'the backend driver (netback) did not create it, or the guest is already gone');
  const why = notOwnedReason(cfg, dev);
  if (why) throw new HookFailure(`refusing to touch ${dev.name}: ${why}`);
  const X = cfg.name;
  if (dev.alias !== mark) ops.push({ op: 'set-alias', link: X, alias: mark, was: dev.alias ?? '' });
  if (dev.up) ops.push({ op: 'set-up', link: X, up: false, was: true });
  if (dev.mac !== QuietMac) ops.push({ op: 'set-mac', link: X, mac: QuietMac, was: dev.mac });
  for (const a of [...addressesOnDevice].reverse()) ops.push({ op: 'delete-address', address: { ...a, link: X } });
  const mtu = cfg.mtu ?? bridgeLink.mtu;
  const warnings: string[] = [];
  if (cfg.mtu !== undefined && cfg.mtu < bridgeLink.mtu) {
    // The kernel gives a bridge the smallest MTU of its ports unless its own was set explicitly.
    if (cfg.mtu < IPV6_MIN_MTU) throw new HookFailure(`mtu ${cfg.mtu} is below ${IPV6_MIN_MTU}: attaching it would lower bridge ${bridge}'s MTU for every port, below what IPv6 needs`, fixConfig);
    warnings.push(`mtu ${cfg.mtu} is below bridge ${bridge}'s ${bridgeLink.mtu}: the kernel lowers the bridge's MTU to it unless the bridge's MTU was set explicitly`);
  }
  if (dev.mtu !== mtu) ops.push({ op: 'set-mtu', link: X, mtu, was: dev.mtu });
  if (dev.master !== bridge) ops.push({ op: 'set-master', link: X, master: bridge, was: dev.master });
  ops.push({ op: 'set-up', link: X, up: true, was: false });
  return { bridge, mtu, ops, hardenBridge: bridgeLink.bridge?.noLinkLocalLearn !== true, warnings };
}

/**
 * Which link offline may act on: the renamed link if it carries our mark, else the backend's
 * device; `refused` lists links it found under the guest's names and will not touch.
 */
export function offlineTarget(cfg: VifConfig, renamed: LinkState | undefined, device: LinkState | undefined): { link: LinkState | undefined; refused: string[] } {
  const refused: string[] = [];
  for (const l of [renamed, device]) {
    if (!l) continue;
    const why = notOwnedReason(cfg, l);
    if (!why) return { link: l, refused };
    refused.push(why);
  }
  return { link: undefined, refused };
}

/** offline: down and detached; nothing for a vif that is already gone. */
export function planVifOffline(name: string, dev: LinkState | undefined): LinkOp[] {
  if (!dev) return [];
  const ops: LinkOp[] = [];
  if (dev.up) ops.push({ op: 'set-up', link: name, up: false, was: true });
  if (dev.master !== null) ops.push({ op: 'set-master', link: name, master: null, was: dev.master });
  return ops;
}
