/** What `status` reads of the xtables backend beyond each guest's chains. */
import { reasonOf } from '../../sys/errors.js';
import { CLAIM_KINDS } from '../claims.js';
import type { ClaimDrops, StatusFindings, StatusInput } from '../driver.js';
import { markWriters } from '../integrity.js';
import type { Counter, LiveTable } from '../live.js';
import { dialectOf, type TableName } from '../model.js';
import { normalizeRule } from '../normalize.js';
import { MARK_GUEST, MARK_ISOLATED } from './compile.js';
import { claimDropRules, isGuardChain } from './guard.js';
import { parseSave } from './save-parse.js';

/** The identity guard's drops of each claim: its rules' counters in ebtables nat, iptables raw and ip6tables raw and filter. */
export function xtablesClaimDrops(live: Readonly<Record<TableName, LiveTable>>): ClaimDrops {
  const counters = new Map<string, Counter | undefined>();
  for (const t of ['ebnat', 'ipv4raw', 'ipv6raw', 'ipv6'] as const) {
    for (const [chain, list] of live[t].chains) {
      if (!isGuardChain(chain)) continue;
      list.forEach((r, i) => counters.set(`${t} ${normalizeRule(r, dialectOf(t))}`, live[t].counters.get(chain)?.[i]));
    }
  }
  return (c) => {
    const out = { packets: 0, bytes: 0 };
    if (!c) return out;
    for (const k of CLAIM_KINDS) {
      for (const key of c[k]) {
        for (const d of claimDropRules(k, key)) {
          const n = counters.get(`${d.table} ${normalizeRule(d.rule, dialectOf(d.table))}`);
          out.packets += n?.packets ?? 0;
          out.bytes += n?.bytes ?? 0;
        }
      }
    }
    return out;
  };
}

/**
 * Isolation reads the guest marks that ebtables nat PREROUTING sets and ebtables filter FORWARD
 * checks: a rule of someone else's in between (iptables raw and mangle, ebtables around xennet's
 * jumps) that rewrites those bits lets isolated guests be reached.
 */
export async function xtablesStatusFindings({ live, backend, isolation, unread }: StatusInput): Promise<StatusFindings> {
  const out: StatusFindings = { problems: [], notes: [] };
  if (!isolation) return out;
  const bits = MARK_GUEST | MARK_ISOLATED;
  const writers: string[] = [];
  try {
    for (const f of ['ipv4', 'ipv6'] as const) {
      for (const t of ['raw', 'mangle'] as const) {
        const other = parseSave(await backend.saveOther(f, t), t);
        for (const c of t === 'raw' ? ['PREROUTING'] : ['PREROUTING', 'FORWARD']) writers.push(...markWriters(other, c, bits, false).map((w) => `${f === 'ipv4' ? 'iptables' : 'ip6tables'} ${t} ${w}`));
      }
    }
  } catch (e) {
    unread('iptables raw and mangle');
    out.notes.push(`iptables' raw and mangle tables could not be read (${reasonOf(e)}): rules there that rewrite the marks xennet reads are not looked for`);
  }
  const natPre = live.ebnat.builtins.get('PREROUTING') ?? [];
  const ourNat = natPre.findIndex((r) => /-j XN-FROM$/.test(r));
  writers.push(...markWriters(live.ebnat, 'PREROUTING', bits, true, ourNat < 0 ? 0 : ourNat + 1).map((w) => `ebtables nat ${w}`));
  const fwd = live.eb.builtins.get('FORWARD') ?? [];
  const ourIso = fwd.findIndex((r) => /-j XN-ISO$/.test(r));
  writers.push(...markWriters(live.eb, 'FORWARD', bits, true, 0, ourIso < 0 ? fwd.length : ourIso).map((w) => `ebtables ${w}`));
  for (const w of writers) out.problems.push(`${w} may change the packet mark bits 0x${bits.toString(16)} that guest isolation reads: isolated guests may be reached; give that rule a mask without those bits`);
  return out;
}
