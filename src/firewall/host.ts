/**
 * `xennet plan` and `xennet apply`: read the live rules, compile the rule file for the live vifs,
 * diff, and (apply) send one restore transaction per table, then re-plan: the second plan must be
 * empty.
 */
import type { PolicyFile } from '../config/schema.js';
import { reasonOf, XennetError } from '../sys/errors.js';
import { killPoint } from '../sys/test-seams.js';
import { restoreBindings, withLearningAvailability } from './learning/state.js';
import { bridgeNetfilterSysctls, readSysctl, writeSysctl } from '../sys/sysctl.js';
import { recordOriginal } from '../sys/originals.js';
import type { Backend } from './backend.js';
import { compile, compileVif, memberFacts } from './compile.js';
import { changesByVif, diff, isEmptyPlan, render, type GuestChange, type RulePlan } from './diff.js';
import { carryDropCounters } from './counter-carry.js';
import { silentLogger, type Logger } from '../sys/log.js';
import { fingerprintOf, loadIndex, newToken, ownProperty, recordedVifs, removeVifChains, saveIndex, sweepFirewallTemp, writeVifChains, type IndexEntry } from './store.js';
import { tableNames, XTABLES, type Engine, type ResolvedVif, type RuleSet, type TableName, type VifFacts } from './model.js';
import { allDrivers, codecOf, driverFor, engineTables, parseLive } from './drivers.js';
import { resolveVif } from './resolve.js';
import { type LiveTable } from './live.js';
import type { BridgeSysctl, FirewallDriver } from './driver.js';

/** The end of the warning for a rule-file guest with no vif on the host. */
export const NO_VIF_HERE = 'has no vif on this host';

export interface DesiredState {
  resolved: ResolvedVif[];
  desired: RuleSet;
  warnings: string[];
}

export function desiredFor(policy: PolicyFile, facts: readonly VifFacts[], engine: Engine = XTABLES): DesiredState {
  const resolved = facts.map((f) => resolveVif(policy, f));
  const warnings: string[] = [];
  for (const r of resolved) for (const w of [...r.warnings, ...driverFor(engine).warnings(r)]) warnings.push(`${r.name}${r.domain ? ` (${r.domain})` : ''}: ${w}`);
  const seen = new Set<string>(resolved.map((r) => r.guest).filter((g) => g !== undefined));
  for (const g of Object.keys(policy.guests ?? {})) if (!seen.has(g)) warnings.push(`guest ${g} is in the rule file but ${NO_VIF_HERE}`);
  return { resolved, desired: compile(resolved, engine), warnings };
}

/**
 * Every table xennet may have rules in. With `desired` (the rules the caller would write), a table
 * whose driver can is read natively when everything in it is desired, else as text.
 */
export async function readLive(backend: Backend, counters = false, desired?: RuleSet): Promise<Record<TableName, LiveTable>> {
  const parsed = await Promise.all(
    tableNames.map(async (t) => {
      // (A table that cannot be read natively, a kernel's nfnetlink included, is read as text.)
      const known = desired && backend.readKnown ? await backend.readKnown(t, desired[t]).catch(() => undefined) : undefined;
      return known ?? parseLive(await backend.save(t, { counters }), t);
    }),
  );
  return Object.fromEntries(tableNames.map((t, i) => [t, parsed[i]!])) as Record<TableName, LiveTable>;
}

/**
 * br_netfilter settings the guest firewall needs: bridged IPv4/IPv6 through the inet hooks
 * (iptables/ip6tables, and conntrack for the nftables backend's `inbound: drop`), and whether IP
 * inside VLAN and PPPoE headers is passed there too: each driver says (FirewallDriver.bridgeNetfilter).
 */
export const bridgeSysctls = bridgeNetfilterSysctls;

/** The value each br_netfilter setting must have for this engine. */
export function bridgeSysctlsWanted(engine: Engine): Readonly<Record<BridgeSysctl, '0' | '1'>> {
  return driverFor(engine).bridgeNetfilter.wanted;
}

/** Whether bridged traffic reaches iptables/ip6tables (br_netfilter loaded and enabled). */
export function bridgeNetfilterState(): Record<BridgeSysctl, string | undefined> {
  return Object.fromEntries(bridgeSysctls.map((k) => [k, readSysctl(k)])) as Record<BridgeSysctl, string | undefined>;
}

/** The settings that differ from what the engine wants. */
export function bridgeNetfilterGaps(engine: Engine, state: Record<string, string | undefined> = bridgeNetfilterState()): BridgeSysctl[] {
  const wanted = bridgeSysctlsWanted(engine);
  return bridgeSysctls.filter((k) => state[k] !== wanted[k]);
}

/**
 * Sets the br_netfilter settings the engine needs; a value about to change is recorded first
 * (what it was before xennet, for `xennet uninstall`).
 */
export function enableBridgeNetfilter(engine: Engine, env: NodeJS.ProcessEnv = process.env): void {
  const wanted = bridgeSysctlsWanted(engine);
  for (const k of bridgeSysctls) {
    const before = readSysctl(k);
    if (before === wanted[k]) continue;
    if (before !== undefined) recordOriginal({ kind: 'sysctl', key: k, value: before }, env);
    if (!writeSysctl(k, wanted[k])) throw new XennetError('exec', `${k} does not exist: br_netfilter is not loaded, so bridged traffic bypasses iptables`, { hint: 'modprobe br_netfilter' });
  }
}

export interface HostPlan {
  plan: RulePlan;
  changes: GuestChange[];
  live: Record<TableName, LiveTable>;
  state: DesiredState;
}

export async function planHost(backend: Backend, policy: PolicyFile, facts: readonly VifFacts[]): Promise<HostPlan> {
  const state = desiredFor(policy, withLearningAvailability(facts, backend.engine.kind), backend.engine);
  // Read natively where every rule is one the rule file makes and its expressions are still the
  // ones written (the digest in its userdata), else as nft prints it: apply repairs whatever
  // differs, a rule replaced by hand that kept its comment included.
  // (With counters: an apply carries a guest's drops over the rewrite of its chains.)
  const live = await readLive(backend, true, state.desired);
  const plan = diff(live, state.desired);
  return { plan, changes: changesByVif(live, plan), live, state };
}

export interface ApplyOptions {
  env?: NodeJS.ProcessEnv;
  log?: Logger;
  onProgress?: (done: number, total: number, what: string) => void;
}

/**
 * Applies a plan: one atomic transaction per table; first the engine's tables (concurrently:
 * they are independent), then the other backend's (what is left of xennet there is removed only
 * once the new rules are in force: a switch never leaves the guests unfiltered, only filtered
 * twice for a moment); then verifies by re-planning (skipped when nothing changed). The index
 * is marked dirty before; it records what the rule file installs (still dirty) once the engine's
 * own tables hold it, and is marked clean only after the verification passed: a failed apply never
 * records success, and a crash never leaves a record naming the backend being left.
 */
export async function applyHost(backend: Backend, hp: HostPlan, options: ApplyOptions = {}): Promise<{ tablesChanged: TableName[] }> {
  const env = options.env ?? process.env;
  const log = options.log ?? silentLogger;
  // What an apply or commit killed mid-write left (temporary files of dead processes) goes.
  sweepFirewallTemp(env);
  enableBridgeNetfilter(backend.engine, env);
  const mine = engineTables(backend.engine);
  const { index } = loadIndex(env, log);
  // A guest's drops last over the rewrite of its chains, a backend switch included (the tables
  // being left count what was dropped so far); an interface name another domain has now starts anew.
  const renamedOwners = new Set(hp.state.resolved.filter((r) => r.domid !== undefined && index.vifs[r.name]?.owner !== undefined && index.vifs[r.name]!.owner!.domid !== r.domid).map((r) => r.name as string));
  carryDropCounters(
    tableNames.map((t) => ({ table: t, plan: hp.plan[t], live: hp.live[t] })),
    { inUse: new Set(mine), exclude: renamedOwners },
  );
  const texts = [...mine, ...tableNames.filter((t) => !mine.includes(t))].map((t) => [t, render(hp.plan[t], t)] as const).filter(([, text]) => text !== '');
  if (texts.length > 0) saveIndex({ ...index, dirty: true }, env);
  // What the rule file installs, recorded (still dirty) as soon as the engine's own tables hold it:
  // a crash from then on leaves a record that names the backend the guests' rules are on (not the
  // one being left), which the next commit, the daemon and the learned bindings go by.
  const vifs: Record<string, IndexEntry> = {};
  const compiled = new Map<string, RuleSet>();
  // One token for what this apply installs: a removal staged against it names it (readStaged).
  const token = newToken();
  for (const r of hp.state.resolved) {
    const facts = memberFacts(r);
    const e: IndexEntry = { ...facts, state: 'installed', token };
    if (r.domid !== undefined && r.devid !== undefined) e.owner = { domid: r.domid, devid: r.devid };
    if (r.namesKey !== undefined) e.names = r.namesKey;
    const chains = compileVif(r, backend.engine);
    e.fingerprint = fingerprintOf(facts, e.owner, chains, r.namesKey);
    ownProperty(vifs, r.name, e);
    compiled.set(r.name, chains);
  }
  const record = async (dirty: boolean): Promise<void> => {
    await writeVifChains(compiled, env);
    for (const name of recordedVifs(env)) if (!vifs[name]) removeVifChains(name, env);
    saveIndex({ version: 2, bootId: index.bootId, backend: backend.variant, engine: backend.engine, dirty, vifs }, env);
  };
  const learning = new Map(hp.state.resolved.filter((r) => r.learning).map((r) => [r.name as string, r.domid] as const));
  let done = 0;
  const groups = [texts.filter(([t]) => mine.includes(t)), texts.filter(([t]) => !mine.includes(t))];
  for (const [i, group] of groups.entries()) {
    const results = await Promise.allSettled(
      group.map(async ([t, text]) => {
        await backend.restore(t, text);
        options.onProgress?.(++done, texts.length, t);
      }),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    if (i === 0 && texts.length > 0) {
      await record(true);
      killPoint('firewall:apply-recorded', env);
      // The learned bindings are state, not rules: a table (or a set) made anew, or emptied by
      // hand, has none. Put them back, in the engine's own store, now that it holds the rules.
      await restoreBindings(env, log, learning).catch((e: unknown) => log.warning(`the learned bindings could not be put back: ${reasonOf(e)} (the daemon puts them back when it starts)`));
    }
  }
  // Test-only seam: another writer flushing one of xennet's chains between apply and its check.
  const tamper = /^(ipv4|ipv6|ipv4raw|ipv6raw|eb|ebnat|nftables):(XN-[A-Za-z0-9_.-]+)$/.exec(env['XENNET_TEST_TAMPER_AFTER_APPLY'] ?? '');
  if (tamper) await backend.restore(tamper[1] as TableName, codecOf(tamper[1] as TableName).emptyChain(tamper[2]!));
  const changed = texts.map(([t]) => t);
  if (changed.length > 0) {
    // What this check is for is another writer between the write and now (a rule added or
    // removed, a chain flushed): the rules' tags show that, so a table whose driver can is read
    // natively (at 1000 guests, one dump instead of nft printing 35,000 rules).
    const live = await readLive(backend, false, hp.state.desired);
    const again = diff(live, hp.state.desired);
    if (!isEmptyPlan(again)) {
      const left = changesByVif(live, again).map((c) => `${c.table} ${c.chain}`).join(', ');
      throw new XennetError('internal', `after apply the live rules still differ from the rule file (${left})`, { hint: 'another tool may be changing the same chains; run `xennet plan`, then `xennet apply` again' });
    }
  }
  // Verified: record it clean.
  if (texts.length > 0) saveIndex({ version: 2, bootId: index.bootId, backend: backend.variant, engine: backend.engine, dirty: false, vifs }, env);
  else {
    await record(false);
    await restoreBindings(env, log, learning).catch((e: unknown) => log.warning(`the learned bindings could not be put back: ${reasonOf(e)} (the daemon puts them back when it starts)`));
  }
  // The ipsets of guests that no longer learn (all of them after a move to nftables) go, now that
  // no rule of the backend left reads them.
  for (const d of allDrivers()) await d.sweepLearned?.(learnedKept(d, backend.engine, learning.keys()));
  return { tablesChanged: changed };
}

/** The guests whose learned sets a driver keeps: the learning guests on the backend in use, none on another. */
const learnedKept = (d: FirewallDriver, engine: Engine, learning: Iterable<string>): Set<string> => new Set(d.kind === engine.kind ? learning : []);

/** What apply's sweep would drop of learned sets (a guest that no longer learns, another backend's), as plan warnings. */
export async function strayLearnedWarnings(engine: Engine, resolved: readonly ResolvedVif[]): Promise<string[]> {
  const learning = resolved.filter((r) => r.learning).map((r) => r.name as string);
  const out: string[] = [];
  for (const d of allDrivers()) {
    const names = (await d.strayLearned?.(learnedKept(d, engine, learning))) ?? [];
    if (names.length > 0) out.push(`learned address set${names.length === 1 ? '' : 's'} of no learning guest left in the kernel: ${names.join(', ')}; apply removes ${names.length === 1 ? 'it' : 'them'}`);
  }
  return out;
}
