/** The data behind `xennet plan` and `xennet apply` (stable as --json output). */
import type { LoadedPolicy } from '../config/load.js';
import { parseGuestKey, parseIfName, shown, xenVifName, type DomainName, type IfName } from '../net/index.js';
import { reasonOf, usageError } from '../sys/errors.js';
import { acquireHotplugLock, type HeldHotplugLock, type HotplugLockOptions } from '../sys/hotplug-lock.js';
import { backendWith, engineOf, namedKind, PREFERRED_KIND, selectedKind, unprobedEngine } from './engine.js';
import { loadIndex, type IndexEntry } from './store.js';
import { coarseWidenings, filterRecord, widenings } from './widening.js';
import { silentLogger } from '../sys/log.js';
import { changesByVif, diff, isEmptyPlan, type GuestChange } from './diff.js';
import { NO_VIF_HERE, applyHost, bridgeNetfilterGaps, bridgeNetfilterState, bridgeSysctlsWanted, desiredFor, planHost, strayLearnedWarnings } from './host.js';
import { cidrText, tableNames, type ResolvedVif, type TableName, type VifFacts } from './model.js';
import { backendInfo as backendOf, type BackendInfo } from './drivers.js';
import { describeIdentity } from './domain-identity.js';
import { closePortGaps, portGaps } from './port-hardening.js';
import { gatherHostFacts, readNetSnapshotNow, snapshotSetting, type NetSnapshot } from './session.js';
import { recordPolicy } from '../config/policy-cache.js';
import { emptyLive, type LiveTable } from './live.js';

export interface PlanResult {
  mode: 'host' | 'offline';
  rules: { file: string; exists: boolean };
  /** The firewall's backend (`firewall`) and the xtables tools, which are read either way. */
  backend: BackendInfo | null;
  bridgeNetfilter: Record<string, string | undefined> | null;
  vifs: { name: string; domain?: string; guest?: string; policySource?: string; bridge: string; mac?: string; addresses: string[] }[];
  changes: GuestChange[];
  /**
   * Guests whose firewall the change opens up against the policy their installed rules were
   * compiled from: an `inbound`/`outbound: drop` gone, isolation removed, an allow list grown.
   */
  widenings: Widening[];
  pending: boolean;
  applied?: { tables: string[] };
  warnings: string[];
  /**
   * Set when the daemon answered from a plan it made then (ISO time) that found nothing to
   * change, nothing it reads having changed since (daemon/status-cache.ts).
   */
  asOf?: string;
}

export interface Widening {
  vif: string;
  domain?: string;
  changes: string[];
}

/** Per live vif that has a record of what it was installed with: how the new policy is wider. */
export function planWidenings(installed: Readonly<Record<string, IndexEntry>>, resolved: readonly ResolvedVif[]): Widening[] {
  const out: Widening[] = [];
  for (const r of resolved) {
    const e = Object.hasOwn(installed, r.name) ? installed[r.name] : undefined;
    if (!e) continue;
    const now = filterRecord(r);
    const changes = e.filter ? widenings(e.filter, now) : coarseWidenings(e, now);
    if (changes.length === 0) continue;
    const w: Widening = { vif: r.name, changes };
    if (r.domain !== undefined) w.domain = r.domain;
    out.push(w);
  }
  return out;
}

/**
 * The running guests this policy switches to address learning with no binding yet (installed
 * without learning: addresses declared, or open; or not installed by xennet at all): as one warning, since each is cut off from the
 * addresses it holds until its DHCP client renews (the server's answer binds the address) or it
 * tests an address again (DAD, an ARP probe).
 */
export function learningSwitchWarning(installed: Readonly<Record<string, IndexEntry>>, resolved: readonly ResolvedVif[]): string | undefined {
  const cut = resolved.filter((r) => {
    const e = Object.hasOwn(installed, r.name) ? installed[r.name] : undefined;
    // (A vif with no record runs without xennet's rules: a first apply on a running host.)
    return r.learning && !e?.learning && (r.learned?.ipv4.length ?? 0) + (r.learned?.ipv6.length ?? 0) === 0;
  });
  if (cut.length === 0) return undefined;
  const names = cut.map((r) => `${r.name}${r.domain !== undefined ? ` (${r.domain})` : ''}`).join(', ');
  const one = cut.length === 1;
  return `${names} ${one ? 'switches' : 'switch'} to address learning with no binding: until ${one ? 'it renews its' : 'each renews its'} DHCP lease (the server's answer binds the address) or tests an address (DAD, an ARP probe), ${one ? 'it sends' : 'each sends'} from no address it holds now; to keep ${one ? 'it' : 'them'} as ${one ? 'it is' : 'they are'}, declare ${one ? 'its' : 'their'} addresses or set learn_addresses: false`;
}

function vifSummary(r: ResolvedVif): PlanResult['vifs'][number] {
  const v: PlanResult['vifs'][number] = { name: r.name, bridge: r.bridge, addresses: [...r.ipv4, ...r.ipv6].map(cidrText) };
  if (r.domain !== undefined) v.domain = r.domain;
  if (r.guest !== undefined) v.guest = r.guest;
  if (r.nameSource !== 'name') v.policySource = `${describeIdentity({ source: r.nameSource, ...(r.target !== undefined ? { target: r.target } : {}) })}: policy of ${r.policyName ?? '?'}`;
  if (r.mac !== undefined) v.mac = r.mac;
  return v;
}

export interface HostPlanOptions {
  apply: boolean;
  progress?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Takes the hotplug lock (default: flock; the daemon queues its callers first). */
  acquireLock?: (name: string, options: HotplugLockOptions) => Promise<HeldHotplugLock>;
  /**
   * A plan (not apply) of the network as read in this snapshot (links, br_netfilter and port
   * settings), not read again: the daemon's remembered plan is keyed on the snapshot it is made of.
   */
  snapshot?: NetSnapshot;
}

export async function hostPlan(loaded: LoadedPolicy, options: HostPlanOptions): Promise<PlanResult> {
  const env = options.env ?? process.env;
  const recorded = loadIndex(env, silentLogger);
  const { index } = recorded;
  const engine = await engineOf(await selectedKind(loaded.policy, env, recorded), index.engine);
  const backend = await backendWith(engine, env, silentLogger, index);
  // Under the lock for apply: links and rules are read in one consistent view (a hook attaches a
  // vif only while it holds the same lock, after its rules are in).
  const run = async (): Promise<PlanResult> => {
    // The daemon's snapshot for a plan; else read now (one link dump carries every port's settings).
    const snapshot = (options.apply ? undefined : options.snapshot) ?? (await readNetSnapshotNow());
    const facts = await gatherHostFacts(env, { snapshot });
    const hp = await planHost(backend, loaded.policy, facts.vifs);
    const result: PlanResult = {
      mode: 'host',
      rules: { file: loaded.file, exists: loaded.fromFile },
      backend: backendOf(engine, backend.variant),
      bridgeNetfilter: snapshot.bridgeSysctls,
      vifs: hp.state.resolved.map(vifSummary),
      changes: hp.changes,
      widenings: planWidenings(index.vifs, hp.state.resolved),
      pending: !isEmptyPlan(hp.plan),
      warnings: [...facts.warnings, ...hp.state.warnings],
    };
    const switching = learningSwitchWarning(index.vifs, hp.state.resolved);
    if (switching !== undefined) result.warnings.push(switching);
    const sysctlGaps = bridgeNetfilterGaps(engine, result.bridgeNetfilter ?? {});
    if (sysctlGaps.length > 0) {
      const wanted = bridgeSysctlsWanted(engine);
      result.warnings.push(`br_netfilter is not set as the ${engine.kind} backend needs it (${sysctlGaps.map((k) => `${k} should be ${wanted[k]}`).join(', ')}); apply sets it`);
      result.pending = true;
    }
    const gaps = portGaps(facts.links, facts.vifs.filter((v) => v.link.master !== null), snapshotSetting(snapshot));
    if (gaps.length > 0) {
      result.warnings.push(...gaps.map((g) => `${g.problem}; apply fixes it`));
      result.pending = true;
    }
    // Left for apply's sweep (it runs after the rules that read them are gone).
    const stray = options.apply ? [] : await strayLearnedWarnings(engine, hp.state.resolved);
    if (stray.length > 0) {
      result.warnings.push(...stray);
      result.pending = true;
    }
    if (options.apply) {
      if (gaps.length > 0) {
        const { NetlinkClient } = await import('../bridge/nl/client.js');
        const nl = new NetlinkClient();
        try {
          await closePortGaps(gaps, (b) => nl.setBridgeNoLinkLocalLearn(b, true), env);
        } finally {
          nl.close();
        }
      }
      const done = await applyHost(backend, hp, {
        env,
        onProgress: options.progress ? (i, n, t) => process.stderr.write(`\rapplied ${t} (${i}/${n})...`) : undefined,
      });
      if (options.progress) process.stderr.write('\r\x1b[K');
      result.applied = { tables: done.tablesChanged };
      // What was applied is the last good policy (hooks without the daemon keep it, config/policy-cache.ts).
      recordPolicy(loaded, env);
      result.bridgeNetfilter = bridgeNetfilterState();
    }
    return result;
  };
  if (!options.apply) return run();
  const held = await (options.acquireLock ?? acquireHotplugLock)('iptables', { env });
  try {
    return await run();
  } finally {
    held.release();
  }
}

/** Parses `NAME=DOMAIN[@BRIDGE]`. */
function parseVifSpec(spec: string): VifFacts {
  const m = /^([^=]*)=([^@]*)(?:@(.*))?$/.exec(spec);
  if (!m) throw usageError(`--vif ${shown(spec)} is not NAME=DOMAIN[@BRIDGE]`, 'for example --vif vif5.0=web01@xenbr0');
  try {
    const name = parseIfName(m[1]!, '--vif interface');
    const dev = /\.(\d+)(-emu)?$/.exec(name);
    return { name, domain: parseGuestKey(m[2]!, '--vif domain'), bridge: parseIfName(m[3] ?? 'xenbr0', '--vif bridge'), devid: dev ? Number(dev[1]) : 0, ipv4: [], ipv6: [] };
  } catch (e) {
    throw usageError(reasonOf(e), 'for example --vif vif5.0=web01@xenbr0');
  }
}

/**
 * Compiles the rule file against declared vifs (or one synthetic vif per guest interface in the
 * file: vif<k>.<devid> for the k-th guest), with nothing live: no root, no kernel state.
 */
export function offlinePlan(loaded: LoadedPolicy, vifSpecs: string[]): PlanResult {
  let facts: VifFacts[];
  if (vifSpecs.length > 0) {
    facts = vifSpecs.map(parseVifSpec);
  } else {
    facts = [];
    Object.keys(loaded.policy.guests ?? {})
      .sort()
      .forEach((name, k) => {
        const g = loaded.policy.guests![name]!;
        const devids = new Set([0, ...(g.interfaces ?? []).map((i) => i.devid).filter((d): d is number => d !== undefined)]);
        for (const devid of devids) facts.push({ name: xenVifName(k + 1, devid), domain: name as DomainName, devid, bridge: 'xenbr0' as IfName, ipv4: [], ipv6: [] });
      });
  }
  // Offline nothing is probed: the nftables backend is shown with connection state from a mark
  // (what works on every kernel); a host with nf_conntrack_bridge differs in one rule per guest.
  const state = desiredFor(loaded.policy, facts, unprobedEngine(namedKind(loaded.policy, process.env) ?? PREFERRED_KIND));
  const live = Object.fromEntries(tableNames.map((t) => [t, emptyLive()])) as Record<TableName, LiveTable>;
  const plan = diff(live, state.desired);
  return {
    mode: 'offline',
    rules: { file: loaded.file, exists: loaded.fromFile },
    backend: null,
    bridgeNetfilter: null,
    vifs: state.resolved.map(vifSummary),
    changes: changesByVif(live, plan),
    widenings: [],
    pending: !isEmptyPlan(plan),
    // Offline there is no host: a guest of the file that none of --vif names is said so, and
    // without --vif every guest has one made up.
    warnings: state.warnings.flatMap((w) => (!w.endsWith(NO_VIF_HERE) ? [w] : vifSpecs.length > 0 ? [`${w.slice(0, -NO_VIF_HERE.length)}is named by no --vif`] : [])),
  };
}
