/** What `status` reads of the nftables backend beyond each guest's chains. */
import { CLAIM_KINDS } from '../claims.js';
import type { ClaimDrops, StatusFindings, StatusInput } from '../driver.js';
import { markWriters } from '../integrity.js';
import type { Counter, LiveTable } from '../live.js';
import type { TableName } from '../model.js';
import { legacyForwardChains } from '../xtables/backend.js';
import { parseSave } from '../xtables/save-parse.js';
import { MARK_ESTABLISHED } from './compile.js';
import { CHAIN_CLAIMS, claimKeyLines } from './guard.js';
import { nftNeighbourProblems } from './neighbours.js';
import { dormantTables } from './script.js';

/** The identity guard's drops of each claim: the counters of its key elements (the XN-CLAIMS lines). */
export function nftablesClaimDrops(live: Readonly<Record<TableName, LiveTable>>): ClaimDrops {
  const counters = new Map<string, Counter | undefined>();
  const list = live.nftables.counters.get(CHAIN_CLAIMS) ?? [];
  (live.nftables.chains.get(CHAIN_CLAIMS) ?? []).forEach((l, i) => counters.set(l, list[i]));
  return (c) => {
    const out = { packets: 0, bytes: 0 };
    if (!c) return out;
    for (const l of new Set(CLAIM_KINDS.flatMap((k) => c[k].flatMap((key) => claimKeyLines(k, key))))) {
      out.packets += counters.get(l)?.packets ?? 0;
      out.bytes += counters.get(l)?.bytes ?? 0;
    }
    return out;
  };
}

/**
 * xennet's tables asleep; other tables' base chains that drop what xennet accepts; and
 * iptables-legacy, whose tables nft does not show (whichever iptables the system's default is:
 * read where they exist), whose FORWARD bridged traffic passes when br_netfilter calls iptables,
 * as xennet has it, and whose raw and mangle rules may set the mark bit xennet reads as
 * "established".
 */
export async function nftablesStatusFindings({ live, backend, engine, unread }: StatusInput): Promise<StatusFindings> {
  const out: StatusFindings = { problems: [], notes: [] };
  for (const f of dormantTables(live.nftables)) out.problems.push(`table ${f} xennet is dormant (flags dormant: its base chains are not hooked): none of its rules run, no guest is filtered by it; \`xennet apply\` wakes it`);
  out.problems.push(...(await nftNeighbourProblems(engine, () => unread('other nftables tables'))));
  for (const l of await legacyForwardChains()) {
    const tool = `${l.family === 'ipv4' ? 'iptables' : 'ip6tables'}-legacy`;
    const call = l.family === 'ipv4' ? 'bridge-nf-call-iptables' : 'bridge-nf-call-ip6tables';
    if (l.policy === 'DROP' || l.dropsAll) out.problems.push(`${tool} FORWARD ${l.policy === 'DROP' ? 'has policy DROP' : 'has a rule that drops everything (`-j DROP` or `-j REJECT` with no match)'}: it drops the guests' forwarded traffic that xennet accepts (the nftables backend cannot accept across tables; with ${call} on, bridged frames pass iptables-legacy's FORWARD after xennet's rules). Give that chain a rule accepting \`-m physdev --physdev-is-bridged\`, or move that software's rules to nftables`);
    else if (l.rules > 0) out.notes.push(`${tool} FORWARD has ${l.rules} rule${l.rules === 1 ? '' : 's'} of other software: with ${call} on, the guests' bridged ${l.family === 'ipv4' ? 'IPv4' : 'IPv6'} traffic passes them too, after xennet's nftables rules, and a DROP or REJECT there drops what xennet accepts (\`${tool}-save -t filter\` shows them)`);
  }
  if (backend.variant === 'legacy' && engine.kind === 'nftables' && engine.conntrack === 'mark') {
    for (const f of ['ipv4', 'ipv6'] as const) {
      for (const t of ['raw', 'mangle'] as const) {
        const other = parseSave(await backend.saveOther(f, t), t);
        for (const w of markWriters(other, 'PREROUTING', MARK_ESTABLISHED, false)) out.problems.push(`${f === 'ipv4' ? 'iptables' : 'ip6tables'}-legacy ${t} ${w} may set mark bit 0x${MARK_ESTABLISHED.toString(16)}, which xennet reads as "established" for guests with inbound: drop`);
      }
    }
  }
  return out;
}
