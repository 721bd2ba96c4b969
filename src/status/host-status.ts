/**
 * `xennet status`: bridges (uplink, netfilter call flags), vifs (domain, MAC, addresses, MTU, link
 * state, bridge, hotplug status, firewall state and drop counters), the backend, and anything
 * misconfigured. Works without xenstore and without a rule file.
 */
import { journalsOfThisBoot, lockPath as takeoverLockPath } from '../bridge/journal.js';
import type { LinkState } from '../bridge/model.js';
import { ConfigError, RuleFileError, loadPolicy, problemsText, rulesSource, type RulesSource } from '../config/load.js';
import { lastGoodPolicy } from '../config/policy-cache.js';
import type { PolicyFile } from '../config/schema.js';
import { reasonOf } from '../sys/errors.js';
import { backendWith, defaultKind, engineOf, namedKind, PREFERRED_KIND, recordedKind, selectedKind } from '../firewall/engine.js';
import { silentLogger } from '../sys/log.js';
import { compile, compileShared, compileVif, mergeInto, treeMember } from '../firewall/compile.js';
import { claimsOf, sharedClaims } from '../firewall/claims.js';
import { describeIdentity, type PolicyNameSource } from '../firewall/domain-identity.js';
import { bridgeNetfilterGaps, bridgeNetfilterState, bridgeSysctlsWanted, readLive } from '../firewall/host.js';
import { pathProblems } from '../firewall/integrity.js';
import { portGaps } from '../firewall/port-hardening.js';
import { sameRules } from '../firewall/normalize.js';
import type { ResolvedVif } from '../firewall/model.js';
import { printable, shown } from '../net/index.js';
import { dirOf, loadIndex, readVifChains } from '../firewall/store.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cidrText, dialectOf, emptyRuleSet, tableNames, XTABLES, type Engine, type RuleSet, type TableName } from '../firewall/model.js';
import { backendInfo as backendOf, codecOf, driverFor, engineName, engineTables, type BackendInfo } from '../firewall/drivers.js';
import { vifChain, vifOfChain } from '../firewall/names.js';
import { normalizeRule } from '../firewall/normalize.js';
import { resolveVif } from '../firewall/resolve.js';
import { type Counter, type LiveTable } from '../firewall/live.js';
import { addDrops, type DropsByReason } from '../firewall/drop-reasons.js';
import { XENSTORE_UNREACHABLE, gatherHostFacts, readNetSnapshotNow, snapshotSetting, type NetSnapshot } from '../firewall/session.js';
import type { DaemonStats } from '../daemon/server.js';
import { attachAgain, backendLabel, rerunHook, type FailedBackend, type PendingBackend } from '../firewall/discover.js';
import { guestPlacementProblems, layoutFindings, listed, refusedLockProblems } from './layout-findings.js';
import { lockHolder, refusedLockPaths } from '../sys/lock.js';
import { stateDir } from '../sys/statefile.js';

export type FirewallState = 'in-sync' | 'drifted' | 'missing' | 'not-managed';

export interface VifStatus {
  name: string;
  /** The kernel's name of its link, when not `name` (a guest waiting for its hook to rename vifD.N to its vifname). */
  link?: string;
  domain: string | null;
  domid: number | null;
  /** The vif's device index (the N of vifD.N), when xenstore says. */
  devid: number | null;
  mac: string | null;
  addresses: string[];
  mtu: number;
  up: boolean;
  bridge: string;
  hotplugStatus: string | null;
  firewall: FirewallState;
  /** What its own rules dropped, in all and by reason (counters that only grow while it exists). */
  drops: { packets: number; bytes: number; reasons: DropsByReason };
  /** The rule-file guest whose policy it has (null: the defaults), and the name it was found by. */
  policy: string | null;
  policyName: string | null;
  /** How that name was found: the domain's name, xl's migration names, a stub domain's target. */
  policySource: PolicyNameSource;
  /** The identity guard: what only its ports may carry, and the frames from other ports it dropped. */
  claims: { mac: string[]; ipv4: string[]; ipv6: string[]; dropped: { packets: number; bytes: number } };
  /**
   * Where its address anti-spoofing comes from: addresses declared (rule file, xenstore ip),
   * learned (the default without declared ones), open by the rule file (learn_addresses: false),
   * or none at all for another reason (no MAC to learn by, IP anti-spoofing off).
   */
  addressSource: 'declared' | 'learned' | 'open' | 'none';
  /** Its learned bindings, as the kernel holds them (seconds left; null: until offline). */
  learned: LearnedStatus[];
}

export interface LearnedStatus {
  address: string;
  how: string;
  expiresInSeconds: number | null;
}

export interface BridgeStatusLine {
  name: string;
  up: boolean;
  mtu: number;
  ports: string[];
  uplinks: string[];
  nfCallIptables: boolean;
  nfCallIp6tables: boolean;
}

export interface HostStatus {
  ok: boolean;
  problems: string[];
  notes: string[];
  backend: BackendInfo | null;
  bridgeNetfilter: Record<string, string | undefined>;
  rules: { file: string; state: 'valid' | 'absent' | 'invalid'; error?: string };
  xenstore: string | null;
  bridges: BridgeStatusLine[];
  vifs: VifStatus[];
  staleChains: string[];
  /** Guests' backends whose hook failed and left nothing on a bridge (each also a problem). */
  failedBackends: FailedBackend[];
  /** Guests' backends whose hook has not finished, their interface on no bridge (each also a problem). */
  pendingBackends: PendingBackend[];
  /**
   * Whether xennet's firewall is on this host: rules of its own in any table, or its firewall
   * index. False after `xennet uninstall` (and before the first apply or hook): then the guests
   * are not compared with the rule file, and nothing missing is a problem.
   */
  installed: boolean;
  /** The resident controller, when the CLI asked it (or learned it does not run). */
  daemon?: { running: false } | ({ running: true } & DaemonStats);
  /**
   * When what this shows was read, and whether the daemon answered from memory (nothing it reads
   * has changed since; the counters are as of then). Absent: read just now by this command.
   */
  read?: { at: string; remembered: boolean };
}

/** The pid of the command changing a bridge's takeover now (it holds the bridge's lock), if any: read, never taken. */
function takeoverRunning(bridge: string, env: NodeJS.ProcessEnv): number | undefined {
  return lockHolder(takeoverLockPath(bridge, env));
}

/** A guest's chains in the live tables, by `<table> <chain>`, with their counters. */
type VifLive = Map<string, { table: TableName; rules: string[]; counters: Counter[] }>;

/** The live chains by the vif they belong to, read once (per vif, a scan of every chain grew with the square of the guests). */
function liveByVif(live: Record<TableName, LiveTable>): Map<string, VifLive> {
  const out = new Map<string, VifLive>();
  for (const t of tableNames) {
    for (const [c, rules] of live[t].chains) {
      const v = vifOfChain(c);
      if (v === undefined) continue;
      let m = out.get(v);
      if (!m) out.set(v, (m = new Map()));
      m.set(`${t} ${c}`, { table: t, rules, counters: live[t].counters.get(c) ?? [] });
    }
  }
  return out;
}

function firewallState(desired: RuleSet | undefined, have: VifLive | undefined): FirewallState {
  if (!desired) return have === undefined || have.size === 0 ? 'not-managed' : 'drifted';
  if (have === undefined || have.size === 0) return 'missing';
  for (const t of tableNames) {
    for (const [c, rules] of desired[t].chains) {
      const l = have.get(`${t} ${c}`);
      if (!l || l.rules.length !== rules.length || l.rules.some((r, i) => normalizeRule(r, dialectOf(t)) !== normalizeRule(rules[i]!, dialectOf(t)))) return 'drifted';
    }
  }
  return 'in-sync';
}

function drops(have: VifLive | undefined, counted: ReadonlySet<TableName>): { packets: number; bytes: number; reasons: DropsByReason } {
  const out = { packets: 0, bytes: 0, reasons: {} as DropsByReason };
  for (const [key, { table, rules, counters }] of have ?? []) {
    if (!counted.has(table)) continue;
    const chain = key.slice(key.indexOf(' ') + 1);
    const codec = codecOf(table);
    rules.forEach((r, i) => {
      const reason = codec.dropReason(chain, r);
      if (reason === undefined) return;
      const c = counters[i] ?? { packets: 0, bytes: 0 };
      out.packets += c.packets;
      out.bytes += c.bytes;
      addDrops(out.reasons, reason, c);
    });
  }
  return out;
}

/**
 * The host's status. `unread` collects what could not be read this time (xenstore, the firewall,
 * other tables, the learned bindings): such an answer must not stand for what the host is like
 * later (the daemon does not remember it). `changesAt.at` is lowered to the first moment what it
 * shows changes by itself (a learned binding, recorded or in the kernel, runs out).
 */
export async function hostStatus(options: { rules?: string | RulesSource; env?: NodeJS.ProcessEnv; unread?: string[]; changesAt?: { at: number }; snapshot?: NetSnapshot } = {}): Promise<HostStatus> {
  const env = options.env ?? process.env;
  const problems: string[] = [];
  const notes: string[] = [];
  const unread = options.unread ?? [];
  // The daemon's snapshot (its key was made of it); else read now (one link dump carries every port's settings).
  const snapshot = options.snapshot ?? (await readNetSnapshotNow());
  const facts = await gatherHostFacts(env, { dom0: true, snapshot });
  if (!facts.xenstoreRead) unread.push('xenstore');
  // Without xenstore nothing says which guest a vif is, so nothing can be checked against it:
  // a monitoring check must not read that as healthy.
  const unreachable = facts.warnings.find((w) => w.startsWith(XENSTORE_UNREACHABLE));
  if (unreachable) problems.push(`${unreachable.replace(/: domain names, MACs and addresses come from the rule file only$/, '')}: the guests' domains, hotplug states and addresses are unknown (is xenstored running?)`);
  else if (!facts.xenstoreRead) problems.push('xenstore could not be read in full: some guests\' domains, hotplug states or addresses are unknown (see the notes)');
  notes.push(...facts.warnings.filter((w) => w !== unreachable));
  const source = typeof options.rules === 'object' ? options.rules : rulesSource(options.rules, env);
  const file = source.file;
  let policy: PolicyFile | undefined;
  let rules: HostStatus['rules'];
  // What hooks keep when the file cannot be used now (invalid, or deleted while in force): read
  // only then.
  const keptBy = (l: { since?: string }): string => `; guests are firewalled by the last good policy${l.since ? ` (validated ${l.since})` : ''}, as status shows them`;
  try {
    const loaded = loadPolicy(file, { absentOk: source.absentOk });
    policy = loaded.policy;
    rules = { file, state: loaded.fromFile ? 'valid' : 'absent' };
    const last = loaded.fromFile ? undefined : await lastGoodPolicy(file, env);
    if (last) {
      policy = last.policy;
      problems.push(`rule file ${file} is gone${keptBy(last)}; \`xennet apply\` installs the built-in defaults`);
    }
  } catch (e) {
    const last = await lastGoodPolicy(file, env);
    rules = { file, state: 'invalid', error: e instanceof ConfigError ? problemsText(e.problems) : reasonOf(e) };
    problems.push(`${e instanceof RuleFileError ? `${e.message} (${e.hint ?? ''})` : `rule file ${file} is invalid: ${rules.error}`}${last ? keptBy(last) : ''}`);
    if (last) policy = last.policy;
  }
  let backendInfo: HostStatus['backend'] = null;
  let engine: Engine = XTABLES;
  let live: Record<TableName, LiveTable> | undefined;
  const indexPresent = existsSync(join(dirOf(env), 'index.json'));
  const resolvedEarly = new Map<string, ResolvedVif>();
  // A guest's policy, with what keeps learning from running on the engine in use (if anything).
  const resolveFact = (f: (typeof facts.vifs)[number]): ResolvedVif | undefined => {
    if (!policy) return undefined;
    const why = driverFor(engine).learningUnavailable();
    return resolveVif(policy, why === undefined ? f : { ...f, learningUnavailable: why });
  };
  let compiledAll: RuleSet | undefined;
  let sharedAll: RuleSet | undefined;
  // Drops count in the tables of the backend the guests' rules are recorded on: after a switch
  // cut short, the other's are leftovers whose counts were carried over already.
  let counted: ReadonlySet<TableName> = new Set(tableNames);
  const perVif = new Map<string, RuleSet>();
  try {
    const recorded = loadIndex(env, silentLogger);
    if (recorded.unreadable !== undefined) notes.push(`the firewall index ${join(dirOf(env), 'index.json')} cannot be read (${recorded.unreadable}): the guests are judged by the rules in the kernel; the next hook or \`xennet apply\` sets it aside and rebuilds it from them`);
    engine = await engineOf(await selectedKind(policy, env, recorded), recorded.index.engine);
    const backend = await backendWith(engine, env, silentLogger, recorded.index);
    backendInfo = backendOf(engine, backend.variant);
    counted = new Set(engineTables(!recorded.recovered && recorded.index.engine ? recorded.index.engine : engine));
    // The guests' policies first: the rules they compile to let the nftables tables be read
    // natively (a rule is known by its tag), not printed by nft and parsed.
    for (const f of facts.vifs) {
      const r = resolveFact(f);
      if (r) resolvedEarly.set(f.name, r);
    }
    // Each guest's chains once: the whole firewall is the shared part and these (as compile()
    // makes it), and each guest's own state is judged by them.
    const sorted = [...resolvedEarly.values()].sort((a, b) => a.name.localeCompare(b.name));
    sharedAll = compileShared(sorted.map(treeMember), engine);
    compiledAll = mergeInto(emptyRuleSet(), sharedAll);
    for (const r of sorted) {
      const own = compileVif(r, engine);
      perVif.set(r.name, own);
      mergeInto(compiledAll, own);
    }
    live = await readLive(backend, true, compiledAll);
    if (recorded.index.engine && !recorded.recovered && engineName(recorded.index.engine) !== engineName(engine)) {
      problems.push(`the firewall is installed on ${engineName(recorded.index.engine)}, but the rule file selects ${engineName(engine)}; \`xennet apply\` moves it`);
    }
    // A host installed on another backend than the preferred one stays there until told: say
    // what the default would be (asked only then: it probes the kernel).
    if (engine.kind !== PREFERRED_KIND && namedKind(policy, env) === undefined && recordedKind(recorded) === engine.kind && (await defaultKind()) === PREFERRED_KIND) {
      notes.push(`the firewall stays on ${engine.kind}, where it is installed; xennet's default is ${PREFERRED_KIND} where it works, as here: \`backend: ${PREFERRED_KIND}\` in the rule file and \`xennet apply\` move it (\`xennet plan\` shows the switch first)`);
    }
    const found = await driverFor(engine).statusFindings({ live, backend, engine, isolation: [...resolvedEarly.values()].some((r) => r.isolation), unread: (what) => unread.push(what) });
    problems.push(...found.problems);
    notes.push(...found.notes);
  } catch (e) {
    unread.push('the firewall');
    problems.push(`cannot read the firewall: ${reasonOf(e)}`);
  }
  const installed = live === undefined || indexPresent || tableNames.some((t) => live![t].chains.size > 0 || live![t].roots.length > 0);
  const bridgeNetfilter = snapshot.bridgeSysctls as ReturnType<typeof bridgeNetfilterState>;
  const byName = new Map<string, LinkState>(facts.links.map((l) => [l.name, l]));
  const vifNames = new Set(facts.vifs.map((v) => v.name as string));
  const bridges: BridgeStatusLine[] = facts.links
    .filter((l) => l.kind === 'bridge')
    .map((b) => {
      const ports = facts.links.filter((l) => l.master === b.name).map((l) => l.name);
      return {
        name: b.name,
        up: b.up,
        mtu: b.mtu,
        ports,
        uplinks: ports.filter((p) => !vifNames.has(p)),
        nfCallIptables: b.bridge?.nfCallIptables ?? false,
        nfCallIp6tables: b.bridge?.nfCallIp6tables ?? false,
      };
    });
  const resolvedAll: ResolvedVif[] = [];
  const learnedAll = await learnedBindings(env);
  if (!learnedAll.read) {
    unread.push('learned bindings');
    notes.push(`the learned bindings could not be read ${learnedAll.together ? '(the kernel\'s sets did not answer)' : '(their lock stayed held for 2 s: a change in flight)'}: their checks are left out of this status; run it again`);
  }
  if (options.changesAt) options.changesAt.at = Math.min(options.changesAt.at, learnedAll.changesAt);
  const byVif = live ? liveByVif(live) : undefined;
  const claimDrops = live ? driverFor(engine).claimDrops(live) : undefined;
  const vifs: VifStatus[] = facts.vifs.map((f) => {
    const resolved = resolvedEarly.get(f.name) ?? resolveFact(f);
    if (resolved) resolvedAll.push(resolved);
    const desired = !installed ? undefined : resolved ? (perVif.get(f.name) ?? compileVif(resolved, engine)) : readVifChains(f.name, env);
    // A guest's dispatch entries (nftables: its map and set elements) are its own too, though the
    // shared part makes them.
    if (installed && resolved) {
      const entries = vifChain('E', f.name);
      const shared = sharedAll ?? compileShared([treeMember(resolved)], engine);
      for (const t of engineTables(engine)) {
        const rules = shared[t].chains.get(entries);
        if (rules) desired![t].chains.set(entries, rules);
      }
    }
    const link = byName.get(f.name) ?? f.link;
    const member = resolved ? treeMember(resolved) : undefined;
    return {
      name: f.name,
      ...(link.name !== f.name ? { link: link.name } : {}),
      domain: f.domain ?? null,
      domid: f.domid ?? null,
      devid: f.devid ?? null,
      mac: resolved?.mac ?? f.mac ?? null,
      addresses: resolved ? [...resolved.ipv4, ...resolved.ipv6].map(cidrText) : [...f.ipv4, ...f.ipv6].map(cidrText),
      mtu: link.mtu,
      up: link.up,
      // Where it is (printable: a bridge of a name xennet does not take is judged by its record).
      bridge: link.master !== null ? printable(link.master) : f.bridge,
      hotplugStatus: f.hotplugStatus ?? null,
      firewall: byVif ? firewallState(desired, byVif.get(f.name)) : 'not-managed',
      drops: byVif ? drops(byVif.get(f.name), counted) : { packets: 0, bytes: 0, reasons: {} },
      policy: resolved?.guest ?? null,
      policyName: resolved ? (resolved.policyName ?? null) : f.identity ? (f.identity.policyName ?? null) : (f.domain ?? null),
      policySource: resolved?.nameSource ?? f.identity?.source ?? 'name',
      claims: { ...(member?.claims ?? { mac: [], ipv4: [], ipv6: [] }), dropped: claimDrops ? claimDrops(member?.claims) : { packets: 0, bytes: 0 } },
      addressSource: resolved?.learning ? 'learned' : resolved?.addressesOpen ? 'open' : (resolved ? resolved.ipv4.length + resolved.ipv6.length : f.ipv4.length + f.ipv6.length) > 0 && (!resolved || resolved.antispoof.ipv4 || resolved.antispoof.ipv6) ? 'declared' : 'none',
      learned: resolved?.learning ? (learnedAll.byVif.get(f.name) ?? []) : [],
    };
  });
  const waiting: string[] = [];
  const stubs = new Map(resolvedAll.filter((r) => r.nameSource === 'stubdom').map((r) => [r.name as string, r]));
  for (const v of vifs) {
    const who = `${v.name}${v.domain ? ` (${printable(v.domain)})` : ''}`;
    if (v.policySource === 'incoming' || v.policySource === 'migratedaway') notes.push(`${who}: ${describeIdentity({ source: v.policySource })}; it has the policy of ${v.policyName ? printable(v.policyName) : '?'}, and its MAC and addresses are not guarded against other ports until the migration is over`);
    const stub = stubs.get(v.name);
    if (stub) notes.push(`${who}: ${describeIdentity({ source: 'stubdom', ...(stub.target !== undefined ? { target: stub.target } : {}) })}: it has the policy of ${stub.policyName ? printable(stub.policyName) : 'the defaults (the guest has no name)'}`);
    if (v.addressSource === 'learned' && !v.learned.some((b) => !/^fe[89ab]/.test(b.address))) waiting.push(who);
    if (v.claims.dropped.packets > 0) notes.push(`${who}: the identity guard dropped ${v.claims.dropped.packets} frame${v.claims.dropped.packets === 1 ? '' : 's'} from other ports that carried its MAC or one of its addresses: another host uses them, or its configured addresses are wrong`);
    // A guest given dom0's address (a typo in ip=) would have the guard drop dom0's own frames.
    for (const a of [...v.claims.ipv4, ...v.claims.ipv6]) {
      if (facts.dom0?.addresses.includes(a)) problems.push(`${who} has ${a} as its address, which is dom0's own: the identity guard drops dom0's frames from that address; fix the guest's addresses (xenstore ip or the rule file) and run \`xennet apply\``);
      else if (facts.dom0?.gateways.includes(a)) notes.push(`${who} has ${a} as its address, which is dom0's default gateway: unless this guest is the gateway, the identity guard drops the gateway's frames and dom0 and the guests lose it; then fix the guest's addresses`);
    }
  }
  // A recorded binding the kernel lacks (its set flushed by hand) leaves the guest without it.
  const unrecorded = vifs.flatMap((v) => v.learned.filter((b) => b.how === 'unrecorded').map((b) => `${v.name} ${b.address}`));
  if (unrecorded.length > 0 && learnedAll.together) problems.push(`learned bindings in the kernel that nobody recorded (a crash between the two writes, or added by hand): ${unrecorded.join(', ')}; those guests may send from them: \`xennet apply\` (or a daemon restart) removes them`);
  const missing = learnedAll.missing.filter((m) => vifs.some((v) => v.name === m.vif && v.addressSource === 'learned'));
  if (missing.length > 0) problems.push(`learned bindings recorded but not in the kernel (a set flushed by hand?): ${missing.map((m) => `${m.vif} ${m.address}`).join(', ')}; those guests cannot send from them until \`xennet apply\` puts them back`);
  // One note for the learning guests with no address yet (after an upgrade, a host's many).
  if (waiting.length > 0) {
    const named = listed(waiting);
    const one = waiting.length === 1;
    notes.push(`${named} ${one ? 'learns its' : 'learn their'} addresses and ${one ? 'has' : 'have'} none yet (link-local aside): ${one ? 'it' : 'each'} may send only what gets it one (DHCP, DHCPv6, DAD, ARP probes, router solicitations, MLD)`);
  }
  // Guests that would learn their addresses but cannot here (xtables without ipset).
  const blocked = resolvedAll.filter((r) => r.learningUnavailable !== undefined);
  if (blocked.length > 0) {
    const named = listed(blocked.map((r) => r.name));
    problems.push(`${named} ${blocked.length === 1 ? 'has' : 'have'} no declared address and cannot learn ${blocked.length === 1 ? 'its' : 'their'} addresses: ${blocked[0]!.learningUnavailable}; ${blocked.length === 1 ? 'it has' : 'they have'} no address anti-spoofing until it is installed and \`xennet apply\` runs`);
  }
  // One note for every guest without address anti-spoofing (a host of DHCP guests has many).
  const unprotected = (source: VifStatus['addressSource']): string[] => vifs.filter((v) => v.addressSource === source && v.firewall !== 'not-managed' && !blocked.some((r) => r.name === v.name)).map((v) => `${v.name}${v.domain ? ` (${printable(v.domain)})` : ''}`);
  const noteAll = (list: string[], why: string, what: string): void => {
    if (list.length === 0) return;
    const named = listed(list);
    notes.push(`${list.length === 1 ? `${named} has` : `${list.length} guests have`} no address anti-spoofing${list.length === 1 ? '' : ` (${named})`}: ${list.length === 1 ? 'it' : 'they'} may send from any IP address (${why}); ${what}`);
  };
  noteAll(unprotected('none'), 'no ip= in xenstore, no address in the rule file, and nothing to learn them by: no MAC known, or IP anti-spoofing off', 'declare the addresses');
  noteAll(unprotected('open'), 'learn_addresses: false in the rule file, and no address declared', 'declare the addresses, or let them be learned');
  for (const w of sharedClaims(resolvedAll.map((r) => ({ name: r.name, domid: r.domid, target: r.target, claims: claimsOf(r) })))) notes.push(w);
  const staleChains: string[] = [];
  if (live) {
    for (const t of engineTables(engine)) for (const c of live[t].chains.keys()) {
      const v = vifOfChain(c);
      if (v !== undefined && !vifNames.has(v)) staleChains.push(`${t} ${c}`);
    }
  }
  // A guest whose hook has not finished has no network on that interface (while a guest starts,
  // for a moment; for good when the toolstack never runs it, or it was killed).
  for (const b of facts.pendingBackends) {
    if (b.hotplugStatus === 'connected') problems.push(`${backendLabel(b)}: its hook finished (hotplug-status "connected"), but its interface ${printable(b.link)} is on no bridge: the guest has no network there; ${attachAgain(b)}`);
    else problems.push(`${backendLabel(b)}: its hook has not finished (hotplug-status ${b.hotplugStatus === null ? 'missing' : JSON.stringify(b.hotplugStatus)}): its interface ${printable(b.link)} is on no bridge; the guest has no network there until the hook runs; if this lasts, the toolstack did not run it or it stopped (see /var/log/xen/xen-hotplug.log)`);
  }
  const sysctlGaps = bridgeNetfilterGaps(engine, bridgeNetfilter);
  if (installed && vifs.length > 0 && sysctlGaps.length > 0) {
    const wanted = bridgeSysctlsWanted(engine);
    const why = driverFor(engine).bridgeNetfilter.risk;
    problems.push(`br_netfilter is not set as the ${engine.kind} backend needs it: ${sysctlGaps.map((k) => `${k} is ${bridgeNetfilter[k] ?? 'missing'}, not ${wanted[k]}`).join(', ')} ${why}; run \`xennet apply\``);
  }
  // The whole path a guest's packet takes: root jumps (present, once, nothing accepting above
  // them), XN-FORWARD, the dispatch trees, isolation. Compared with what the rule file wants.
  if (installed && live && policy && vifs.length > 0) {
    for (const p of pathProblems(live, compiledAll ?? compile(resolvedAll, engine), sameRules, vifOfChain, (t, c) => codecOf(t).chainKind(c))) problems.push(`${p}; \`xennet apply\` repairs it`);
  }
  if (live) {
    // Whatever is left of xennet in the tables of the backend not in use.
    const mine = engineTables(engine);
    const left = tableNames.filter((t) => !mine.includes(t) && (live![t].chains.size > 0 || live![t].roots.length > 0));
    if (left.length > 0) problems.push(`xennet's rules are still in ${left.join(', ')}, which the ${engine.kind} backend does not use; \`xennet apply\` removes them`);
  }
  if (!installed) {
    const attached = facts.vifs.filter((v) => v.link.master !== null).length;
    notes.push(`xennet's firewall is not installed on this host (no rules of its own, no firewall index)${attached > 0 ? `: ${attached} attached guest interface${attached === 1 ? ' is' : 's are'} not filtered by xennet` : ''}; \`xennet apply\` installs it`);
  }
  if (installed) for (const g of portGaps(facts.links, facts.vifs.filter((v) => v.link.master !== null), snapshotSetting(snapshot))) problems.push(`${g.problem}; \`xennet apply\` fixes it`);
  const discovered = new Map(facts.vifs.map((f) => [f.name as string, f]));
  for (const v of vifs) {
    const who = `${v.name}${v.domain ? ` (${printable(v.domain)})` : ''}`;
    const found = discovered.get(v.name);
    if (v.firewall === 'missing' || v.firewall === 'drifted') problems.push(`${who}: firewall ${v.firewall}; \`xennet plan\` shows it, \`xennet apply\` fixes it`);
    // Rules in place before the hook attaches the link (the daemon prepares them when the backend
    // appears; a guest with a vifname has them under that name, its link still vifD.N): the link
    // is down until the hook brings it up, which the one problem says.
    const link = facts.xenstore && v.hotplugStatus !== 'connected' ? found?.link : undefined;
    const waiting = link !== undefined && link.master === null && (v.hotplugStatus === null || v.hotplugStatus === '');
    if (facts.xenstore && v.hotplugStatus !== 'connected') {
      const why = waiting ? `: its hook has not finished, and its interface${link.name !== v.name ? ` (${printable(link.name)} until the hook renames it)` : ''} is on no bridge yet${v.firewall === 'in-sync' ? '; its rules are in place' : ''}` : '';
      problems.push(`${v.name}: hotplug-status is ${v.hotplugStatus === null ? 'missing' : JSON.stringify(v.hotplugStatus)}, not "connected"${why}`);
    }
    if (!v.up && !waiting) problems.push(`${v.name}: link is down`);
    problems.push(...guestPlacementProblems(who, v, found, byName, Boolean(facts.xenstore)));
  }
  const layout = layoutFindings({ bridges, links: byName, guestPorts: vifNames, journals: journalsOfThisBoot(env), takeoverRunning: (bridge) => takeoverRunning(bridge, env) });
  problems.push(...layout.problems);
  problems.push(...refusedLockProblems(refusedLockPaths(stateDir(env))));
  notes.push(...layout.notes);
  for (const b of facts.failedBackends) {
    problems.push(`${backendLabel(b)}: its hook failed${b.error !== null ? ` (hotplug-error: ${shown(b.error, 300)})` : ''} and its interface is on no bridge: the guest has no network there; fix what it names, then ${rerunHook(b)}`);
  }
  if (staleChains.length > 0) problems.push(`stale chains of vifs that are gone: ${staleChains.join(', ')}; \`xennet apply\` removes them`);
  if (rules.state === 'absent') notes.push(`no rule file at ${file}: guests get anti-spoofing from xenstore only`);
  return { ok: problems.length === 0, problems, notes, backend: backendInfo, bridgeNetfilter, rules, xenstore: facts.xenstore, bridges, vifs, staleChains, failedBackends: facts.failedBackends, pendingBackends: facts.pendingBackends, installed };
}

/**
 * The learned bindings in the kernel by port, with how each was learned and when it ends (from
 * the record), and the recorded ones the kernel lacks (a set flushed by hand: the guest cannot
 * use them until `xennet apply` puts them back).
 */
async function learnedBindings(env: NodeJS.ProcessEnv): Promise<{ byVif: Map<string, LearnedStatus[]>; missing: { vif: string; address: string }[]; together: boolean; read: boolean; changesAt: number }> {
  const out = new Map<string, LearnedStatus[]>();
  const { readRecordAndKernel } = await import('../firewall/learning/state.js');
  const { expire } = await import('../firewall/learning/bindings.js');
  const read = await readRecordAndKernel(env);
  const now = Date.now();
  const recorded = expire(read.recorded, now).live;
  const kernel = read.kernel;
  const key = (b: { vif: string; family: string; address: string }): string => `${b.vif} ${b.family} ${b.address}`;
  // ipset's timeouts are whole seconds, rounded up: an element outlives its record by up to one,
  // and is not one nobody recorded meanwhile.
  const recordedByKey = new Map(expire(read.recorded, now - 1000).live.map((b) => [key(b), b]));
  for (const k of kernel ?? []) {
    const r = recordedByKey.get(key(k));
    // A lease longer than the kernel takes has no end there: the record has it.
    const expiresMs = k.expiresMs ?? (r?.expires != null ? r.expires - now : null);
    const list = out.get(k.vif) ?? [];
    list.push({ address: k.address, how: r?.how ?? 'unrecorded', expiresInSeconds: expiresMs === null ? null : Math.ceil(expiresMs / 1000) });
    out.set(k.vif, list);
  }
  const inKernel = new Set((kernel ?? []).map(key));
  const missing = kernel === undefined || !read.together ? [] : recorded.filter((b) => !inKernel.has(key(b))).map((b) => ({ vif: b.vif, address: b.address }));
  // The first binding to run out, in the record or in the kernel: what this shows changes then.
  let changesAt = Number.POSITIVE_INFINITY;
  for (const b of recorded) if (b.expires != null) changesAt = Math.min(changesAt, b.expires);
  for (const k of kernel ?? []) if (k.expiresMs != null) changesAt = Math.min(changesAt, now + k.expiresMs);
  return { byVif: out, missing, together: read.together, read: read.kernel !== undefined && read.together, changesAt };
}
