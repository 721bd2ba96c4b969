/**
 * diff(live, desired) -> the changes that make one table's owned chains and root jumps equal to
 * the desired ones, and render(plan) -> one transaction in the table's backend's language (its
 * driver's TableCodec).
 */
import { bypassBefore } from './integrity.js';
import { codecOf } from './drivers.js';
import { dialectOf, tableNames, type RootJump, type RuleSet, type TableName, type TablePlan, type TableRules } from './model.js';
import type { LiveTable } from './live.js';
import { emptyLive } from './live.js';
import { normalizeRule, sameRules } from './normalize.js';
import { vifOfChain } from './names.js';

export type RulePlan = Record<TableName, TablePlan>;

export function emptyTablePlan(): TablePlan {
  return { write: new Map(), remove: [], addRoots: [], removeRoots: [] };
}

export function isEmptyTablePlan(p: TablePlan): boolean {
  return p.write.size === 0 && p.remove.length === 0 && p.addRoots.length === 0 && p.removeRoots.length === 0 && (p.dropTables ?? []).length === 0;
}

export function isEmptyPlan(p: RulePlan): boolean {
  return tableNames.every((t) => isEmptyTablePlan(p[t]));
}

const rootKey = (r: RootJump, eb: ReturnType<typeof dialectOf>): string => `${r.chain} ${normalizeRule(r.rule, eb)}`;

/** Live owned state in the shape of desired state (for diffs between two desired states). */
export function asLive(t: TableRules): LiveTable {
  return { ...emptyLive(), chains: t.chains, roots: t.roots };
}

/** The guests a table's desired chains belong to (for what an ebtables root jump covers). */
function guestsOf(desired: TableRules): string[] {
  const out = new Set<string>();
  for (const c of desired.chains.keys()) {
    const v = vifOfChain(c);
    if (v !== undefined) out.add(v);
  }
  return [...out];
}

export function diffTable(live: LiveTable, desired: TableRules, table: TableName): TablePlan {
  const eb = dialectOf(table);
  const plan = emptyTablePlan();
  for (const [name, rules] of desired.chains) {
    const have = live.chains.get(name);
    if (!have || !sameRules(have, rules, eb)) plan.write.set(name, rules);
  }
  for (const name of live.chains.keys()) if (!desired.chains.has(name)) plan.remove.push(name);
  const wanted = new Set(desired.roots.map((r) => rootKey(r, eb)));
  const seen = new Set<string>();
  for (const r of live.roots) {
    const k = rootKey(r, eb);
    if (!wanted.has(k) || seen.has(k)) plan.removeRoots.push(r);
    seen.add(k);
  }
  const guests = guestsOf(desired);
  for (const r of desired.roots) {
    const k = rootKey(r, eb);
    if (!seen.has(k)) {
      plan.addRoots.push(r);
      continue;
    }
    // Present, but is something above it letting the traffic past? Then it moves to the top.
    const rules = live.builtins.get(r.chain);
    if (!rules) continue;
    const pos = rules.findIndex((x) => rootKey({ chain: r.chain, rule: x }, eb) === k);
    if (pos > 0 && bypassBefore(live, table, r, pos, guests)) {
      if (!plan.removeRoots.some((x) => rootKey(x, eb) === k)) plan.removeRoots.push({ chain: r.chain, rule: rules[pos]! });
      plan.addRoots.push(r);
    }
  }
  plan.remove.sort();
  codecOf(table).completePlan?.(plan, live, desired);
  return plan;
}

export function diff(live: Record<TableName, LiveTable>, desired: RuleSet): RulePlan {
  return Object.fromEntries(tableNames.map((t) => [t, diffTable(live[t], desired[t], t)])) as RulePlan;
}

/** The transaction of one table's plan, in its backend's language (empty string when there is nothing to do). */
export function render(plan: TablePlan, table: TableName): string {
  return isEmptyTablePlan(plan) ? '' : codecOf(table).render(plan);
}

export interface GuestChange {
  vif: string;
  table: TableName;
  chain: string;
  added: string[];
  removed: string[];
}

/** Per-vif rule changes (for `plan` output): rules added and removed in each of its chains. */
export function changesByVif(live: Record<TableName, LiveTable>, plan: RulePlan): GuestChange[] {
  const out: GuestChange[] = [];
  for (const table of tableNames) {
    const eb = dialectOf(table);
    const p = plan[table];
    const l = live[table];
    for (const [chain, rules] of p.write) {
      const have = l.chains.get(chain) ?? [];
      const haveN = new Set(have.map((r) => normalizeRule(r, eb)));
      const wantN = new Set(rules.map((r) => normalizeRule(r, eb)));
      out.push({ vif: vifOfChain(chain) ?? '(shared)', table, chain, added: rules.filter((r) => !haveN.has(normalizeRule(r, eb))), removed: have.filter((r) => !wantN.has(normalizeRule(r, eb))) });
    }
    for (const chain of p.remove) out.push({ vif: vifOfChain(chain) ?? '(shared)', table, chain, added: [], removed: l.chains.get(chain) ?? [] });
    for (const r of p.addRoots) out.push({ vif: '(shared)', table, chain: r.chain, added: [r.rule], removed: [] });
    for (const r of p.removeRoots) out.push({ vif: '(shared)', table, chain: r.chain, added: [], removed: [r.rule] });
  }
  return out;
}
