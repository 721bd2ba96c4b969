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

/** Installs (or refreshes) one vif's chains. The caller holds the hotplug lock. */
export async function installVif(backend: Backend, member: TreeMember, chains: RuleSet, env: NodeJS.ProcessEnv, log: Logger): Promise<void> {
  const { name, bridge, inbound } = member;
  const index = readIndex(env);
  const after: FirewallIndex = { ...index, backend: backend.variant, vifs: { ...index.vifs, [name]: { bridge, inbound } } };
  const old = index.vifs[name] !== undefined ? readVifChains(name, env) : undefined;
  const plans = incrementalPlans(index.vifs, after.vifs, old, chains);
  writeVifChains(name, chains, env); // before the restore: the drift fallback reads it
  await applyPlans(backend, plans, after, env, log);
  writeIndex(after, env);
}

/** Removes one vif's chains; a vif xennet has no record of is not an error. */
export async function removeVif(backend: Backend, name: string, env: NodeJS.ProcessEnv, log: Logger): Promise<boolean> {
  const index = readIndex(env);
  if (index.vifs[name] === undefined) return false;
  const vifs = { ...index.vifs };
  delete vifs[name];
  const after: FirewallIndex = { ...index, vifs };
  const plans = incrementalPlans(index.vifs, vifs, readVifChains(name, env), undefined);
  await applyPlans(backend, plans, after, env, log);
  removeVifChains(name, env);
  writeIndex(after, env);
  return true;
}
