/** The xtables backend: iptables physdev rules, ebtables, ipsets for learned addresses. */
import { findProgram } from '../../sys/exec.js';
import type { FirewallDriver } from '../driver.js';
import { xtablesClaimDrops, xtablesStatusFindings } from './status.js';
import { xtablesTables } from '../model.js';
import { ipsetPath } from './ipset.js';
import { ipsetLearnedStore, strayLearnedSets, sweepLearnedSets } from './learned.js';
import { compileSharedXtables, compileVifXtables } from './compile.js';
import { adoptedFromGuard, xtablesCodecs } from './tables.js';

export const xtablesDriver: FirewallDriver = {
  kind: 'xtables',
  tables: xtablesTables,
  describe: () => 'xtables (iptables physdev + ebtables)',
  summary: (_engine, variant) => `iptables-${variant} + ebtables-nft`,
  compileVif: (v) => compileVifXtables(v),
  compileShared: (members) => compileSharedXtables(members),
  // Every rule file is checked as written: the IP inside VLAN and PPPoE headers is passed to iptables.
  warnings: () => [],
  bridgeNetfilter: {
    wanted: { 'net.bridge.bridge-nf-call-iptables': '1', 'net.bridge.bridge-nf-call-ip6tables': '1', 'net.bridge.bridge-nf-filter-vlan-tagged': '1', 'net.bridge.bridge-nf-filter-pppoe-tagged': '1' },
    risk: '(the filter-*-tagged ones at 0 let VLAN- or PPPoE-tagged IP past every rule)',
  },
  // Its bindings live in ipsets: without the program a learning guest is left open (and said).
  learningUnavailable: () => (ipsetPath() === undefined ? 'the ipset program is not installed (Debian package ipset), which address learning on the xtables backend needs' : undefined),
  compat: async () => {
    const missing = [['iptables-restore', 'iptables'], ['ip6tables-restore', 'iptables'], ['ebtables-restore', 'ebtables']].filter(([p]) => findProgram(p!) === undefined);
    return missing.length === 0 ? undefined : `${missing.map(([p]) => p).join(', ')} ${missing.length === 1 ? 'is' : 'are'} not installed (Debian packages ${[...new Set(missing.map(([, d]) => d))].join(' and ')})`;
  },
  learned: ipsetLearnedStore,
  changesShowInGeneration: false,
  // Its ARP and NA rules name each bound address.
  bindingsInRules: true,
  statusFindings: xtablesStatusFindings,
  claimDrops: xtablesClaimDrops,
  sweepLearned: sweepLearnedSets,
  strayLearned: strayLearnedSets,
  codecs: xtablesCodecs,
  adoptionTables: ['ebnat', 'ipv6raw'],
  adoptedAcrossTables: (live, vif) => adoptedFromGuard(live.ebnat, live.ipv6raw, vif),
};
