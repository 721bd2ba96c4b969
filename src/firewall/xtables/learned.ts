/**
 * Address learning on the xtables backend (pure). iptables and ebtables have no sets of their
 * own, so:
 *
 *   - a learning guest's IP sources are checked against two ipsets of its own (its source chain
 *     is its port's alone) whose elements carry the binding's lifetime as their timeout, so a
 *     lease that ends stops passing traffic in the kernel itself, with or without the daemon:
 *       xn4-<vif>  hash:ip family inet     `-m set --match-set xn4-<vif> src`
 *       xn6-<vif>  hash:ip family inet6
 *     (One pair of sets for all ports, hash:net,iface with `physdev:` elements, cannot be read
 *     from iptables: its set match never asks for the bridge port, only the bridge.)
 *   - its ARP senders and neighbour-advertisement targets (ebtables and u32 have no set lookup)
 *     are rules made from the recorded bindings, which the daemon installs again when a binding
 *     is made or ends.
 *
 * What learning reads goes to the daemon through the two shared ebtables chains below (a rule
 * with `--limit` that jumps to them: ebtables-nft-save does not print a limit beside --nflog) and
 * through iptables NFLOG rules, all with group LEARN_GROUP.
 */
import type { Binding } from '../learning/bindings.js';
import type { LearnedStore } from '../driver.js';
import { ipsetNamesNative } from '../../bridge/nl/ipset.js';
import { ipsetDestroy, ipsetNames, ipsetRestore, ipsetSave } from './ipset.js';
import { DEFEND_PREFIX, HANDOVER_RATE, LEARN_GROUP, LEARN_PREFIX, MAX_KERNEL_TIMEOUT_S } from '../learning/log.js';

/** A learning vif's set of one family. */
export const learnedSetName = (family: 'ipv4' | 'ipv6', vif: string): string => `${family === 'ipv4' ? 'xn4' : 'xn6'}-${vif}`;
/** The sets of this vif. */
export const learnedSetsOf = (vif: string): string[] => [learnedSetName('ipv4', vif), learnedSetName('ipv6', vif)];
const SET_NAME = /^xn([46])-([A-Za-z0-9_][A-Za-z0-9_.-]{0,14})$/;
/** The vif and family of a set name of ours, or undefined. */
export function learnedSetOwner(name: string): { vif: string; family: 'ipv4' | 'ipv6' } | undefined {
  const m = SET_NAME.exec(name);
  return m ? { vif: m[2]!, family: m[1] === '4' ? 'ipv4' : 'ipv6' } : undefined;
}

/** The shared ebtables chains (nat and filter) that hand a frame to the daemon and return. */
export const CHAIN_LEARN = 'XN-LEARN';
export const CHAIN_DEFEND = 'XN-DEFEND';
export const LEARN_CHAIN_RULES = [`--nflog-prefix "${LEARN_PREFIX}" --nflog-group ${LEARN_GROUP} -j RETURN`];
export const DEFEND_CHAIN_RULES = [`--nflog-prefix "${DEFEND_PREFIX}" --nflog-group ${LEARN_GROUP} -j RETURN`];

/** Each rule that hands packets over has a rate of its own (per port, as every rule is a port's). */
export const LEARN_RATE = `--limit ${HANDOVER_RATE.perSecond}/sec --limit-burst ${HANDOVER_RATE.burst}`;
/** iptables' form of a rule's hand-over. */
export const nflogTarget = (prefix: string): string => `-m limit ${LEARN_RATE} -j NFLOG --nflog-prefix "${prefix}" --nflog-group ${LEARN_GROUP}`;

/** The set lookup of a learning guest's source chain. */
export const learnedSourceMatch = (family: 'ipv4' | 'ipv6', vif: string): string => `-m set --match-set ${learnedSetName(family, vif)} src`;

/** The sets a restore text's rules read (each must exist before them). */
export function setsReadBy(text: string): string[] {
  return [...new Set([...text.matchAll(/--match-set (xn[46]-\S+) src/g)].map((m) => m[1]!))].filter((n) => learnedSetOwner(n) !== undefined);
}

/** `ipset restore` lines that make these sets (no-ops when they exist). */
export function learnedSetCreates(names: readonly string[]): string[] {
  return names.map((n) => `create ${n} hash:ip family ${learnedSetOwner(n)?.family === 'ipv6' ? 'inet6' : 'inet'} timeout 0`);
}

const element = (b: Pick<Binding, 'family' | 'address' | 'vif'>): string => `${learnedSetName(b.family, b.vif)} ${b.address}`;

/**
 * `ipset restore -exist` lines that write bindings (each with the time it has left at `now`; 0:
 * no end, also for a lease longer than the kernel takes, which the daemon ends) and remove others.
 * An element written again keeps passing: `-exist` makes its add set the new timeout in place.
 */
export function learnedIpsetLines(write: readonly Binding[], remove: readonly Binding[], now: number): string[] {
  const lines: string[] = [];
  for (const b of remove) lines.push(`del ${element(b)}`);
  for (const b of write) {
    const left = b.expires === null ? 0 : Math.ceil((b.expires - now) / 1000);
    if (left <= 0 && b.expires !== null) continue;
    lines.push(`add ${element(b)} timeout ${left > MAX_KERNEL_TIMEOUT_S ? 0 : left}`);
  }
  return lines;
}

/** The elements `ipset save` prints of our sets: port, family, address, ms left (null: no end). */
export function parseLearnedIpset(text: string): { vif: string; family: 'ipv4' | 'ipv6'; address: string; expiresMs: number | null }[] {
  const out: { vif: string; family: 'ipv4' | 'ipv6'; address: string; expiresMs: number | null }[] = [];
  for (const line of text.split('\n')) {
    const m = /^add (\S+) ([0-9a-fA-F.:]+)(?: timeout (\d+))?$/.exec(line.trim());
    const owner = m ? learnedSetOwner(m[1]!) : undefined;
    if (!m || !owner) continue;
    const t = m[3] === undefined ? 0 : Number(m[3]);
    out.push({ ...owner, address: m[2]!, expiresMs: t === 0 ? null : t * 1000 });
  }
  return out;
}

/**
 * Destroys every learned set of xennet's (`xn4-`/`xn6-<vif>`) but those of `keep`: what a guest
 * that no longer learns, a move to nftables or an uninstall leaves. A set a rule still reads stays.
 */
export async function sweepLearnedSets(keep: ReadonlySet<string>): Promise<void> {
  const gone = await strayLearnedSets(keep);
  if (gone.length > 0) await ipsetDestroy(gone);
}

/** The learned sets of xennet's (`xn4-`/`xn6-<vif>`) in the kernel of no guest of `keep`, sorted. */
export async function strayLearnedSets(keep: ReadonlySet<string>): Promise<string[]> {
  // Read over nfnetlink: on the nftables backend every apply and plan looks, and needs no program for it.
  const names = await ipsetNamesNative().catch(() => ipsetNames().catch(() => []));
  return names
    .filter((n) => {
      const owner = learnedSetOwner(n);
      return owner !== undefined && !keep.has(owner.vif);
    })
    .sort();
}

/** Learned bindings in ipsets (`xn4-`/`xn6-<vif>`), which the guests' source checks match. */
export const ipsetLearnedStore: LearnedStore = {
  async write(write, remove) {
    if (write.length === 0 && remove.length === 0) return;
    const now = Date.now();
    // The sets are made with the first rule that reads them; a binding written first makes them
    // (a removal from a set that is not there has nothing to remove: its lines are left out).
    const made = [...new Set(write.map((b) => learnedSetName(b.family, b.vif)))];
    const present = new Set(remove.length > 0 ? await ipsetNames() : []);
    const removable = remove.filter((b) => made.includes(learnedSetName(b.family, b.vif)) || present.has(learnedSetName(b.family, b.vif)));
    const lines = learnedIpsetLines(write, removable, now);
    if (lines.length === 0) return;
    await ipsetRestore([...learnedSetCreates(made), ...lines]);
  },
  list: async () => parseLearnedIpset((await ipsetSave()) ?? '').sort((a, b) => a.vif.localeCompare(b.vif) || a.family.localeCompare(b.family)),
  // A set a rule still reads stays: its destroy fails, harmlessly.
  dropFor: async (vifs) => {
    await ipsetDestroy([...vifs].flatMap(learnedSetsOf));
  },
};
