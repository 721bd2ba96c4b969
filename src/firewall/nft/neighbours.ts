/**
 * Other tables on the hooks xennet's nftables chains use (read only, for `status`). In nftables a
 * drop in any base chain is final, an accept only ends that base chain: so another table cannot
 * let a guest's packet skip xennet's chains by accepting it, but it can drop what xennet lets
 * through, run in an undefined order with xennet (same hook, same priority), take frames off the
 * bridge before xennet sees them (broute), or forge the mark bit that stands for "established".
 */
import { reasonOf } from '../../sys/errors.js';
import type { Engine } from '../model.js';
import { listChainRules, listForeignBaseChains, type ForeignBaseChain } from '../backend/nft.js';
import { BASE_CHAINS, CHAIN_CT, MARK_ESTABLISHED } from './compile.js';

/** Families whose hooks see bridged IP packets (through br_netfilter) like the inet table does. */
const INET_LIKE = new Set(['ip', 'ip6', 'inet']);

function sameHook(c: ForeignBaseChain, ours: { family: string; hook: string }): boolean {
  if (c.hook !== ours.hook) return false;
  return ours.family === 'bridge' ? c.family === 'bridge' : INET_LIKE.has(c.family);
}

const where = (c: ForeignBaseChain): string => `chain ${c.family} ${c.table} ${c.name} (hook ${c.hook}, priority ${c.prio})`;

/** Problems and cautions about other tables, one line each. */
export async function nftNeighbourProblems(engine: Engine): Promise<string[]> {
  if (engine.kind !== 'nftables') return [];
  let chains: ForeignBaseChain[];
  try {
    chains = await listForeignBaseChains();
  } catch (e) {
    return [`cannot list the other nftables tables (${reasonOf(e)}): conflicts with xennet's chains are not checked`];
  }
  const out: string[] = [];
  const ours = Object.entries(BASE_CHAINS).filter(([name]) => name !== CHAIN_CT || engine.conntrack === 'mark');
  for (const c of chains) {
    const onOurHook = ours.filter(([, s]) => sameHook(c, s));
    if (onOurHook.length === 0 && !(c.hook === 'forward' && (c.family === 'bridge' || INET_LIKE.has(c.family)))) continue;
    for (const [name, s] of onOurHook) if (s.priority === c.prio) out.push(`${where(c)} has the priority of xennet's ${name}: the two run in an undefined order; give it another priority`);
    const rules = await listChainRules(c.family, c.table, c.name);
    if (c.policy === 'drop' && (c.family === 'bridge' || INET_LIKE.has(c.family)) && (c.hook === 'forward' || c.hook === 'prerouting')) {
      out.push(`${where(c)} has policy drop${rules.length === 0 ? ' and no rules: it drops every guest\'s traffic that xennet accepts' : ': unless its rules accept the guests\' traffic, it drops what xennet accepts'}`);
    }
    for (const r of rules) {
      if (c.family === 'bridge' && c.hook === 'prerouting' && /\bbroute\b/.test(r)) out.push(`${where(c)} rule "${r}" takes frames off the bridge (broute): they reach dom0's IP stack without passing xennet's checks`);
      // The established bit: cleared by XN-PRE (bridge prerouting, -310), set by XN-CT (-170), read in bridge forward.
      if (engine.conntrack === 'mark' && /\bmeta mark set\b|\bmark set\b/.test(r) && ((c.family === 'bridge' && c.prio > BASE_CHAINS['XN-PRE']!.priority) || INET_LIKE.has(c.family))) {
        out.push(`${where(c)} rule "${r}" may set mark bit 0x${MARK_ESTABLISHED.toString(16)}, which xennet reads as "established" for guests with inbound: drop; give it a mask without that bit`);
      }
    }
  }
  return out;
}
