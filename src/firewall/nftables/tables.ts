/**
 * xennet's nftables tables (`bridge xennet`, `inet xennet`) as one table of the core's: read from
 * `nft list table` (or natively, nftables/backend.ts), written as one `nft -f` transaction. A
 * guest's dispatch entries are set and map elements, carried as the pseudo-chain XN-E-<vif>.
 */
import type { TableCodec } from '../driver.js';
import { tableLabel } from '../model.js';
import { vifOfChain } from '../names.js';
import { CHAIN_CLAIMS, claimsFromPortLines } from './guard.js';
import { CHAIN_CONST, nftDropReason } from './compile.js';
import { dormantTables, isElements, parseNftList, renderNft, tablesToDrop } from './script.js';

export const nftablesCodec: TableCodec = {
  dialect: 'nft',
  label: tableLabel.nftables,
  parse: parseNftList,
  render: renderNft,
  emptyChain: (chain) => `flush chain bridge xennet ${chain}\n`,
  completePlan(plan, live, desired) {
    const drop = tablesToDrop(live, desired.chains.keys());
    if (drop.length > 0) plan.dropTables = drop;
    plan.replacing = [...plan.write.keys()].filter((c) => c.startsWith('XN-E-') && live.chains.has(c));
    const before = new Map<string, string[]>();
    for (const c of [...plan.write.keys(), ...plan.remove]) if (isElements(c) && live.chains.has(c)) before.set(c, live.chains.get(c)!);
    if (before.size > 0) plan.before = before;
    const sleeping = dormantTables(live).filter((f) => !drop.includes(f));
    if (sleeping.length > 0) plan.wake = sleeping;
  },
  // A change made from the record assumes xennet's table is there: the transaction fails when it
  // is not (someone's `flush ruleset`), and the commit then reconciles from the live rules
  // instead of adding one guest to an empty table.
  completeRecordedPlan(plan, before) {
    if (before.chains.size > 0) plan.expectTable = true;
  },
  chainKind: (chain) => (chain === CHAIN_CONST ? { guard: false, elements: true, what: "the guests' address checks are broken (which frames are IP, tagged, or IPv6 with extension headers)" } : { guard: chain === CHAIN_CLAIMS, elements: chain === CHAIN_CLAIMS }),
  dropReason: nftDropReason,
  liveGuests(live) {
    const out = new Set<string>();
    for (const c of live.chains.keys()) {
      const v = vifOfChain(c);
      // A dispatch entry alone (someone's element for a name with no chain of xennet's) is not a
      // guest to adopt: its entry would jump to a chain that does not exist.
      if (v !== undefined && live.chains.has(`XN-O-${v}`)) out.add(v);
    }
    return out;
  },
  // All of it shows in the guest's elements: @isolated, its guard elements, @learn_reply.
  adoptedFacts(live, vif) {
    const elements = live.chains.get(`XN-E-${vif}`) ?? [];
    return { isolated: elements.some((r) => r.startsWith('@isolated ')), claims: claimsFromPortLines(elements), learning: elements.some((r) => r.startsWith('@learn_reply ')) };
  },
};
