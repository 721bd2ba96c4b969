/**
 * The vif hook's firewall change: only the vif's own chains and the shared chains whose content
 * changes when one name joins or leaves the dispatch tree (the ones on its path), computed from
 * the index without reading the live ruleset. If the kernel has drifted from the index (a restore
 * is rejected), the table is reconciled in full from the live rules and the index.
 */
import type { Logger } from '../sys/log.js';
import { reasonOf } from '../sys/errors.js';
import type { Backend } from './backend/xtables.js';
import { compileShared, mergeInto, type TreeMember } from './compile.js';
import { asLive, diffTable, isEmptyTablePlan, render, type TablePlan } from './diff.js';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readJson, stateDir, writeJsonAtomic } from '../sys/statefile.js';
import { readIndex, readVifChains, removeVifChains, writeIndex, writeVifChains, type FirewallIndex } from './index-store.js';
import { emptyRuleSet, tableNames, type RuleSet, type TableName } from './model.js';
import { parseSave } from './save-parse.js';

type Members = FirewallIndex['vifs'];

function sharedOf(vifs: Members): RuleSet {
  return compileShared(Object.keys(vifs).sort().map((name) => ({ name, ...vifs[name]! })));
}

/** Pure: the per-table plans that move the installed state from `before` to `after`. */
export function incrementalPlans(beforeVifs: Members, afterVifs: Members, oldChains: RuleSet | undefined, newChains: RuleSet | undefined): Record<TableName, TablePlan> {
  const before = mergeInto(sharedOf(beforeVifs), oldChains ?? emptyRuleSet());
  const after = mergeInto(sharedOf(afterVifs), newChains ?? emptyRuleSet());
  const out = {} as Record<TableName, TablePlan>;
  for (const t of tableNames) {
    const p = diffTable(asLive(before[t]), after[t], t === 'eb');
    // The vif's own chains are always rewritten: a repeated online repairs them.
    for (const [c, rules] of newChains?.[t].chains ?? []) p.write.set(c, rules);
    out[t] = p;
  }
  return out;
}

/** Full desired state of one table from the index (the drift fallback). */
function desiredFromIndex(index: FirewallIndex, t: TableName, env: NodeJS.ProcessEnv): RuleSet[TableName] {
  const rs = sharedOf(index.vifs);
  for (const name of Object.keys(index.vifs)) {
    const chains = readVifChains(name, env);
    if (chains) for (const [c, rules] of chains[t].chains) rs[t].chains.set(c, rules);
  }
  return rs[t];
}

/** One transaction per table; the three tables are independent, so they run concurrently. */
async function applyPlans(backend: Backend, plans: Record<TableName, TablePlan>, index: FirewallIndex, env: NodeJS.ProcessEnv, log: Logger): Promise<void> {
  const one = async (t: TableName): Promise<void> => {
    const p = plans[t];
    if (isEmptyTablePlan(p)) return;
    try {
      await backend.restore(t, render(p, t === 'eb'));
    } catch (e) {
      log.warning(`${t}: the live rules differ from xennet's record (${reasonOf(e)}); reconciling the whole table`);
      const live = parseSave(await backend.save(t));
      const full = diffTable(live, desiredFromIndex(index, t, env), t === 'eb');
      if (!isEmptyTablePlan(full)) await backend.restore(t, render(full, t === 'eb'));
    }
  };
  const results = await Promise.allSettled((['eb', 'ipv6', 'ipv4'] as TableName[]).map(one));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * Group commit. A hook first stages its change (stageInstall/stageRemove, no lock), then takes the
 * hotplug lock and calls commitPending: whoever holds the lock applies every staged change in one
 * transaction per table. At host boot, when many hooks queue on the lock, one restore carries
 * many vifs, and a hook whose change an earlier holder already applied returns at once.
 */
interface Staged {
  op: 'install' | 'remove';
  name: string;
  member?: TreeMember;
  /** Unique per hook run: tells a hook whether its own change was committed. */
  token: string;
}

const pendingDir = (env: NodeJS.ProcessEnv): string => join(stateDir(env), 'firewall', 'pending');

function stage(entry: Staged, chains: RuleSet | undefined, env: NodeJS.ProcessEnv): string {
  const dir = pendingDir(env);
  mkdirSync(dir, { recursive: true });
  if (chains) writeJsonAtomic(join(dir, `${entry.token}.chains.json`), Object.fromEntries(tableNames.map((t) => [t, [...chains[t].chains.entries()]])), { durable: false });
  writeJsonAtomic(join(dir, `${entry.token}.json`), entry, { durable: false });
  return entry.token;
}

export function stageInstall(member: TreeMember, chains: RuleSet, env: NodeJS.ProcessEnv): string {
  return stage({ op: 'install', name: member.name, member, token: `${process.pid}-${randomUUID()}` }, chains, env);
}

export function stageRemove(name: string, env: NodeJS.ProcessEnv): string {
  return stage({ op: 'remove', name, token: `${process.pid}-${randomUUID()}` }, undefined, env);
}

function readStaged(env: NodeJS.ProcessEnv): { entry: Staged; chains: RuleSet | undefined; files: string[] }[] {
  const dir = pendingDir(env);
  let names: string[];
  try {
    names = readdirSync(dir).filter((f) => f.endsWith('.json') && !f.endsWith('.chains.json'));
  } catch {
    return [];
  }
  const out: { entry: Staged; chains: RuleSet | undefined; files: string[] }[] = [];
  for (const f of names) {
    const entry = readJson(join(dir, f)) as Staged | undefined;
    if (!entry || (entry.op !== 'install' && entry.op !== 'remove') || typeof entry.name !== 'string') continue;
    const raw = readJson(join(dir, `${entry.token}.chains.json`)) as Record<TableName, [string, string[]][]> | undefined;
    let chains: RuleSet | undefined;
    if (raw) {
      chains = emptyRuleSet();
      for (const t of tableNames) for (const [c, rules] of raw[t] ?? []) chains[t].chains.set(c, rules);
    }
    out.push({ entry, chains, files: [join(dir, f), join(dir, `${entry.token}.chains.json`)] });
  }
  // Oldest first: a later change to the same vif wins.
  return out.sort((a, b) => statSync(a.files[0]!).mtimeMs - statSync(b.files[0]!).mtimeMs);
}

/**
 * Applies every staged change (the caller holds the hotplug lock). Returns whether the change
 * with `token` was applied (by this call or an earlier holder); throws when applying failed.
 */
export async function commitPending(backend: Backend, token: string, env: NodeJS.ProcessEnv, log: Logger): Promise<{ batch: number }> {
  const staged = readStaged(env);
  if (!staged.some((s) => s.entry.token === token)) return { batch: 0 }; // committed by an earlier holder
  const index = readIndex(env);
  const vifs = { ...index.vifs };
  const oldChains = emptyRuleSet();
  const newChains = emptyRuleSet();
  const installed = new Map<string, RuleSet>();
  for (const { entry, chains } of staged) {
    if (index.vifs[entry.name] !== undefined && !installed.has(entry.name)) {
      const old = readVifChains(entry.name, env);
      if (old) mergeInto(oldChains, old);
    }
    if (entry.op === 'install' && entry.member && chains) {
      vifs[entry.name] = { bridge: entry.member.bridge, inbound: entry.member.inbound };
      installed.set(entry.name, chains);
    } else {
      delete vifs[entry.name];
      installed.delete(entry.name);
    }
  }
  for (const chains of installed.values()) mergeInto(newChains, chains);
  const after: FirewallIndex = { ...index, backend: backend.variant, vifs };
  const plans = incrementalPlans(index.vifs, vifs, oldChains, newChains);
  for (const [name, chains] of installed) writeVifChains(name, chains, env); // the drift fallback reads them
  await applyPlans(backend, plans, after, env, log);
  for (const { entry } of staged) if (vifs[entry.name] === undefined) removeVifChains(entry.name, env);
  writeIndex(after, env);
  for (const { files } of staged) for (const f of files) rmSync(f, { force: true });
  return { batch: staged.length };
}

/** Installs (or refreshes) one vif's chains at once. The caller holds the hotplug lock. */
export async function installVif(backend: Backend, member: TreeMember, chains: RuleSet, env: NodeJS.ProcessEnv, log: Logger): Promise<void> {
  await commitPending(backend, stageInstall(member, chains, env), env, log);
}

/** Removes one vif's chains; a vif xennet has no record of is not an error. */
export async function removeVif(backend: Backend, name: string, env: NodeJS.ProcessEnv, log: Logger): Promise<boolean> {
  if (readIndex(env).vifs[name] === undefined && !readStaged(env).some((s) => s.entry.name === name)) return false;
  await commitPending(backend, stageRemove(name, env), env, log);
  return true;
}
