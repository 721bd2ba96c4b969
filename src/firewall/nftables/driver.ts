/** The nftables backend: xennet's own tables `bridge xennet` and `inet xennet`. */
import type { FirewallDriver } from '../driver.js';
import { nftablesClaimDrops, nftablesStatusFindings } from './status.js';
import { nftablesUsable, nftPath } from './backend.js';
import { compileSharedNft, compileVifNft, nftWarnings } from './compile.js';
import { emptyRuleSet, type Engine, type RuleSet } from '../model.js';
import { nftablesCodec } from './tables.js';
import { nftLearnedStore } from './learned-store.js';

const conntrackOf = (engine: Engine): 'bridge' | 'mark' => (engine.kind === 'nftables' ? engine.conntrack : 'mark');

const describe = (engine: Engine): string => `nftables (connection state: ${conntrackOf(engine) === 'bridge' ? 'bridge-family conntrack, nf_conntrack_bridge' : 'br_netfilter conntrack via a mark set in inet xennet'})`;

const only = (t: RuleSet['nftables']): RuleSet => ({ ...emptyRuleSet(), nftables: t });

export const nftablesDriver: FirewallDriver = {
  kind: 'nftables',
  tables: ['nftables'],
  describe,
  summary: describe,
  compileVif: (v, engine) => only(compileVifNft(v, conntrackOf(engine))),
  compileShared: (members, engine) => (members.length === 0 ? emptyRuleSet() : only(compileSharedNft(members, conntrackOf(engine)))),
  warnings: nftWarnings,
  // Frames are checked in the bridge family, where a tag the kernel carries beside the frame is
  // seen through, but IP inside a PPPoE header or a second tag is not: those stay out of the inet
  // hooks, or a host on the LAN could create a conntrack entry with a guest's address inside
  // them, whose "replies" would then pass an `inbound: drop` guest as established.
  bridgeNetfilter: {
    wanted: { 'net.bridge.bridge-nf-call-iptables': '1', 'net.bridge.bridge-nf-call-ip6tables': '1', 'net.bridge.bridge-nf-filter-vlan-tagged': '0', 'net.bridge.bridge-nf-filter-pppoe-tagged': '0' },
    risk: '(call-* at 0: no connection state for `inbound: drop`; filter-*-tagged at 1: a host on the LAN can prime conntrack into a guest with IP inside a PPPoE header or a second VLAN tag)',
  },
  // Its bindings live in its own sets.
  learningUnavailable: () => undefined,
  // It writes natively, and still reads its tables as text with nft where it cannot natively
  // (a rule it did not write, a full reconcile): without nft it cannot repair drift.
  compat: async () => (nftPath() === undefined ? 'nft (Debian package nftables) is not installed: xennet reads its tables with it where it cannot natively' : (await nftablesUsable()) ? undefined : 'nf_tables does not take a table of the bridge family with a base chain here (a kernel without nf_tables or nft_chain_filter)'),
  learned: nftLearnedStore,
  changesShowInGeneration: true,
  // Its rules read the learned sets.
  bindingsInRules: false,
  statusFindings: nftablesStatusFindings,
  claimDrops: nftablesClaimDrops,
  codecs: { nftables: nftablesCodec },
  // Everything an adopted guest was installed with shows in its own elements.
  adoptionTables: [],
  adoptedAcrossTables: () => ({ isolated: false }),
};
