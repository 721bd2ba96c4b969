/**
 * The xtables tables (iptables and ip6tables filter and raw, ebtables filter and nat): read from
 * `*-save` output, written as one `*-restore --noflush` transaction each (kube-proxy style: a
 * `:CHAIN` line declares, and under --noflush flushes, each chain that is rewritten).
 */
import type { AdoptedFacts, TableCodec } from '../driver.js';
import type { LiveTable } from '../live.js';
import { dialectOf, isEbtables, kernelTable, tableLabel, type TablePlan, type XtablesTable } from '../model.js';
import { vifOfChain } from '../names.js';
import { isolatedByEbChain, xtablesDropReason } from './compile.js';
import { claimsFromGuardLive, guardPorts, isGuardChain } from './guard.js';
import { parseSave } from './save-parse.js';

/** The restore text of one table's plan. */
export function renderRestore(plan: TablePlan, table: XtablesTable): string {
  const lines = [`*${kernelTable(table)}`];
  const declare = (c: string): string => (isEbtables(table) ? `:${c} RETURN` : `:${c} - [0:0]`);
  for (const c of [...plan.write.keys(), ...plan.remove]) lines.push(declare(c));
  for (const r of plan.removeRoots) lines.push(`-D ${r.chain} ${r.rule}`);
  for (const [c, rules] of plan.write) {
    const presets = plan.presets?.get(c);
    rules.forEach((r, i) => {
      // A counter to start from: iptables reads `[packets:bytes]` before the rule (the restore
      // then runs with --counters), ebtables `-c packets bytes` after it.
      const p = presets?.get(i);
      if (!p) lines.push(`-A ${c} ${r}`);
      else lines.push(isEbtables(table) ? `-A ${c} ${r} -c ${p.packets} ${p.bytes}` : `[${p.packets}:${p.bytes}] -A ${c} ${r}`);
    });
  }
  for (const r of plan.addRoots) lines.push(`-I ${r.chain} 1 ${r.rule}`);
  for (const c of plan.remove) lines.push(`-X ${c}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

function codec(table: XtablesTable): TableCodec {
  return {
    dialect: dialectOf(table),
    label: tableLabel[table],
    parse: (text) => parseSave(text, table),
    render: (plan) => renderRestore(plan, table),
    emptyChain: (chain) => `*${kernelTable(table)}\n:${chain} ${isEbtables(table) ? 'RETURN' : '- [0:0]'}\nCOMMIT\n`,
    chainKind: (chain) => ({ guard: isGuardChain(chain), elements: false }),
    dropReason: (chain, rule) => xtablesDropReason(table, chain, rule),
    liveGuests(live) {
      const out = new Set<string>();
      for (const c of live.chains.keys()) {
        const v = vifOfChain(c);
        if (v !== undefined) out.add(v);
      }
      // The raw tables hold no chain of a guest's own, only the identity guard's leaves for its ports.
      for (const p of guardPorts(live.chains)) out.add(p);
      return out;
    },
    // Isolation and claims show in ebtables nat and ip6tables raw (adoptedAcrossTables); learning
    // in the guest's XN-L chain of ebtables filter.
    adoptedFacts: (live, vif, elsewhere) => ({ ...elsewhere, learning: table === 'eb' && live.chains.has(`XN-L-${vif}`) }),
  };
}

export const xtablesCodecs: Readonly<Record<XtablesTable, TableCodec>> = { ipv4: codec('ipv4'), ipv6: codec('ipv6'), ipv4raw: codec('ipv4raw'), ipv6raw: codec('ipv6raw'), eb: codec('eb'), ebnat: codec('ebnat') };

/** Isolation (the guest marks of its ebtables nat chain) and claims (the guard's leaves for its ports) of an adopted guest. */
export function adoptedFromGuard(ebnat: LiveTable | undefined, ipv6raw: LiveTable | undefined, vif: string): AdoptedFacts {
  return { isolated: isolatedByEbChain(ebnat?.chains.get(`XN-E-${vif}`) ?? []), claims: claimsFromGuardLive([ebnat?.chains ?? new Map<string, string[]>(), ipv6raw?.chains ?? new Map<string, string[]>()], vif) };
}
