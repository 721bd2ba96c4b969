/**
 * The live vifs of the host: bridge ports named vif<domid>.<devid> (or -emu), or renamed through a
 * xenstore `vifname`, with what xenstore says about them (domain name, mac, ip). Works without
 * xenstore (then names are unknown and anti-spoofing has only what the rule file says).
 */
import type { LinkState } from '../bridge/model.js';
import { bridgesResolvableBy, resolveConfiguredBridge } from '../net/bridge-node.js';
import { isIfName, parseDomainName, parseGuestAddressList, parseIfName, parseMac, printable, type IfName } from '../net/index.js';
import { domainIdentity, namesKey, readDomainNames, type DomainNames } from './domain-identity.js';
import { reasonOf } from '../sys/errors.js';
import type { XenstoreClient } from '../xenstore/client.js';
import type { VifFacts } from './model.js';
import { ownerOfMark, ownerOfVifName } from './names.js';

interface BackendEntry {
  domid: number;
  devid: number;
  vifname?: string;
  mac?: string;
  ip?: string;
  names: DomainNames;
  hotplugStatus?: string;
  /** Read only when hotplug-status is `error`: what the failed hook said. */
  hotplugError?: string;
  /** The bridge its configuration names (`bridge=`; libxl writes xenbr0 when none is given). */
  bridge?: string;
}

/** A guest's backend whose hook failed (hotplug-status `error`) and whose interface is on no bridge. */
export interface FailedBackend {
  domid: number;
  devid: number;
  /** The domain's name, printable (null: none, or unreadable). */
  domain: string | null;
  /** Its hotplug-error as the hook wrote it (null: none); guest-influenced text, to be shown quoted. */
  error: string | null;
  /** The vifname xenstore gives it, when one (what `status NAME` also finds it by). */
  vifname?: string;
}

/**
 * A guest's backend whose interface is on no bridge, with no rules recorded for it: its link as
 * Xen named it (vifD.N), or one that carries its mark (a hook stopped after its rename). Its hook
 * has not finished (hotplug-status absent or empty, as libxl pre-writes it); or it is xennet's
 * hook, which finished (`connected`) while the backend is connected (xenbus state 4), and the
 * interface was taken off its bridge since (with the firewall off, nothing records it).
 */
export interface PendingBackend {
  domid: number;
  devid: number;
  /** The domain's name, printable (null: none). */
  domain: string | null;
  /** The unattached link. */
  link: string;
  hotplugStatus: string | null;
  /** The vifname xenstore gives it, when one. */
  vifname?: string;
  /** The bridge its backend names, judged against the host (for a connected one: where to attach it again). */
  bridge?: BackendBridge;
}

/**
 * What a backend's `bridge` node names, judged against the host's links as the hook resolves it:
 * a bridge (`xenbrN` is `ethN` when only that is a bridge: the 3.2 layout), a link that is not a
 * bridge, nothing, or no interface name at all (its value printable). The hook fails on all but
 * the first.
 */
export type BackendBridge = { node: IfName; state: 'bridge' | 'not-a-bridge' | 'missing'; bridge: IfName } | { node: string; state: 'invalid' };

/** The bridge a backend's `bridge` node makes the hook use (undefined: no node), as vif-bridge resolves it. */
export function backendBridge(node: string | undefined, links: ReadonlyMap<string, { kind: string | null }>): BackendBridge | undefined {
  if (node === undefined || node === '') return undefined;
  if (!isIfName(node)) return { node: printable(node.slice(0, 64)), state: 'invalid' };
  const resolved = resolveConfiguredBridge(node, (name) => links.get(name)?.kind);
  return { node, state: resolved.state, bridge: resolved.state === 'bridge' ? resolved.bridge : node };
}

/** The bridge as a message names it: `xenbr0`, or `xenbr0 (eth0 on this host)`. */
export function bridgeNamed(b: { node: IfName; bridge: IfName }): string {
  return b.bridge === b.node ? printable(b.node) : `${printable(b.node)} (${printable(b.bridge)} on this host)`;
}

/** How status names a backend: `backend D/N (domain)`. A guest's view finds its own by the domain id first. */
export function backendLabel(b: { domid: number; devid: number; domain: string | null }): string {
  return `backend ${b.domid}/${b.devid}${b.domain !== null ? ` (${b.domain})` : ''}`;
}

/** How a failed hook's work is done again: the toolstack runs the hook when the interface is plugged again. */
export function rerunHook(b: { domid: number; devid: number }): string {
  return `plug the interface again: \`xl network-detach ${b.domid} ${b.devid}\`, then \`xl network-attach ${b.domid}\` with its vif spec from the guest's configuration (mac, bridge, script, vifname)`;
}

/**
 * How an interface taken off its bridge is put back: on the bridge its backend names, when that
 * is there; when the backend names none (or none the hook could use), the one its hook used (argv,
 * environment, or the host's first bridge decided, and nothing records which).
 */
export function attachAgain(b: { link: string; bridge?: BackendBridge | undefined }): string {
  const link = printable(b.link);
  const byHand = `attach it to the bridge its hook used (\`ip link set ${link} master <bridge>\`)`;
  const named = b.bridge;
  if (named === undefined) return `its backend names no bridge: ${byHand}`;
  if (named.state === 'invalid') return `its backend's bridge node is no interface name ("${named.node}"): ${byHand}, and fix bridge= in its vif configuration`;
  if (named.state === 'not-a-bridge') return `its backend names ${printable(named.node)}, which is not a bridge: ${byHand}, and fix bridge= in its vif configuration`;
  const bridge = printable(named.bridge);
  if (named.state === 'missing') return `its bridge ${bridge} is gone (once it is back, \`ip link set ${link} master ${bridge}\` attaches it)`;
  return `\`ip link set ${link} master ${bridge}\` attaches it again`;
}

/**
 * The backends `query` names as an interface: by the Xen name of their interface (vifD.N,
 * vifD.N-emu), by their vifname, or by the link status names for them.
 */
export function backendsByName<T extends { domid: number; devid: number; link?: string; vifname?: string }>(list: readonly T[], query: string): T[] {
  return list.filter((b) => query === `vif${b.domid}.${b.devid}` || query === `vif${b.domid}.${b.devid}-emu` || (b.link !== undefined && b.link === query) || (b.vifname !== undefined && b.vifname === query));
}

/** The backends of the domain `query` names, by its name or id. */
export function backendsByDomain<T extends { domid: number; domain: string | null }>(list: readonly T[], query: string): T[] {
  return list.filter((b) => b.domain === printable(query) || (/^(0|[1-9]\d{0,4})$/.test(query) && b.domid === Number(query)));
}

/**
 * A backend's domain name as status shows it and `status DOMAIN` finds it: printable, and as long
 * as a domain name may be (parseDomainName), so that every guest's name is found whole.
 */
function domainOf(e: BackendEntry): string | null {
  return e.names.name ? printable(e.names.name.slice(0, 128)) : null;
}

/**
 * A backend's xenbus state, online and script nodes (undefined where unreadable): read only for
 * the few connected guests whose interface is on no bridge.
 */
async function connectionOf(xs: XenstoreClient, b: { domid: number; devid: number }): Promise<{ state?: string; online?: string; script?: string }> {
  const base = `/local/domain/0/backend/vif/${b.domid}/${b.devid}`;
  const read = (n: string): Promise<string | undefined> => xs.read(`${base}/${n}`).catch(() => undefined);
  const [state, online, script] = await Promise.all([read('state'), read('online'), read('script')]);
  return { ...(state !== undefined ? { state } : {}), ...(online !== undefined ? { online } : {}), ...(script !== undefined ? { script } : {}) };
}

/** Whether a backend's script node names xennet's vif hook (`/etc/xen/scripts/vif-xennet`, or a name resolved there). */
function isXennetScript(script: string | undefined): boolean {
  const file = script?.trim().split(/\s+/)[0] ?? '';
  return file.slice(file.lastIndexOf('/') + 1) === 'vif-xennet';
}

/** What the firewall index records of a vif, as discovery needs it. */
export interface RecordedVif {
  bridge: string | null;
  /** The backend it was installed for. */
  owner?: { domid: number; devid: number };
  /** The MACs its rules guard (lower case; empty: none recorded). */
  macs: readonly string[];
}

export interface DiscoveredVif extends VifFacts {
  hotplugStatus?: string;
  /**
   * Read only for a connected guest whose interface is on no bridge: whether the toolstack is
   * removing its backend (libxl writes `online` 0 and moves it to closing, 5, before the offline
   * detaches the interface; closed is 6). A guest not yet connected (InitWait, 2) is not leaving.
   */
  leaving?: boolean;
  /**
   * The bridge its backend names, when its link is a port of another bridge (moved by hand, or its
   * configuration changed since): the guest is on another network than its configuration gives
   * it, or its next start fails (a node naming no bridge, or no interface name, though the guest is
   * on a bridge: the node changed since its hook ran). Judged only for a port of a Linux bridge
   * whose backend has the node (without one, the hook's argv or environment, or the host's first
   * bridge, decided, and nothing records which); `xenbrN` stands for `ethN` too (the 3.2 layout).
   */
  configuredBridge?: BackendBridge;
  link: LinkState;
  /** xenstore values of this vif that did not parse (they are ignored; status reports them). */
  invalid: string[];
}

async function readBackends(xs: XenstoreClient): Promise<BackendEntry[]> {
  const base = '/local/domain/0/backend/vif';
  const domids = (await xs.directory(base)).filter((d) => /^\d+$/.test(d));
  const perDomain = await Promise.all(
    domids.map(async (d) => {
      const [devids, names] = await Promise.all([xs.directory(`${base}/${d}`), readDomainNames(xs, Number(d))]);
      return Promise.all(
        devids
          .filter((n) => /^\d+$/.test(n))
          .map(async (n) => {
            const p = `${base}/${d}/${n}`;
            const [vifname, mac, ip, hs, bridge] = await Promise.all([xs.read(`${p}/vifname`), xs.read(`${p}/mac`), xs.read(`${p}/ip`), xs.read(`${p}/hotplug-status`), xs.read(`${p}/bridge`)]);
            const e: BackendEntry = { domid: Number(d), devid: Number(n), names };
            if (bridge) e.bridge = bridge;
            if (vifname) e.vifname = vifname;
            if (mac) e.mac = mac;
            if (ip) e.ip = ip;
            if (hs !== undefined) e.hotplugStatus = hs;
            if (hs === 'error') {
              const why = await xs.read(`${p}/hotplug-error`);
              if (why !== undefined) e.hotplugError = why;
            }
            return e;
          }),
      );
    }),
  );
  return perDomain.flat();
}

/**
 * Guest vifs among `links`: ports of a bridge named like a Xen vif, named by xenstore's vifname, or
 * marked by xennet; plus links the firewall index records (`recorded`) that are not attached yet
 * (a hook installed their rules and is about to attach them), and the link of a guest with a
 * vifname whose rules the daemon prepared under that name while its hook has not finished.
 */
export async function discoverVifs(links: LinkState[], xs: XenstoreClient | undefined, recorded: ReadonlyMap<string, RecordedVif> = new Map()): Promise<{ vifs: DiscoveredVif[]; failed: FailedBackend[]; pending: PendingBackend[]; warnings: string[]; xenstoreRead: boolean }> {
  const warnings: string[] = [];
  let entries: BackendEntry[] = [];
  let xenstoreRead = xs !== undefined;
  if (xs) {
    try {
      entries = await readBackends(xs);
    } catch (e) {
      xenstoreRead = false;
      warnings.push(`cannot read xenstore (${reasonOf(e)}): domain names, MACs and addresses of guests are unknown`);
    }
  }
  const linkNames = new Set(links.map((l) => l.name));
  const linkByName = new Map(links.map((l) => [l.name, l]));
  const byName = new Map<string, BackendEntry>();
  for (const e of entries) {
    byName.set(`vif${e.domid}.${e.devid}`, e);
    byName.set(`vif${e.domid}.${e.devid}-emu`, e);
  }
  // A guest with a vifname, its rules prepared by the daemon: its link keeps its Xen name, on no
  // bridge, until its hook renames and attaches it. It is that guest's interface under the
  // vifname while xenstore says so (the backend names it, its hook has not finished), no link has
  // that name, and the index made its rules for that backend and the MAC xenstore gives it (not a
  // departed guest's of the same domain).
  const preparedAs = (link: LinkState): { name: string; bridge: string | null } | undefined => {
    const e = byName.get(link.name);
    if (!e || e.vifname === undefined || (e.hotplugStatus !== undefined && e.hotplugStatus !== '')) return undefined;
    const name = link.name.endsWith('-emu') ? `${e.vifname}-emu` : e.vifname;
    const r = recorded.get(name);
    if (linkNames.has(name) || !r?.owner || r.owner.domid !== e.domid || r.owner.devid !== e.devid) return undefined;
    if (r.macs.length > 0 && (e.mac === undefined || !r.macs.includes(e.mac.toLowerCase()))) return undefined;
    return { name, bridge: r.bridge };
  };
  const vifs: DiscoveredVif[] = [];
  // Links on no bridge whose Xen name or mark names a backend (the two agreeing): a backend whose
  // hook has not finished may be waiting with one, or one taken off its bridge (below).
  const unattached: { link: LinkState; domid: number; devid: number }[] = [];
  for (const link of links) {
    if (link.kind === 'bridge') continue;
    const m = ownerOfVifName(link.name);
    const mark = ownerOfMark(link.alias);
    const disowned = m !== undefined && mark !== undefined && (m.domid !== mark.domid || m.devid !== mark.devid);
    let master = link.master ?? recorded.get(link.name)?.bridge ?? null;
    // A port of a bridge whose name xennet does not take (it would be written into rules): a
    // guest's with rules recorded stays one, judged by the bridge they were made for (its rules
    // kept: never taken for a departed guest's), which status says; no other link is a guest's.
    if (link.master !== null && !isIfName(link.master)) {
      master = recorded.get(link.name)?.bridge ?? null;
      if (ownerOfVifName(link.name) !== undefined || ownerOfMark(link.alias) !== undefined || master !== null) {
        warnings.push(`${printable(link.name)} is a port of bridge "${printable(link.master)}", whose name xennet does not take (1-15 of A-Z a-z 0-9 _ . -): ${master !== null ? `its rules, made for ${master}, are kept as they are` : 'it is not treated as a guest interface'}; move it to a bridge with such a name`);
      }
    }
    let as = link.name;
    const prepared = master === null && m ? preparedAs(link) : undefined;
    if (prepared) [as, master] = [prepared.name, prepared.bridge];
    if (master === null || !isIfName(as) || !isIfName(master)) {
      const owner = m ?? mark;
      if (link.master === null && owner && !disowned) unattached.push({ link, ...owner });
      continue;
    }
    if (disowned) {
      warnings.push(`${link.name} carries the mark of vif${mark.domid}.${mark.devid}: not treated as a guest interface`);
      continue;
    }
    // Whose interface it is: the mark xennet put on it when it renamed it, else its Xen name. A
    // xenstore vifname alone proves nothing (it is guest configuration, and may name dom0's NIC
    // or another guest's interface), as the hooks hold: a link that carries neither is not a
    // guest's interface, even when the backend's own device is gone.
    const e = m ? byName.get(link.name) : mark ? entries.find((x) => x.domid === mark.domid && x.devid === mark.devid) : undefined;
    if (!m && !mark) {
      const named = entries.filter((x) => x.vifname !== undefined && (x.vifname === link.name || `${x.vifname}-emu` === link.name));
      if (named.length > 1) warnings.push(`${link.name} is the vifname of ${named.length} backends (${named.map((x) => `${x.domid}/${x.devid}`).join(', ')}): not treated as a guest interface`);
      else if (named[0] && (linkNames.has(`vif${named[0].domid}.${named[0].devid}`) || linkNames.has(`vif${named[0].domid}.${named[0].devid}-emu`))) warnings.push(`backend ${named[0].domid}/${named[0].devid} names ${link.name} as its vifname, but its own device vif${named[0].domid}.${named[0].devid} exists: ${link.name} is not treated as its interface`);
      else if (named[0]) warnings.push(`backend ${named[0].domid}/${named[0].devid} names ${link.name} as its vifname, but ${link.name} does not carry xennet's mark (xennet:vif${named[0].domid}.${named[0].devid}): it is not treated as its interface (a vif renamed by Xen's vif-bridge is xennet's again after its next online)`);
      continue;
    }
    const domid = e?.domid ?? (m ?? mark)!.domid;
    if (domid === 0) continue; // vif0.N is dom0's own netloop port
    const name = as as IfName;
    const facts: DiscoveredVif = { name, bridge: parseIfName(master), domid, devid: e?.devid ?? (m ?? mark)!.devid, ipv4: [], ipv6: [], link, invalid: [] };
    const configured = link.master !== null && linkByName.get(link.master)?.kind === 'bridge' ? backendBridge(e?.bridge, linkByName) : undefined;
    if (configured !== undefined && (configured.state === 'invalid' || !bridgesResolvableBy(configured.node).includes(link.master as IfName))) facts.configuredBridge = configured;
    const base = `/local/domain/0/backend/vif/${domid}/${facts.devid}`;
    const bad = (what: string, err: unknown): void => {
      facts.invalid.push(reasonOf(err));
      warnings.push(`${name}: ${what} ignored: ${reasonOf(err)}`);
    };
    if (e?.names.name) {
      try {
        facts.domain = parseDomainName(e.names.name, `/local/domain/${domid}/name`);
      } catch (err) {
        bad('domain name', err);
      }
    }
    if (e) {
      facts.identity = domainIdentity(e.names);
      facts.namesKey = namesKey(e.names);
    }
    if (e?.mac) {
      try {
        facts.mac = parseMac(e.mac, `${base}/mac`);
      } catch (err) {
        bad('mac', err);
      }
    }
    if (e?.hotplugStatus !== undefined) facts.hotplugStatus = printable(e.hotplugStatus.slice(0, 40));
    if (e?.ip) {
      try {
        for (const c of parseGuestAddressList(e.ip, `${base}/ip`)) (c.family === 'ipv4' ? facts.ipv4 : facts.ipv6).push(c);
      } catch (err) {
        bad('ip', err);
      }
    }
    vifs.push(facts);
  }
  vifs.sort((a, b) => a.name.localeCompare(b.name));
  if (xs) {
    await Promise.all(
      vifs
        .filter((v) => v.link.master === null && v.hotplugStatus === 'connected' && v.devid !== undefined)
        .map(async (v) => {
          const c = await connectionOf(xs, { domid: v.domid!, devid: v.devid! });
          v.leaving = c.state === '5' || c.state === '6' || c.online === '0';
        }),
    );
  }
  // A backend whose hook failed and left nothing on a bridge: no link above names it, and the
  // guest has no network on that interface (the toolstack may keep the domain running).
  const seen = new Set(vifs.map((v) => `${v.domid}/${v.devid}`));
  // A backend has a paravirtual interface and, for an HVM guest, an emulated one (-emu): the
  // emulated one on a bridge says nothing of the paravirtual one, which the guest's drivers use.
  // (An emulated one on no bridge counts only while nothing of its backend is: QEMU's tap, once
  // the guest's drivers unplug it, is not watched here.)
  const kindOf = (name: string): string => (name.endsWith('-emu') ? 'emu' : 'pv');
  const pvSeen = new Set(vifs.filter((v) => kindOf(v.link.name) === 'pv').map((v) => `${v.domid}/${v.devid}`));
  const failed = entries
    .filter((e) => e.hotplugStatus === 'error' && e.domid !== 0 && !seen.has(`${e.domid}/${e.devid}`))
    .map((e) => ({ domid: e.domid, devid: e.devid, domain: domainOf(e), error: e.hotplugError ?? null, ...(e.vifname !== undefined ? { vifname: e.vifname } : {}) }))
    .sort((a, b) => a.domid - b.domid || a.devid - b.devid);
  const waiting = new Map(entries.filter((e) => e.domid !== 0 && (e.hotplugStatus === undefined || e.hotplugStatus === '' || e.hotplugStatus === 'connected')).map((e) => [`${e.domid}/${e.devid}`, e]));
  // One per backend and kind (its Xen-named link and a renamed one carrying its mark are one).
  const once = new Set<string>();
  const candidates: PendingBackend[] = unattached.flatMap(({ link, domid, devid }) => {
    const e = waiting.get(`${domid}/${devid}`);
    const key = `${domid}/${devid}/${kindOf(link.name)}`;
    if (!e || once.has(key) || (kindOf(link.name) === 'pv' ? pvSeen : seen).has(`${domid}/${devid}`)) return [];
    once.add(key);
    return [{ domid, devid, domain: domainOf(e), link: link.name, hotplugStatus: e.hotplugStatus ?? null, ...(e.vifname !== undefined ? { vifname: e.vifname } : {}) }];
  });
  // A connected backend's interface on no bridge was taken off it only when xennet's hook put it
  // there (vif-route and vif-nat leave theirs on none) and the backend is still connected (libxl
  // moves it on, to closing, before the hook's offline detaches it).
  const kept = await Promise.all(
    candidates.map(async (b) => {
      if (b.hotplugStatus !== 'connected') return true;
      const c = xs ? await connectionOf(xs, b) : {};
      if (c.state !== '4' || !isXennetScript(c.script)) return false;
      const named = backendBridge(waiting.get(`${b.domid}/${b.devid}`)?.bridge, linkByName);
      if (named !== undefined) b.bridge = named;
      return true;
    }),
  );
  const pending = candidates.filter((_, i) => kept[i]).sort((a, b) => a.domid - b.domid || a.devid - b.devid || a.link.localeCompare(b.link));
  return { vifs, failed, pending, warnings, xenstoreRead };
}
