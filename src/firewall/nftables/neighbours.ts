/**
 * Other tables on the hooks xennet's nftables chains use (read only, for `status`). In nftables a
 * drop in any base chain is final, an accept only ends that base chain: so another table cannot
 * let a guest's packet skip xennet's chains by accepting it, but it can drop what xennet lets
 * through, run in an undefined order with xennet (same hook, same priority), or forge the mark bit
 * that stands for "established".
 */
import { reasonOf } from '../../sys/errors.js';
import type { Engine } from '../model.js';
import { listChainRules, listForeignBaseChains, type ForeignBaseChain } from './backend.js';
import { BASE_CHAINS, CHAIN_CT, MARK_ESTABLISHED } from './compile.js';

/** Families whose hooks see bridged IP packets (through br_netfilter) like the inet table does. */
const INET_LIKE = new Set(['ip', 'ip6', 'inet']);

function sameHook(c: ForeignBaseChain, ours: { family: string; hook: string }): boolean {
  if (c.hook !== ours.hook) return false;
  return ours.family === 'bridge' ? c.family === 'bridge' : INET_LIKE.has(c.family);
}

const where = (c: ForeignBaseChain): string => `chain ${c.family} ${c.table} ${c.name} (hook ${c.hook}, priority ${c.prio})`;

/**
 * Mark bits an nft rule may change: `meta mark set meta mark & M | V` changes ~M | V, `... | V`
 * changes V, `... & M` changes ~M; any other `mark set` (a constant, `ct mark`) all of them.
 */
export function nftMarkBitsWritten(rule: string): number {
  const m = /\bmark set (.+?)(?:\s+(?:accept|drop|return|continue|jump \S+|goto \S+|counter.*))?$/.exec(rule);
  if (!m) return 0;
  const e = /^meta mark(?: & (0x[0-9a-f]+))?(?: \| (0x[0-9a-f]+))?$/.exec(m[1]!.trim());
  if (!e || (e[1] === undefined && e[2] === undefined)) return 0xffffffff;
  const keep = e[1] === undefined ? 0xffffffff : Number(e[1]);
  const set = e[2] === undefined ? 0 : Number(e[2]);
  return (~keep | set) >>> 0;
}

/** A chain's rules and those of the chains it jumps or goes to, in its table (depth 8). */
async function rulesReached(family: string, table: string, chain: string): Promise<string[]> {
  const out: string[] = [];
  const seen = new Set<string>();
  const walk = async (name: string, depth: number): Promise<void> => {
    if (seen.has(name) || depth > 8) return;
    seen.add(name);
    for (const r of await listChainRules(family, table, name)) {
      out.push(r);
      const target = /\b(?:jump|goto) (\S+)/.exec(r)?.[1];
      if (target) await walk(target, depth + 1);
    }
  };
  await walk(chain, 0);
  return out;
}

/** Problems and cautions about other tables, one line each. */
export async function nftNeighbourProblems(engine: Engine, onUnreadable: () => void = () => undefined): Promise<string[]> {
  if (engine.kind !== 'nftables') return [];
  let chains: ForeignBaseChain[];
  try {
    chains = await listForeignBaseChains();
  } catch (e) {
    onUnreadable();
    return [`cannot list the other nftables tables (${reasonOf(e)}): conflicts with xennet's chains are not checked`];
  }
  const out: string[] = [];
  const ours = Object.entries(BASE_CHAINS).filter(([name]) => name !== CHAIN_CT || engine.conntrack === 'mark');
  for (const c of chains) {
    const onOurHook = ours.filter(([, s]) => sameHook(c, s));
    if (onOurHook.length === 0 && !(c.hook === 'forward' && (c.family === 'bridge' || INET_LIKE.has(c.family)))) continue;
    for (const [name, s] of onOurHook) if (s.priority === c.prio) out.push(`${where(c)} has the priority of xennet's ${name}: the two run in an undefined order; give it another priority`);
    const rules = await rulesReached(c.family, c.table, c.name);
    if (c.policy === 'drop' && (c.family === 'bridge' || INET_LIKE.has(c.family)) && (c.hook === 'forward' || c.hook === 'prerouting')) {
      out.push(`${where(c)} has policy drop${rules.length === 0 ? ' and no rules: it drops every guest\'s traffic that xennet accepts' : ': unless its rules accept the guests\' traffic, it drops what xennet accepts'}`);
    }
    for (const r of rules) {
      // The established bit: cleared by XN-PRE (bridge prerouting, -310), set by XN-CT (-170), read in bridge forward.
      if (engine.conntrack === 'mark' && (nftMarkBitsWritten(r) & MARK_ESTABLISHED) !== 0 && ((c.family === 'bridge' && c.prio > BASE_CHAINS['XN-PRE']!.priority) || INET_LIKE.has(c.family))) {
        out.push(`${where(c)} rule "${r}" may set mark bit 0x${MARK_ESTABLISHED.toString(16)}, which xennet reads as "established" for guests with inbound: drop; give it a mask without that bit`);
      }
    }
  }
  return out;
}
