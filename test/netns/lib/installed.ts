/**
 * What xennet installed for a guest, read with the kernel's own tools on whichever backend holds
 * it: nft for `bridge xennet`, iptables-save for the xtables chains. Tests that run xennet on its
 * default backend (nftables where it works) assert through these, not through one backend's text.
 */
import type { SimNetns } from '../../../src/sim/netns.js';

/** A namespace to run the tools in. */
type Netns = Pick<SimNetns, 'exec'>;

const escaped = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The rules of one chain of `bridge xennet` as nft prints them (comments kept); undefined when it does not exist. */
export async function nftChainRules(ns: Netns, chain: string): Promise<string[] | undefined> {
  const r = await ns.exec('nft', ['list', 'chain', 'bridge', 'xennet', chain]);
  if (r.code !== 0) return undefined;
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && l !== '}' && !l.startsWith('table ') && !l.startsWith('chain ') && !l.startsWith('type '));
}

/** Whether xennet's nftables table exists (then the guests are there, not in xtables). */
async function onNftables(ns: Netns): Promise<boolean> {
  return (await ns.exec('nft', ['list', 'table', 'bridge', 'xennet'])).code === 0;
}

/**
 * Whether the guest's inbound policy is drop as installed: its inbound chain is reached, and on
 * nftables sends IPv4 and IPv6 to its family chains, each ending in a drop.
 */
export async function inboundDrops(ns: Netns, vif: string): Promise<boolean> {
  if (await onNftables(ns)) {
    const rules = await nftChainRules(ns, `XN-I-${vif}`);
    const map = await ns.exec('nft', ['list', 'map', 'bridge', 'xennet', 'to_guest']);
    if (rules === undefined || !map.stdout.includes(`"${vif}" : jump XN-I-${vif}`)) return false;
    for (const [kind, type] of [['I4', 'ip'], ['I6', 'ip6']] as const) {
      const family = await nftChainRules(ns, `XN-${kind}-${vif}`);
      if (!rules.some((r) => r.startsWith(`ether type ${type} goto XN-${kind}-${vif}`)) || !/\bdrop(?: comment "[^"]*")?$/.test(family?.at(-1) ?? '')) return false;
    }
    return true;
  }
  const save = await ns.exec('iptables-save', []);
  return new RegExp(`^-A XN-I-${escaped(vif)} .*-j DROP$`, 'm').test(save.stdout);
}

/** Whether anything of xennet's names this guest, on either backend (its chains, its set and map elements). */
export async function guestRulesPresent(ns: Netns, vif: string): Promise<boolean> {
  const nft = await ns.exec('nft', ['list', 'table', 'bridge', 'xennet']);
  if (nft.code === 0 && (nft.stdout.includes(`"${vif}"`) || nft.stdout.includes(`-${vif} `))) return true;
  const save = await ns.exec('iptables-save', []);
  return new RegExp(`XN-[A-Z]+-${escaped(vif)}\\b`).test(save.stdout);
}

/**
 * What is wrong with the guests' rules after a storm of hooks (empty when right): on nftables,
 * each guest's own chain and its dispatch entry (the kernel holds a name or a key once); on
 * xtables, each guest's chains exactly once in every table and one root jump per family.
 */
export async function installedOnce(ns: Netns, vifs: readonly string[]): Promise<string[]> {
  const problems: string[] = [];
  if (await onNftables(ns)) {
    const text = (await ns.exec('nft', ['list', 'table', 'bridge', 'xennet'])).stdout;
    for (const v of vifs) {
      if (!text.includes(`chain XN-O-${v} {`)) problems.push(`nftables: no chain XN-O-${v}`);
      if (!text.includes(`"${v}" : jump XN-O-${v}`)) problems.push(`nftables: no from_guest entry for ${v}`);
    }
    return problems;
  }
  const v4 = (await ns.exec('iptables-save', [])).stdout;
  const v6 = (await ns.exec('ip6tables-save', [])).stdout;
  const eb = (await ns.exec('ebtables-save', ['-t', 'nat'])).stdout;
  const count = (text: string, line: string): number => text.split('\n').filter((l) => l === line).length;
  for (const v of vifs) {
    for (const [what, text, line] of [
      ['iptables', v4, `:XN-O-${v} - [0:0]`],
      ['ip6tables', v6, `:XN-O-${v} - [0:0]`],
      ['ebtables', eb, `:XN-E-${v} RETURN`],
    ] as const) {
      const n = count(text, line);
      if (n !== 1) problems.push(`${what}: ${n} times ${line}`);
    }
    const leaf = v4.match(new RegExp(`--physdev-in ${escaped(v)} -g XN-O-${escaped(v)}$`, 'gm'))?.length ?? 0;
    if (leaf !== 1) problems.push(`iptables: ${leaf} leaves for ${v}`);
  }
  for (const [what, text] of [['iptables', v4], ['ip6tables', v6]] as const) {
    const n = text.split('\n').filter((l) => l.startsWith('-A FORWARD') && l.includes('XN-FORWARD')).length;
    if (n !== 1) problems.push(`${what}: ${n} root jumps`);
  }
  return problems;
}
