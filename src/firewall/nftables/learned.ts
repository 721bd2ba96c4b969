/**
 * Learned addresses in `bridge xennet` (pure): three sets of (address, port) pairs whose elements
 * carry the binding's lifetime as their timeout, so a lease that ends stops passing traffic in
 * the kernel itself, with or without the daemon. The firewall's rules read them; the daemon
 * writes them (they are state, not policy: plan and status never diff their elements).
 *
 *   learned_ip4  ipv4_addr . ifname    source address, ARP sender
 *   learned_ip6  ipv6_addr . ifname    source address
 *   learned_na   @th,64,128 . iifname  target of a neighbour advertisement (raw, as the guard's)
 *
 * The packets learning reads go to the daemon by `log group LEARN_GROUP` (nfnetlink_log).
 */
import { raw128 } from './syntax.js';
import type { Binding } from '../learning/bindings.js';
import { NFT_TABLE } from './table.js';
import { DEFEND_PREFIX, HANDOVER_RATE, LEARN_GROUP, LEARN_PREFIX, MAX_KERNEL_TIMEOUT_S } from '../learning/log.js';

export const LEARN_LOG = `log prefix "${LEARN_PREFIX}" group ${LEARN_GROUP}`;
/** nft's form of the hand-over rate of each rule. */
export const HANDOVER_LIMIT = `limit rate ${HANDOVER_RATE.perSecond}/second burst ${HANDOVER_RATE.burst} packets`;
/**
 * Defences go to the daemon at a rate per (address defended, input port): the uplink carries
 * every LAN host's, so a rate per port alone would let a guest that makes the LAN defend one
 * address (its own flood of tests) use up the share of the defence of another.
 */
const defendLog = (key: 'arp saddr ip' | '@th,64,128'): string => `add @${key === '@th,64,128' ? 'defend_rate6' : 'defend_rate4'} { ${key} . iifname ${HANDOVER_LIMIT} } log prefix "${DEFEND_PREFIX}" group ${LEARN_GROUP}`;
/**
 * The statements that make an address tentative, in the kernel, as the guest's test (or
 * announcement) goes by: so a defence that comes back a millisecond later is already seen.
 */
export const tentativeFrom = (key: 'arp daddr ip' | 'arp saddr ip' | '@th,64,128'): string =>
  key === '@th,64,128' ? 'add @tentative_na { @th,64,128 timeout 2s } add @tentative_na_port { @th,64,128 . iifname timeout 2s }' : `add @tentative4 { ${key} timeout 2s } add @tentative4_port { ${key} . iifname timeout 2s }`;

export const LEARNED_SETS = [
  { name: 'learned_ip4', type: 'type ipv4_addr . ifname; flags timeout;' },
  { name: 'learned_ip6', type: 'type ipv6_addr . ifname; flags timeout;' },
  { name: 'learned_na', type: 'typeof @th,64,128 . iifname; flags timeout;' },
  // The learned addresses of guests with the identity guard, without their port: a frame from
  // any other port that carries one is dropped in XN-PRE, as for declared addresses.
  { name: 'learned_keys4', type: 'type ipv4_addr; flags timeout;' },
  { name: 'learned_keys6', type: 'type ipv6_addr; flags timeout;' },
  { name: 'learned_na_keys', type: 'typeof @th,64,128; flags timeout;' },
  // Addresses a learning guest is testing (RFC 6620: a binding waits for its DAD to succeed),
  // added by its own test as it goes by, with the tester's port: an ARP from, or an NA for, one
  // of them from any other port goes to the daemon, which refuses the binding.
  { name: 'tentative4', type: 'type ipv4_addr; size 65535; flags dynamic,timeout;' },
  { name: 'tentative4_port', type: 'type ipv4_addr . ifname; size 65535; flags dynamic,timeout;' },
  { name: 'tentative_na', type: 'typeof @th,64,128; size 65535; flags dynamic,timeout;' },
  { name: 'tentative_na_port', type: 'typeof @th,64,128 . iifname; size 65535; flags dynamic,timeout;' },
  { name: 'defend_rate4', type: 'type ipv4_addr . ifname; size 65535; flags dynamic,timeout; timeout 10s;' },
  { name: 'defend_rate6', type: 'typeof @th,64,128 . iifname; size 65535; flags dynamic,timeout; timeout 10s;' },
] as const;

/**
 * The identity guard of learned addresses in XN-PRE (as nft lists them, and as written where
 * the Ethernet-type dependency would miss tagged frames: see guard.ts ClaimSetSpec.written).
 */
export const LEARNED_GUARD: readonly { rule: string; written?: string }[] = [
  { rule: 'arp saddr ip . iifname != @learned_ip4 arp saddr ip @learned_keys4 counter drop', written: 'meta protocol arp arp saddr ip . iifname != @learned_ip4 arp saddr ip @learned_keys4 counter drop' },
  { rule: 'ip saddr . iifname != @learned_ip4 ip saddr @learned_keys4 counter drop' },
  { rule: 'ip6 saddr . iifname != @learned_ip6 ip6 saddr @learned_keys6 counter drop' },
  { rule: 'icmpv6 type nd-neighbor-advert @th,64,128 . iifname != @learned_na @th,64,128 @learned_na_keys counter drop', written: 'meta protocol ip6 icmpv6 type nd-neighbor-advert @th,64,128 . iifname != @learned_na @th,64,128 @learned_na_keys counter drop' },
  { rule: `arp saddr ip @tentative4 arp saddr ip . iifname != @tentative4_port ${defendLog('arp saddr ip')}`, written: `meta protocol arp arp saddr ip @tentative4 arp saddr ip . iifname != @tentative4_port ${defendLog('arp saddr ip')}` },
  { rule: `icmpv6 type nd-neighbor-advert @th,64,128 @tentative_na @th,64,128 . iifname != @tentative_na_port ${defendLog('@th,64,128')}`, written: `meta protocol ip6 icmpv6 type nd-neighbor-advert @th,64,128 @tentative_na @th,64,128 . iifname != @tentative_na_port ${defendLog('@th,64,128')}` },
];



/** The elements (set, key) of one binding. */
export function bindingElements(b: Binding): { set: string; key: string }[] {
  const port = `"${b.vif}"`;
  if (b.family === 'ipv4') return [{ set: 'learned_ip4', key: `${b.address} . ${port}` }, ...(b.guarded ? [{ set: 'learned_keys4', key: b.address }] : [])];
  return [
    { set: 'learned_ip6', key: `${b.address} . ${port}` },
    { set: 'learned_na', key: `${raw128(b.address)} . ${port}` },
    ...(b.guarded ? [{ set: 'learned_keys6', key: b.address }, { set: 'learned_na_keys', key: raw128(b.address) }] : []),
  ];
}

/**
 * One nft script that writes bindings (with the time each has left at `now`) and removes others.
 * nft 1.0.6 neither updates an element's timeout in place nor deletes what is absent without
 * failing the whole script: each element is first added (a no-op when present), then deleted.
 */
export function learnedScript(write: readonly Binding[], remove: readonly Binding[], now: number): string {
  // The sets first (a no-op when they exist; a table made by an older xennet lacks them).
  const lines: string[] = LEARNED_SETS.map((s) => `add set bridge ${NFT_TABLE} ${s.name} { ${s.type} }`);
  const el = (verb: 'add' | 'delete', set: string, body: string): string => `${verb} element bridge ${NFT_TABLE} ${set} { ${body} }`;
  for (const b of remove) for (const e of bindingElements(b)) lines.push(el('add', e.set, e.key), el('delete', e.set, e.key));
  for (const b of write) {
    const left = b.expires === null ? undefined : Math.ceil((b.expires - now) / 1000);
    if (left !== undefined && left <= 0) continue;
    // A lease longer than the kernel takes has no end there: the daemon ends it.
    const timeout = left !== undefined && left <= MAX_KERNEL_TIMEOUT_S ? ` timeout ${left}s` : '';
    for (const e of bindingElements(b)) lines.push(el('add', e.set, e.key), el('delete', e.set, e.key), el('add', e.set, `${e.key}${timeout}`));
  }
  return lines.length > LEARNED_SETS.length ? `${lines.join('\n')}\n` : '';
}

/** The learned elements as `nft -j list set` shows them: port -> { family, address, expires in ms }. */
export function parseLearnedJson(text: string, set: 'learned_ip4' | 'learned_ip6'): { vif: string; address: string; expiresMs: number | null }[] {
  const out: { vif: string; address: string; expiresMs: number | null }[] = [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return out;
  }
  const items = (parsed as { nftables?: unknown[] }).nftables ?? [];
  for (const item of items) {
    const s = (item as { set?: { name?: unknown; elem?: unknown[] } }).set;
    if (!s || s.name !== set || !Array.isArray(s.elem)) continue;
    for (const e of s.elem) {
      const wrapped = (e as { elem?: { val?: unknown; expires?: unknown } }).elem;
      const val = wrapped ? wrapped.val : e;
      const concat = (val as { concat?: unknown[] }).concat;
      if (!Array.isArray(concat) || concat.length !== 2 || typeof concat[0] !== 'string' || typeof concat[1] !== 'string') continue;
      const expires = wrapped && typeof wrapped.expires === 'number' ? wrapped.expires * 1000 : null;
      out.push({ address: concat[0], vif: concat[1], expiresMs: expires });
    }
  }
  return out;
}
