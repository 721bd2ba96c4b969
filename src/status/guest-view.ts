/**
 * `xennet status GUEST`: one guest at a glance, made from what `status` and `plan` found for the
 * whole host, the record of hook calls, and the policy explained setting by setting. Pure: the
 * command gathers, this picks and judges.
 */
import type { HookRecord } from '../hooks/hook-journal.js';
import type { PlanResult, Widening } from '../firewall/cli-plan.js';
import type { GuestChange } from '../firewall/diff.js';
import { XennetError } from '../sys/errors.js';
import { printable, shown } from '../net/index.js';
import type { PolicyExplained } from './guest-policy.js';
import type { HostStatus, VifStatus } from './host-status.js';
import { attachAgain, backendLabel, backendsByDomain, backendsByName, rerunHook, type FailedBackend, type PendingBackend } from '../firewall/discover.js';

/** How many of its last hook calls the view shows. */
export const HOOK_CALLS_SHOWN = 10;

export interface GuestView {
  /** What was asked for (a domain name, a vif name or a domain id). */
  query: string;
  domain: string | null;
  domid: number | null;
  ok: boolean;
  problems: string[];
  notes: string[];
  vifs: VifStatus[];
  /** The policy in force for it, and the file it comes from. */
  policy: ({ file: string; state: 'valid' | 'absent' | 'kept' } & PolicyExplained) | { file: string; error: string };
  /** Its interfaces' last hook calls, oldest first. */
  hooks: HookRecord[];
  /** What `xennet apply` would change for it (or why that could not be worked out). */
  plan: { changes: GuestChange[]; widenings: Widening[] } | { error: string };
  backend: HostStatus['backend'];
  daemon?: HostStatus['daemon'];
  read?: HostStatus['read'];
}

/** What `status GUEST` says of a guest whose backends named have no interface on a bridge: each, why, and what to do. */
function noInterfaceOnBridge(query: string, pending: readonly PendingBackend[], failed: readonly FailedBackend[]): never {
  const waiting = pending.filter((b) => b.hotplugStatus !== 'connected');
  const detached = pending.filter((b) => b.hotplugStatus === 'connected');
  const why = [
    ...waiting.map((b) => `the hook of ${backendLabel(b)} has not finished (its interface ${printable(b.link)} waits, on no bridge)`),
    ...detached.map((b) => `${backendLabel(b)} is connected, but its interface ${printable(b.link)} was taken off its bridge`),
    ...failed.map((b) => `the hook of ${backendLabel(b)} failed${b.error !== null ? ` (hotplug-error: ${shown(b.error, 300)})` : ''}`),
  ];
  const hints = [
    ...(waiting.length > 0 ? ['the toolstack runs a hook when it connects the interface; if this lasts, see /var/log/xen/xen-hotplug.log'] : []),
    ...detached.map((b) => attachAgain(b)),
    ...failed.map((b) => `fix what the hook of ${b.domid}/${b.devid} names, then ${rerunHook(b)}`),
  ];
  throw new XennetError('not-found', `${printable(query)} has no interface on a bridge${waiting.length === why.length ? ' yet' : ''}: ${why.join('; ')}`, { hint: `${hints.join('; ')}; xennet status lists every problem` });
}

/** The interfaces a query names: a vif's name, a domain's name (or the name its policy is found by), or a domain id. */
export function guestVifs(status: HostStatus, query: string): VifStatus[] {
  // By its name, its link's, or the Xen name of the backend's device (vifD.N, renamed by a vifname).
  const xenName = (v: VifStatus): string | undefined => (v.domid === null || v.devid === null ? undefined : `vif${v.domid}.${v.devid}${v.name.endsWith('-emu') ? '-emu' : ''}`);
  const byVif = status.vifs.filter((v) => v.name === query || v.link === query);
  if (byVif.length > 0) return byVif;
  const byXenName = status.vifs.filter((v) => xenName(v) === query);
  if (byXenName.length > 0) return byXenName;
  // An interface's name before any domain's, across the lists: a backend whose interface is off
  // its bridge, by its link, vifname or Xen name (a vifname may be another domain's name).
  const named = { pending: backendsByName(status.pendingBackends, query), failed: backendsByName(status.failedBackends, query) };
  if (named.pending.length > 0 || named.failed.length > 0) noInterfaceOnBridge(query, named.pending, named.failed);
  // A domain's interfaces, and those that carry its policy under another domain: its stub
  // domain's (the emulated NIC), a copy of it being migrated in or out.
  const byDomain = status.vifs.filter((v) => v.domain === query || (v.policyName === query && v.policySource !== 'name'));
  if (byDomain.some((v) => v.domain === query)) return byDomain;
  if (/^(0|[1-9]\d{0,4})$/.test(query)) {
    const byId = status.vifs.filter((v) => v.domid === Number(query));
    if (byId.length > 0) return byId;
  }
  const byPolicy = status.vifs.filter((v) => v.policyName === query);
  if (byPolicy.length > 0) return byPolicy;
  // A guest with no interface on a bridge: its backends whose hook has not finished or failed,
  // each said (one domain may have both).
  const ofDomain = { pending: backendsByDomain(status.pendingBackends, query), failed: backendsByDomain(status.failedBackends, query) };
  if (ofDomain.pending.length > 0 || ofDomain.failed.length > 0) noInterfaceOnBridge(query, ofDomain.pending, ofDomain.failed);
  const known = [...new Set(status.vifs.map((v) => printable(v.domain ?? v.name)))].sort();
  throw new XennetError('not-found', `no guest interface on this host is named ${JSON.stringify(query)}, nor is a domain or domain id`, {
    hint: known.length > 0 ? `the guests here: ${known.slice(0, 12).join(', ')}${known.length > 12 ? `, and ${known.length - 12} more` : ''} (xennet status lists them)` : 'no guest has an interface on this host now (xennet status)',
  });
}

/** Whether a problem names this interface (a name is letters, digits, `.`, `-` and `_`: `app` is not `app-2`, `vif5.0` not `vif5.01`). */
/**
 * Whether a recorded call was this interface's: by its name, or by its domain and device index
 * under the device's own name (a renamed vif's failed call is recorded under `vifD.N`), never
 * the emulated NIC's (`vifD.N-emu`) for the vif or the other way round.
 */
export function callOf(v: Pick<VifStatus, 'name' | 'domid' | 'devid'>, h: Pick<HookRecord, 'vif' | 'domid' | 'devid'>): boolean {
  if (h.vif === v.name) return true;
  if (v.domid === null || v.devid === null || h.domid !== v.domid || h.devid !== v.devid) return false;
  return !v.name.endsWith('-emu') && h.vif === `vif${v.domid}.${v.devid}`;
}

const mentions = (text: string, names: readonly string[]): boolean => names.some((n) => new RegExp(`(^|[^\\w.-])${n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}($|[^\\w.-]|[.-](?![\\w]))`).test(text));

export function guestView(input: {
  query: string;
  status: HostStatus;
  vifs: VifStatus[];
  policy: GuestView['policy'];
  hooks: HookRecord[];
  plan: PlanResult | { error: string };
}): GuestView {
  const { status, vifs } = input;
  const names = vifs.map((v) => v.name);
  const domains = [...new Set(vifs.map((v) => v.domain).filter((d): d is string => d !== null))];
  // What the host's status says about it (by its interfaces' names, or its domain's in
  // parentheses), and what it says about no guest in particular: the host's own firewall path
  // (a dispatch chain flushed, br_netfilter off, xenstore away) fails every guest's traffic too.
  // Another guest's problem is one that starts with its interface's name (`vif7.0 (db01): firewall
  // drifted`, `vif7.0: link is down`); one that only quotes another interface (a foreign rule
  // `-i vif7.0 -j MARK` that undoes isolation) is the host's. A bridge's problem is its guests';
  // chains of departed guests are nobody's.
  const others = status.vifs.map((v) => v.name).filter((n) => !names.includes(n));
  const bridges = new Set(vifs.map((v) => v.bridge));
  const about = (t: string): boolean => mentions(t, names) || domains.some((d) => t.includes(`(${d})`));
  const anothers = (t: string): boolean => others.some((n) => t.startsWith(n) && /^[\s:,(]/.test(t.slice(n.length)));
  const otherBridge = (t: string): boolean => {
    const b = /^bridge (\S+?):? /.exec(t)?.[1];
    return b !== undefined && !bridges.has(b);
  };
  const hostWide = (t: string): boolean => !anothers(t) && !otherBridge(t) && !t.startsWith('stale chains of vifs that are gone');
  // A backend's problem (its hook failed, or has not finished) is its domain's, known by the domain
  // id xennet wrote first, never by what the line quotes (a hotplug-error is the guest's text).
  const domids = new Set(vifs.map((v) => v.domid).filter((d): d is number => d !== null));
  const backendDomid = (t: string): number | undefined => {
    const m = /^backend (\d+)\/\d+[ :]/.exec(t);
    return m ? Number(m[1]) : undefined;
  };
  const problems = status.problems.filter((t) => {
    const d = backendDomid(t);
    return d !== undefined ? domids.has(d) : about(t) || hostWide(t);
  });
  const notes = status.notes.filter(about);
  // Each interface's latest call (by domain and device index: a renamed vif's calls are recorded
  // under its device's name when they fail): a failed one is a problem until a later one succeeds.
  for (const v of vifs) {
    const last = input.hooks.filter((h) => callOf(v, h)).at(-1);
    if (last && !last.ok) problems.push(`${v.name}: its last hook call (${printable(last.command)} at ${printable(last.at)}, ${last.via}) failed: ${printable(last.message)}`);
  }
  let plan: GuestView['plan'];
  if ('error' in input.plan) {
    plan = { error: input.plan.error };
    notes.push(`what apply would change for it is not known: ${input.plan.error}`);
  } else {
    const changes = input.plan.changes.filter((c) => names.includes(c.vif));
    const widenings = input.plan.widenings.filter((w) => names.includes(w.vif));
    plan = { changes, widenings };
    if (changes.length > 0 && !vifs.some((v) => v.firewall === 'drifted' || v.firewall === 'missing')) notes.push('the rule file has changes for it that are not applied yet: `xennet plan` shows them, `xennet apply` makes them');
  }
  if ('error' in input.policy) problems.push(`its policy cannot be explained: ${input.policy.error}`);
  // The domain asked for, not its stub domain's interface that may come first.
  const first = vifs.find((v) => v.domain === input.query) ?? vifs[0]!;
  const view: GuestView = {
    query: input.query,
    domain: first.domain,
    domid: first.domid,
    ok: problems.length === 0,
    problems,
    notes,
    vifs,
    policy: input.policy,
    hooks: input.hooks.slice(-HOOK_CALLS_SHOWN),
    plan,
    backend: status.backend,
  };
  if (status.daemon) view.daemon = status.daemon;
  if (status.read) view.read = status.read;
  return view;
}
