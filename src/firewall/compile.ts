/**
 * compile(vifs) -> RuleSet: the guest firewall for these vifs, as the engine's driver writes it
 * (pure, deterministic: same input, same output). Each guest's own chains, and the shared part
 * (dispatch, isolation, identity guard, root jumps) compiled from what the index records of
 * every guest (its TreeMember).
 */
import { eui64LinkLocal } from '../net/index.js';
import { claimsOf } from './claims.js';
import { driverFor } from './drivers.js';
import { cidrText, tableNames, XTABLES, type Engine, type ResolvedVif, type RuleSet, type TreeMember } from './model.js';
import type { MemberFacts } from './store.js';
import { filterRecord } from './widening.js';

/** The per-vif chains of one vif, in the engine's tables. */
export function compileVif(v: ResolvedVif, engine: Engine = XTABLES): RuleSet {
  return driverFor(engine).compileVif(v, engine);
}

/** The shared chains and root jumps for these vifs (nothing at all when there are none). */
export function compileShared(members: readonly TreeMember[], engine: Engine = XTABLES): RuleSet {
  return driverFor(engine).compileShared(members, engine);
}

export function treeMember(v: ResolvedVif): TreeMember {
  const m: TreeMember = { name: v.name, bridge: v.bridge, inbound: v.inbound === 'drop', isolated: v.isolation };
  if (v.learning) m.learning = true;
  const claims = claimsOf(v);
  if (claims) m.claims = claims;
  return m;
}

/** What the index records of a vif for the shared chains (its TreeMember without the name). */
export function memberFacts(v: ResolvedVif): MemberFacts {
  const { name: _name, ...facts } = { ...treeMember(v), bridge: v.bridge };
  const declared = declaredAddresses(v);
  return { ...facts, filter: filterRecord(v), ...(declared ? { declared } : {}) };
}

/**
 * What a vif's addresses are, guard or not, as CIDR texts: its declared addresses and prefixes
 * (rule file, xenstore ip) and the EUI-64 link-local of its MAC. Learning never binds any address
 * inside them to another port.
 */
export function declaredAddresses(v: ResolvedVif): { ipv4: string[]; ipv6: string[] } | undefined {
  const ipv4 = v.ipv4.map(cidrText);
  const ipv6 = [...v.ipv6, ...(v.mac ? [eui64LinkLocal(v.mac)] : [])].map(cidrText);
  return ipv4.length + ipv6.length > 0 ? { ipv4, ipv6 } : undefined;
}

export function mergeInto(into: RuleSet, from: RuleSet): RuleSet {
  for (const table of tableNames) {
    for (const [k, v] of from[table].chains) into[table].chains.set(k, v);
    into[table].roots.push(...from[table].roots);
  }
  return into;
}

/** The whole host's firewall for these vifs. Deterministic: same input, same output. */
export function compile(vifs: readonly ResolvedVif[], engine: Engine = XTABLES): RuleSet {
  const sorted = [...vifs].sort((a, b) => a.name.localeCompare(b.name));
  const rs = compileShared(sorted.map(treeMember), engine);
  for (const v of sorted) mergeInto(rs, compileVif(v, engine));
  return rs;
}
