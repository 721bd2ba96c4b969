/**
 * Commits staged vif changes (the caller holds the hotplug lock). Group commit: whoever holds the
 * lock applies every staged change of a live stager in one transaction per table, so at host boot
 * one restore carries many vifs.
 *
 * Normally the change is incremental: the vif's own chains and the shared tree chains on its path,
 * worked out from the index without reading the live rules (a hook's cost must not grow with the
 * number of guests). The index is written ahead (`dirty`) and confirmed afterwards, so a commit
 * killed half way is seen by the next one, which then reconciles in full from the live rules:
 *
 *   - vifs in the index keep (or get) their recorded chains;
 *   - chains of vifs the index does not know are adopted as they are, never removed: a hook never
 *     strips the rules of a guest it was not asked about (only `xennet apply`, with the whole
 *     host in view, collects those);
 *   - installs that were never confirmed and whose process is gone are removed: their vif never
 *     came up (it is attached only after its rules are confirmed); unless the port is attached (a
 *     running guest's rules being changed): then its live rules are adopted as they are.
 */
import { existsSync, rmSync } from 'node:fs';
import { isIfName, type IfName } from '../net/index.js';
import { reasonOf, XennetError } from '../sys/errors.js';
import type { Logger } from '../sys/log.js';
import { identityAlive, selfIdentity } from '../sys/process.js';
import { killPoint, stallPoint } from '../sys/test-seams.js';
import { aliasOf, bridgeOfPort } from '../sys/sysfs.js';
import type { Backend } from './backend.js';
import { compileShared, mergeInto } from './compile.js';
import type { TreeMember } from './model.js';
import { carryDropCounters } from './counter-carry.js';
import { asLive, diffTable, emptyTablePlan, isEmptyTablePlan, render } from './diff.js';
import { dialectOf, emptyRuleSet, tableNames, XTABLES, type Engine, type RuleSet, type TableName, type TablePlan, type TableRules } from './model.js';
import { codecOf, driverFor, engineName, engineTables, parseLive } from './drivers.js';
import { ownerOfMark, ownerOfVifName, vifOfChain } from './names.js';
import { normalizeRule } from './normalize.js';
import type { LiveTable } from './live.js';
import type { AdoptedFacts } from './driver.js';
import { forgetEarlierDomains, forgetVifs, restoreBindings } from './learning/state.js';
import { fingerprintOf, loadIndex, newToken, ownProperty, readStaged, readVifChains, removeVifChains, saveIndex, stage, sweepFirewallTemp, writeVifChains, type FirewallIndex, type IndexEntry, type MemberFacts, type Owner, type Staged, type StagedChange } from './store.js';

type Members = Record<string, IndexEntry>;

/**
 * How long a commit waits for the learned bindings' lock, under the hotplug lock that every hook
 * of the host waits for: a holder stuck (stopped) must not hold every guest's start up for long.
 * What is not done then ends with its lease, and `status` shows it.
 */
const LEARNED_WAIT_MS = 2000;

function membersOf(vifs: Members): TreeMember[] {
  return Object.keys(vifs)
    .sort()
    .map((name) => {
      const e = vifs[name]!;
      const m: TreeMember = { name: name as IfName, bridge: e.bridge, inbound: e.inbound, isolated: e.isolated };
      if (e.learning) m.learning = true;
      if (e.claims) m.claims = e.claims;
      return m;
    });
}

/**
 * The shared chains of these members. A resident committer (the daemon) compiles the same member
 * set twice in a row (one commit's `after` is the next one's `before`): the last two are kept.
 */
const recentShared: { key: string; rs: RuleSet }[] = [];
function sharedOf(members: Members, engine: Engine): RuleSet {
  const list = membersOf(members);
  const key = `${engineName(engine)}\n${JSON.stringify(list)}`;
  const hit = recentShared.find((r) => r.key === key);
  const rs = hit?.rs ?? compileShared(list, engine);
  if (!hit) {
    recentShared.unshift({ key, rs });
    recentShared.length = Math.min(recentShared.length, 2);
  }
  // The callers add to what they get (mergeInto): a copy of the maps, never the kept one.
  return Object.fromEntries(tableNames.map((t) => [t, { chains: new Map(rs[t].chains), roots: [...rs[t].roots] }])) as RuleSet;
}

/** Pure: the per-table plans that move the installed state from `before` to `after`. */
export function incrementalPlans(before: Members, after: Members, oldChains: RuleSet, newChains: RuleSet, engine: Engine = XTABLES): Record<TableName, TablePlan> {
  const from = mergeInto(sharedOf(before, engine), oldChains);
  const to = mergeInto(sharedOf(after, engine), newChains);
  const out = {} as Record<TableName, TablePlan>;
  for (const t of tableNames) {
    const p = diffTable(asLive(from[t]), to[t], t);
    // The vif's own chains are always rewritten: a repeated online repairs them.
    for (const [c, rules] of newChains[t].chains) p.write.set(c, rules);
    if (!isEmptyTablePlan(p)) codecOf(t).completeRecordedPlan?.(p, from[t]);
    // So are the root jumps of a table it changes: each is deleted and inserted at the top, which
    // also lifts it above anything inserted since; one that is missing makes the restore fail,
    // and the table is then reconciled from the live rules.
    if (!isEmptyTablePlan(p)) {
      const key = (r: { chain: string; rule: string }): string => `${r.chain} ${r.rule}`;
      const moving = new Set([...p.addRoots, ...p.removeRoots].map(key));
      for (const r of to[t].roots) {
        if (moving.has(key(r)) || !from[t].roots.some((x) => key(x) === key(r))) continue;
        p.removeRoots.push(r);
        p.addRoots.push(r);
      }
    }
    out[t] = p;
  }
  return out;
}

/**
 * A change made from the record rewrites guests' chains the kernel holds now: what their drop
 * rules counted is carried to the rules written (counter-carry.ts), read from those chains alone
 * (the recorded rules say which rule each counter is of).
 */
async function carryFromKernel(backend: Backend, t: TableName, plan: TablePlan, recorded: TableRules, exclude: ReadonlySet<string>): Promise<void> {
  const chains = new Map<string, readonly string[]>();
  for (const c of [...plan.write.keys(), ...plan.remove]) {
    const v = vifOfChain(c);
    const rules = recorded.chains.get(c);
    if (v !== undefined && !exclude.has(v) && rules) chains.set(c, rules);
  }
  if (chains.size === 0) return;
  carryDropCounters([{ table: t, plan, live: { chains, counters: await backend.chainCounters(t, chains) } }], { exclude });
}

/** The owner a vif name shows: vif<D>.<N>[-emu], or xennet's mark on the link. */
function ownerFromLink(name: string): Owner | undefined {
  return ownerOfVifName(name) ?? ownerOfMark(aliasOf(name));
}

/** Whether a table's shared chains or root jumps name one of `vif`'s own chains (XN-<kind>-<vif>). */
function namesChainOf(table: TableRules, vif: string): boolean {
  const own = new RegExp(`\\bXN-[A-Z0-9]+-${vif.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w.-])`);
  return table.roots.some((r) => own.test(r.rule)) || [...table.chains.values()].some((rules) => rules.some((r) => own.test(r)));
}

/**
 * The full desired state of one table for a reconcile from the live rules: `vifs` with their
 * chains (recorded, else live), plus every vif that has live chains but no record (adopted).
 */
export function reconciledTable(live: LiveTable, t: TableName, vifs: Members, chainsOf: (name: string) => RuleSet | undefined, removing: ReadonlySet<string>, adopted: Members, liveFacts: (name: string) => AdoptedFacts = () => ({ isolated: false }), engine: Engine = XTABLES): TableRules {
  const codec = codecOf(t);
  const liveVifs = codec.liveGuests(live);
  const members: Members = { ...vifs };
  for (const v of liveVifs) {
    if (members[v] || removing.has(v) || !isIfName(v)) continue;
    // What it was installed with shows in the live rules (its driver knows where: isolation,
    // claims, learning), and inbound filtering in its XN-I chain. This table is compiled from
    // what shows here; the record keeps what any table showed.
    const facts = codec.adoptedFacts(live, v, liveFacts(v));
    const prior = adopted[v];
    const entry: IndexEntry = { bridge: prior?.bridge ?? (bridgeOfPort(v) as IfName | undefined) ?? null, inbound: (live.chains.get(`XN-I-${v}`) ?? []).length > 0 || (prior?.inbound ?? false), isolated: facts.isolated || (prior?.isolated ?? false), state: 'installed' };
    if (facts.learning || prior?.learning) entry.learning = true;
    const claims = facts.claims ?? prior?.claims;
    if (claims) entry.claims = claims;
    const owner = prior?.owner ?? ownerFromLink(v);
    if (owner) entry.owner = owner;
    ownProperty(adopted, v, entry);
    ownProperty(members, v, entry);
  }
  // Each member's chains: recorded, else live.
  const own = new Map<string, [string, string[]][]>();
  const chainless: string[] = [];
  for (const name of Object.keys(members)) {
    const recorded = vifs[name] ? chainsOf(name) : undefined;
    const chains = recorded ? [...recorded[t].chains] : [...live.chains].filter(([c]) => vifOfChain(c) === name);
    if (!recorded && chains.length === 0 && vifs[name]) chainless.push(name);
    own.set(name, chains);
  }
  let desired = compileShared(membersOf(members), engine)[t];
  // A recorded guest with no chains here, recorded or live (its record damaged or forged), whose
  // dispatch would name chains of its: left out, or the kernel would refuse every change until
  // an apply. (One the shared chains name otherwise, by its port alone, stays.)
  const dangling = chainless.filter((name) => namesChainOf(desired, name));
  if (dangling.length > 0) {
    for (const name of dangling) {
      delete members[name];
      own.delete(name);
    }
    desired = compileShared(membersOf(members), engine)[t];
  }
  // A member whose bridge is unknown keeps the root jumps that are live: removing them would let
  // its traffic (and everyone else's on that bridge) past every rule.
  if (Object.values(members).some((m) => m.bridge === null)) {
    const have = new Set(desired.roots.map((r) => `${r.chain} ${normalizeRule(r.rule, dialectOf(t))}`));
    for (const r of live.roots) {
      const k = `${r.chain} ${normalizeRule(r.rule, dialectOf(t))}`;
      if (!have.has(k)) {
        have.add(k);
        desired.roots.push(r);
      }
    }
  }
  for (const chains of own.values()) for (const [c, rules] of chains) desired.chains.set(c, rules);
  return desired;
}

export interface CommitOptions {
  /** Only these staged changes (a retry of one's own change after a batch failed). */
  only?: ReadonlySet<string>;
  /** Reconcile every table from the live rules (a removal of chains the index does not know). */
  full?: boolean;
}

export interface CommitResult {
  /** Staged changes committed. */
  batch: number;
  /** Tokens committed. */
  tokens: string[];
  /** Whether the live rules were read (a full reconcile of at least one table). */
  reconciled: boolean;
}

/** The tables from which the installed driver reads what adopted guests were installed with (read once, kept for the whole reconcile). */
async function readAdoptionTables(backend: Backend): Promise<Partial<Record<TableName, LiveTable>>> {
  const tables = driverFor(backend.engine).adoptionTables;
  const read = await Promise.all(tables.map(async (t) => parseLive(await backend.save(t), t)));
  return Object.fromEntries(tables.map((t, i) => [t, read[i]!]));
}

/**
 * What differs between the live rules and what xennet installed (the index and the recorded
 * chains), per table, without changing anything: missing or damaged chains, root jumps missing,
 * duplicated or shadowed. Chains the index does not know are not drift (they are adopted).
 */
export async function driftPlans(backend: Backend, env: NodeJS.ProcessEnv, log: Logger): Promise<Record<TableName, TablePlan>> {
  const { index } = loadIndex(env, log);
  const out = Object.fromEntries(tableNames.map((t) => [t, emptyTablePlan()])) as Record<TableName, TablePlan>;
  const mine = engineTables(backend.engine);
  // One table at a time (ebtables nat first: isolation is read from it), so that only one live
  // table and its reconciled twin are in memory at once: with 1000 guests each is tens of MB, and
  // the daemon runs this every 30 s.
  const driver = driverFor(backend.engine);
  // A removal written ahead and never confirmed is a change still to make, not chains to adopt.
  const removals = new Set((index.removing ?? []).filter((n) => !Object.hasOwn(index.vifs, n) && bridgeOfPort(n) === undefined));
  const across = await readAdoptionTables(backend);
  for (const t of mine) {
    const live = across[t] ?? parseLive(await backend.save(t), t);
    out[t] = diffTable(live, reconciledTable(live, t, index.vifs, (n) => readVifChains(n, env, log), removals, {}, (v) => driver.adoptedAcrossTables(across, v), backend.engine), t);
  }
  return out;
}

/** One line per difference, for the log: `iptables FORWARD: jump ... added`. */
export function describePlans(plans: Record<TableName, TablePlan>): string[] {
  const out: string[] = [];
  for (const t of tableNames) {
    const p = plans[t];
    for (const c of p.write.keys()) out.push(`${codecOf(t).label} chain ${c} restored`);
    for (const c of p.remove) out.push(`${codecOf(t).label} chain ${c} removed`);
    for (const r of p.addRoots) out.push(`${codecOf(t).label} ${r.chain}: jump to ${/-[jg] (\S+)$/.exec(r.rule)?.[1] ?? '?'} ${p.removeRoots.some((x) => x.rule === r.rule) ? 'moved back to the top' : 'put back'}`);
    for (const r of p.removeRoots) if (!p.addRoots.some((x) => x.rule === r.rule)) out.push(`${codecOf(t).label} ${r.chain}: extra jump removed`);
  }
  return out;
}

export async function commitStaged(backend: Backend, env: NodeJS.ProcessEnv, log: Logger, options: CommitOptions = {}): Promise<CommitResult> {
  sweepFirewallTemp(env);
  const { index, recovered } = loadIndex(env, log, { repair: true });
  // Staged chains are compiled for one engine: an apply that moved the firewall to the other
  // backend since they were prepared makes them wrong there.
  if (index.engine && !recovered && engineName(index.engine) !== engineName(backend.engine)) {
    throw new XennetError('refused', `the firewall is on ${engineName(index.engine)}, not ${engineName(backend.engine)}: \`xennet apply\` moved it while this change was being prepared`, { hint: 'run the hook again (start the guest again)' });
  }
  let staged: Staged[] = readStaged(env, log);
  await stallPoint('firewall:staged-read', env);
  // A removal whose stager died before committing it still stands while the install it removes
  // is the one recorded and its port is on no bridge; otherwise a newer install has the name.
  // A live stager's removal of an install that is no longer the one recorded (a newer one of the
  // name was committed since it was staged: the daemon stages an offline's removal without the
  // lock) is stale the same way: the newer install wins.
  // (The same guest's install again, its policy followed since, is still the one to remove.)
  staged = staged.filter((s) => {
    if (s.change.op !== 'remove') return true;
    const { name, replaces, stager, owner } = s.change;
    const e = Object.hasOwn(index.vifs, name) ? index.vifs[name] : undefined;
    const sameGuest = e?.owner !== undefined && owner !== undefined && e.owner.domid === owner.domid && e.owner.devid === owner.devid;
    const current = e !== undefined && (e.token === replaces || sameGuest);
    // A removal never strips a port on a bridge: a hook stages one only for a detached port, so
    // the name is another guest's by now (reused), or the file was not written by a hook.
    const attached = bridgeOfPort(name) !== undefined;
    if (!s.orphaned) {
      if (!attached && (replaces === undefined || e === undefined || current)) return true;
      for (const f of s.files) removeFile(f);
      log.warning(`discarded staged firewall change ${s.change.token}.json: remove of ${name} by pid ${stager.pid}: ${attached ? 'it is on a bridge' : 'another install of it is recorded since it was staged'}`);
      return false;
    }
    if (current && !attached) {
      log.warning(`${name}: finishing the removal of its rules staged by pid ${stager.pid}, which is gone`);
      return true;
    }
    for (const f of s.files) removeFile(f);
    const why = [...(e === undefined ? ['it is no longer recorded'] : current ? [] : ['another install of it is recorded since']), ...(attached ? ['it is on a bridge'] : [])];
    log.warning(`discarded staged firewall change ${s.change.token}.json: remove of ${name} by pid ${stager.pid}, which is gone (${why.join(', and ')})`);
    return false;
  });
  // An orphaned removal is older than any live stager's change (its stager is gone): taken
  // first, whatever its time says, so that a live install of the name always wins.
  staged = [...staged.filter((s) => s.orphaned), ...staged.filter((s) => !s.orphaned)];
  if (options.only) staged = staged.filter((s) => options.only!.has(s.change.token));
  // A change compiled for the other backend (prepared before an apply moved the firewall) is never
  // installed here: it is left to its stager, whose own commit is refused with a message.
  const mine = engineTables(backend.engine);
  const other = staged.filter((s) => s.change.op === 'install' && s.chains && tableNames.some((t) => !mine.includes(t) && s.chains![t].chains.size > 0));
  if (other.length > 0) {
    log.warning(`left out ${other.map((s) => s.change.name).join(', ')}: staged for the other firewall backend (an apply moved it since)`);
    staged = staged.filter((s) => !other.includes(s));
  }
  const before = index.vifs;
  const after: Members = { ...before };
  const removing = new Set<string>();
  const stagedNames = new Set(staged.map((s) => s.change.name));
  for (const [name, e] of Object.entries(before)) {
    if (e.state === 'installing' && !stagedNames.has(name as IfName) && (!e.stager || !identityAlive(e.stager))) {
      delete after[name];
      // A port on a bridge is a running guest (a repeated online, a rename followed): whatever
      // its rules are now, old or new, they stay, adopted from the live rules; a later look (its
      // next hook, the daemon's name watch, `apply`) puts in the ones it should have.
      if (bridgeOfPort(name) !== undefined) {
        log.warning(`${name}: a change of its rules (pid ${e.stager?.pid ?? '?'}) was never confirmed and its process is gone; it is attached, so its live rules stay as they are`);
        continue;
      }
      log.warning(`removing the rules of ${name}: their install (pid ${e.stager?.pid ?? '?'}) was never confirmed and its process is gone`);
      removing.add(name);
    }
  }
  // Removals written ahead by a commit that never confirmed them: their staged changes may have
  // died with it, their chains not. Finished here, unless the name is on a bridge again (a guest
  // running under it: its rules stay, adopted, as for an install never confirmed).
  const finishing = new Set<string>();
  for (const name of index.removing ?? []) {
    if (Object.hasOwn(after, name) || removing.has(name)) continue;
    if (bridgeOfPort(name) !== undefined) {
      log.warning(`${name}: its removal (written ahead, never confirmed) is not finished: it is attached again, so its live rules stay as they are`);
      continue;
    }
    log.warning(`${name}: finishing the removal of its rules (written ahead, never confirmed: the commit was interrupted)`);
    removing.add(name);
    finishing.add(name);
  }
  const newChains = new Map<string, RuleSet>();
  /** Names a staged change of this batch removes (a later install of the name may supersede it). */
  const removalAsked = new Set<string>();
  for (const { change, chains } of staged) {
    if (change.op === 'remove') removalAsked.add(change.name);
    if (change.op === 'install' && change.member && chains) {
      const e: IndexEntry = { bridge: change.member.bridge, inbound: change.member.inbound, isolated: change.member.isolated, token: change.token, state: 'installing', stager: change.stager };
      if (change.member.learning) e.learning = true;
      if (change.member.declared) e.declared = change.member.declared;
      if (change.member.claims) e.claims = change.member.claims;
      if (change.member.filter) e.filter = change.member.filter;
      if (change.names !== undefined) e.names = change.names;
      if (change.owner) e.owner = change.owner;
      if (change.fingerprint) e.fingerprint = change.fingerprint;
      ownProperty(after, change.name, e);
      newChains.set(change.name, chains);
      removing.delete(change.name);
    } else {
      delete after[change.name];
      newChains.delete(change.name);
      removing.add(change.name);
    }
  }
  if (staged.length === 0 && removing.size === 0 && !index.dirty && !recovered && !options.full) return { batch: 0, tokens: [], reconciled: false };

  // What is installed now, read before the records are overwritten.
  const oldChains = emptyRuleSet();
  let full = index.dirty || recovered || options.full === true;
  if (!full) {
    for (const name of new Set([...newChains.keys(), ...removing])) {
      if (!before[name]) continue;
      const old = readVifChains(name, env, log);
      if (!old) {
        full = true; // what is installed is unknown: only the live rules can say
        break;
      }
      mergeInto(oldChains, old);
    }
  }

  // A repair of what the index records, and nothing else: the index says already what the rules
  // must be. With the state directory full or read-only, the rules are still put back (without
  // the write-ahead mark, which only a change needs: a repair killed half way is another drift).
  const repairOnly = staged.length === 0 && removing.size === 0 && !index.dirty && !recovered;
  const unwritable = (what: string, e: unknown): void => {
    if (!repairOnly) throw e;
    log.warning(`the firewall's state cannot be written (${what}: ${reasonOf(e)}); putting the rules back as recorded all the same`);
  };
  // Write ahead: a commit killed from here on is seen (dirty) and finished by the next one, the
  // removals included (`removing`: their chains are not adopted back).
  const { removing: _wasRemoving, ...base } = index;
  const ahead = (): FirewallIndex => ({ ...base, backend: backend.variant, engine: backend.engine, dirty: true, vifs: after, ...(removing.size > 0 ? { removing: [...removing] } : {}) });
  try {
    saveIndex(ahead(), env);
  } catch (e) {
    unwritable('the write-ahead mark', e);
  }
  // A stager that gave up between our reading its change and the write-ahead has withdrawn it
  // (it saw no record of it, so it will not remove anything): leave it out. One that gives up
  // from now on sees the record and removes the rules itself, under the lock, after us.
  const withdrawn = staged.filter((s) => !existsSync(s.files[0]!));
  if (withdrawn.length > 0) {
    for (const { change } of withdrawn) {
      if (change.op !== 'install' || after[change.name]?.token !== change.token) continue;
      newChains.delete(change.name);
      // A name whose removal this commit makes (asked in this batch, or finished), and whose new
      // install was withdrawn: its old chains still go (not kept, not adopted).
      if (finishing.has(change.name) || removalAsked.has(change.name)) {
        delete after[change.name];
        removing.add(change.name);
      } else if (Object.hasOwn(before, change.name)) ownProperty(after, change.name, before[change.name]);
      else delete after[change.name];
    }
    staged = staged.filter((s) => !withdrawn.includes(s));
    saveIndex(ahead(), env);
  }
  await writeVifChains(newChains, env);
  killPoint('firewall:written-ahead', env);

  const newSet = emptyRuleSet();
  for (const rs of newChains.values()) mergeInto(newSet, rs);
  // An interface name another domain has now: its drops start anew (not the earlier domain's).
  const newOwners = new Set(Object.keys(after).filter((n) => before[n]?.owner !== undefined && after[n]?.owner !== undefined && before[n]!.owner!.domid !== after[n]!.owner!.domid));
  const plans = full ? undefined : incrementalPlans(before, after, oldChains, newSet, backend.engine);
  const adopted: Members = {};
  let reconciled = false;
  const chainsOf = (name: string): RuleSet | undefined => newChains.get(name) ?? readVifChains(name, env, log);
  const one = async (t: TableName): Promise<void> => {
    if (plans) {
      if (isEmptyTablePlan(plans[t])) return;
      try {
        await carryFromKernel(backend, t, plans[t], oldChains[t], newOwners);
        await backend.restore(t, render(plans[t], t));
        killPoint(`firewall:restored:${t}`, env);
        return;
      } catch (e) {
        log.warning(`${t}: the live rules differ from xennet's record (${reasonOf(e)}); reconciling the whole table`);
      }
    }
    reconciled = true;
    const live = parseLive(await backend.save(t, { counters: true }), t);
    const across = await adoption();
    const plan = diffTable(live, reconciledTable(live, t, after, chainsOf, removing, adopted, (v) => driverFor(backend.engine).adoptedAcrossTables(across, v), backend.engine), t);
    carryDropCounters([{ table: t, plan, live }], { exclude: newOwners });
    if (!isEmptyTablePlan(plan)) await backend.restore(t, render(plan, t));
  };
  // What an adopted vif was installed with, where its driver reads it across tables: read once.
  let acrossTables: Promise<Partial<Record<TableName, LiveTable>>> | undefined;
  const adoption = (): Promise<Partial<Record<TableName, LiveTable>>> => (acrossTables ??= readAdoptionTables(backend));
  // Only the tables of the installed engine: the other backend's are `xennet apply`'s to clear.
  const results = await Promise.allSettled(engineTables(backend.engine).map(one));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason; // the index stays dirty: the next commit reconciles in full

  killPoint('firewall:before-confirm', env);
  // Confirmed: record it, then let the stagers know (their pending files go last).
  const confirmed: Members = {};
  // Every install recorded has a token (adopted ones this commit's): a removal staged against it
  // names it, and outlives its stager (readStaged).
  const adoptedToken = newToken();
  for (const [name, e] of Object.entries({ ...adopted, ...after })) {
    const { stager: _s, ...rest } = e;
    ownProperty(confirmed, name, { ...rest, state: 'installed', token: rest.token ?? adoptedToken });
  }
  try {
    saveIndex({ ...base, backend: backend.variant, engine: backend.engine, dirty: false, vifs: confirmed }, env);
  } catch (e) {
    unwritable('the index', e);
  }
  for (const name of removing) if (!confirmed[name]) removeVifChains(name, env);
  // A full reconcile may have made the table anew (after `nft flush ruleset`) or found the sets
  // emptied: the learned bindings are state, not rules, so they are put back.
  if (reconciled) {
    const learning = new Map(Object.entries(confirmed).filter(([, e]) => e.learning).map(([n, e]) => [n, e.owner?.domid] as const));
    await restoreBindings(env, log, learning, LEARNED_WAIT_MS).catch((e: unknown) => log.warning(`the learned bindings could not be put back: ${reasonOf(e)}`));
  }
  // A vif name that is another domain's now: what the earlier one learned ends (its offline
  // never ran), before the new guest can send from it.
  const owners = new Map<string, number>();
  for (const [name, e] of Object.entries(confirmed)) if (e.learning && e.owner !== undefined && before[name]?.owner?.domid !== e.owner.domid) owners.set(name, e.owner.domid);
  await forgetEarlierDomains(env, log, owners, LEARNED_WAIT_MS).catch((err: unknown) => log.warning(`an earlier domain's learned bindings could not be removed: ${reasonOf(err)}`));
  // A learning guest's bindings end with its vif (its sets' elements are state, not rules).
  // (A removal finished here may be a learning guest's: what it was is no longer recorded.)
  const forgetting = [...removing].filter((name) => !confirmed[name] && (before[name]?.learning || finishing.has(name)));
  await forgetVifs(env, log, forgetting, LEARNED_WAIT_MS).catch((e: unknown) => log.warning(`${forgetting.join(', ')}: the learned bindings could not be removed: ${reasonOf(e)} (they end with their lease; \`xennet status\` shows them)`));
  for (const s of staged) for (const f of s.files) removeFile(f);
  return { batch: staged.length, tokens: staged.map((s) => s.change.token), reconciled };
}

function removeFile(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch {
    /* gone */
  }
}

export function stageInstall(name: IfName, m: MemberFacts, chains: RuleSet, owner: Owner | undefined, names: string | undefined, env: NodeJS.ProcessEnv): StagedChange {
  const change: StagedChange = { op: 'install', name, member: m, token: newToken(), stager: selfIdentity(), at: Date.now(), fingerprint: fingerprintOf(m, owner, chains, names) };
  if (owner) change.owner = owner;
  if (names !== undefined) change.names = names;
  stage(change, chains, env);
  return change;
}

/** Stages the removal of a vif's rules; `replaces` and `owner`: the token and the owner of its install the index records (a removal then outlives its stager, and yields to another guest's install of the name: see commitStaged). */
export function stageRemove(name: IfName, env: NodeJS.ProcessEnv, replaces?: string, owner?: Owner): StagedChange {
  const change: StagedChange = { op: 'remove', name, token: newToken(), stager: selfIdentity(), at: Date.now() };
  if (replaces !== undefined) change.replaces = replaces;
  if (owner !== undefined) change.owner = owner;
  stage(change, undefined, env);
  return change;
}
