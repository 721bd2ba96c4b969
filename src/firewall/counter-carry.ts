/**
 * A guest's drop counters only grow while the guest exists (pure). Writing a chain anew starts
 * its rules' counters from zero, and xennet writes a guest's chains again on every repeated
 * online, on an `apply` that changes them, on a drift repair and on a backend switch. So before a
 * change is written, what the drop rules of the chains it rewrites or removes have counted is
 * carried, reason by reason (each table's codec says why a rule drops), to the first rule of the
 * same reason and guest that the change writes, as that rule's starting counter: restore with
 * counters on xtables, a counter with its values on nftables.
 *
 * What is counted between the read and the write is lost (never counted twice); a reason the
 * guest's new rules no longer drop for ends with them; counters someone else zeroed or flushed
 * stay lost.
 */
import { addDrops, type DropsByReason } from './drop-reasons.js';
import { codecOf } from './drivers.js';
import type { Counter } from './live.js';
import type { TableName, TablePlan } from './model.js';
import { vifOfChain } from './names.js';

/** What the kernel holds of the chains a plan touches: their rules (as written or read) and each rule's counter. */
export interface CountedChains {
  chains: ReadonlyMap<string, readonly string[]>;
  counters: ReadonlyMap<string, readonly Counter[]>;
}

/**
 * Sets `presets` on the plans (one per table, with what the kernel holds in that table now): for
 * each guest whose chains a plan writes, the drops its rewritten and removed chains counted,
 * carried to its written rules. A guest none of whose chains is written carries nothing (it is
 * going, or its rules stay as they are). `inUse`: the tables of the backend in use (the others are
 * being left); `exclude`: interfaces whose counts start anew (another domain has the name now).
 */
export function carryDropCounters(tables: readonly { table: TableName; plan: TablePlan; live: CountedChains | undefined }[], options: { inUse?: ReadonlySet<TableName>; exclude?: ReadonlySet<string> } = {}): void {
  // A backend switch: the tables being left count for a guest only while the backend moving in
  // holds nothing of it (after a switch cut short, the new one holds its counts already).
  const { inUse, exclude } = options;
  const arrived = new Set<string>();
  if (inUse) {
    for (const { table, live } of tables) {
      if (!inUse.has(table) || !live) continue;
      for (const c of live.chains.keys()) {
        const v = vifOfChain(c);
        if (v !== undefined) arrived.add(v);
      }
    }
  }
  const carried = new Map<string, DropsByReason>();
  for (const { table, plan, live } of tables) {
    if (!live) continue;
    const codec = codecOf(table);
    const leaving = inUse !== undefined && !inUse.has(table);
    for (const chain of [...plan.write.keys(), ...plan.remove]) {
      const vif = vifOfChain(chain);
      if (vif !== undefined && (exclude?.has(vif) || (leaving && arrived.has(vif)))) continue;
      const rules = live.chains.get(chain);
      const counters = live.counters.get(chain);
      if (vif === undefined || !rules || !counters) continue;
      rules.forEach((rule, i) => {
        const c = counters[i];
        const reason = c && (c.packets > 0 || c.bytes > 0) ? codec.dropReason(chain, rule) : undefined;
        if (reason === undefined) return;
        let drops = carried.get(vif);
        if (!drops) carried.set(vif, (drops = {}));
        addDrops(drops, reason, c!);
      });
    }
  }
  if (carried.size === 0) return;
  for (const { table, plan } of tables) {
    const codec = codecOf(table);
    for (const [chain, rules] of plan.write) {
      const drops = carried.get(vifOfChain(chain) ?? '');
      if (!drops) continue;
      rules.forEach((rule, i) => {
        const reason = codec.dropReason(chain, rule);
        const c = reason === undefined ? undefined : drops[reason];
        if (reason === undefined || !c) return;
        delete drops[reason];
        plan.presets ??= new Map();
        let mine = plan.presets.get(chain);
        if (!mine) plan.presets.set(chain, (mine = new Map()));
        mine.set(i, c);
      });
    }
  }
}

