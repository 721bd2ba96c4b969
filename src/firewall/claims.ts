/**
 * The identity guard (pure, backend-neutral): while a guest is attached, its MAC and its host
 * addresses are accepted as a source only on its own ports. A frame from any other port (the
 * uplink, dom0's port, another guest) that carries one (as the Ethernet or IP source, the sender
 * of an ARP, the target of a neighbour advertisement) is dropped before the bridge learns its
 * source: a LAN host can neither move a guest's forwarding entry, nor poison a neighbour cache
 * with its address, nor prime conntrack with a datagram "from" the guest.
 *
 * What is guarded: the MAC when MAC anti-spoofing is on; host addresses (/32, /128) of a family
 * whose anti-spoofing is on, and the EUI-64 link-local of the MAC. A prefix is not a guest's
 * identity (it says which addresses the guest may use, and may cover the LAN itself). Nothing is
 * guarded while a live migration is in flight (the guest runs elsewhere: its frames legitimately
 * come in through the uplink), nor with `identity_guard: false`.
 *
 * Several ports may own the same key: an HVM guest's vif and its emulated NIC (`-emu`), a stub
 * domain's vif and its guest's. The guard's structures are built from every member's claims.
 */
import { eui64LinkLocal, isIfName, parseCidr, parseMac, type IfName } from '../net/index.js';
import type { Claims, ResolvedVif } from './model.js';

export type ClaimKind = keyof Claims;
export const CLAIM_KINDS: readonly ClaimKind[] = ['mac', 'ipv4', 'ipv6'];

export const emptyClaims = (): Claims => ({ mac: [], ipv4: [], ipv6: [] });
export const hasClaims = (c: Claims | undefined): c is Claims => c !== undefined && CLAIM_KINDS.some((k) => c[k].length > 0);

const sortedUnique = (xs: readonly string[]): string[] => [...new Set(xs)].sort();

/** What this vif's ports alone may carry (undefined: nothing guarded); addresses as bare text. */
export function claimsOf(v: ResolvedVif): Claims | undefined {
  if (!v.identityGuard || v.elsewhere) return undefined;
  const c = emptyClaims();
  if (v.mac && v.antispoof.mac) c.mac.push(v.mac);
  if (v.antispoof.ipv4) c.ipv4.push(...v.ipv4.filter((a) => a.len === 32).map((a) => a.addr));
  if (v.antispoof.ipv6) {
    c.ipv6.push(...v.ipv6.filter((a) => a.len === 128).map((a) => a.addr));
    if (v.mac) c.ipv6.push(eui64LinkLocal(v.mac).addr);
  }
  const out: Claims = { mac: sortedUnique(c.mac), ipv4: sortedUnique(c.ipv4), ipv6: sortedUnique(c.ipv6) };
  return hasClaims(out) ? out : undefined;
}

/** Claims read back from a state file (hostile until parsed): canonical texts only. */
export function parseClaims(raw: unknown): Claims | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  const list = (k: ClaimKind, ok: (s: string) => boolean): string[] | undefined => {
    const v = r[k];
    if (!Array.isArray(v) || !v.every((x): x is string => typeof x === 'string' && ok(x))) return undefined;
    return sortedUnique(v);
  };
  const canonical = (parse: (s: string) => string) => (s: string): boolean => {
    try {
      return parse(s) === s;
    } catch {
      return false;
    }
  };
  const host = (family: 'ipv4' | 'ipv6') => canonical((s) => {
    const c = parseCidr(s, 'address', { family });
    if (c.len !== (family === 'ipv4' ? 32 : 128)) throw new Error('not a host address');
    return c.addr;
  });
  const mac = list('mac', canonical((s) => parseMac(s)));
  const ipv4 = list('ipv4', host('ipv4'));
  const ipv6 = list('ipv6', host('ipv6'));
  if (!mac || !ipv4 || !ipv6) return undefined;
  const out = { mac, ipv4, ipv6 };
  return hasClaims(out) ? out : undefined;
}

const hex2 = (b: number): string => b.toString(16).padStart(2, '0');

/**
 * Texts computed once per key (and per trie prefix, guard-xtables.ts): a hook compiles every
 * guest's guard on each commit, and a daemon keeps compiling the same keys. Bounded: dropped whole past a size no host
 * reaches (keys come and go with guests).
 */
const memo = new Map<string, string>();
export function memoized(key: string, make: () => string): string {
  let v = memo.get(key);
  if (v === undefined) {
    if (memo.size > 200_000) memo.clear();
    v = make();
    memo.set(key, v);
  }
  return v;
}

/** The 16 bytes of canonical IPv6 text (inet_ntop's form, as claims hold it), without a parser. */
function v6Bytes(text: string): number[] {
  const words = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
        out.push((a << 8) | b, (c << 8) | d);
      } else out.push(Number.parseInt(g, 16));
    }
    return out;
  };
  const gap = text.indexOf('::');
  const all = gap < 0 ? words(text) : (() => {
    const head = words(text.slice(0, gap));
    const tail = words(text.slice(gap + 2));
    return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  })();
  return all.flatMap((w) => [w >> 8, w & 255]);
}

/** Key text (a MAC, an address) as hex digits, the trie's alphabet. */
export function keyDigits(kind: ClaimKind, key: string): string {
  return memoized(`k ${key}`, () => (kind === 'mac' ? key.replace(/:/g, '') : (kind === 'ipv4' ? key.split('.').map(Number) : v6Bytes(key)).map(hex2).join('')));
}

/** Per kind, every claimed key and the ports that own it (sorted, deterministic). */
export function claimOwners(members: readonly { name: IfName; claims?: Claims | undefined }[]): Record<ClaimKind, Map<string, IfName[]>> {
  const out = { mac: new Map<string, IfName[]>(), ipv4: new Map<string, IfName[]>(), ipv6: new Map<string, IfName[]>() };
  for (const m of [...members].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (!m.claims || !isIfName(m.name)) continue;
    for (const k of CLAIM_KINDS) {
      for (const key of m.claims[k]) {
        const owners = out[k].get(key);
        if (owners) {
          if (!owners.includes(m.name)) owners.push(m.name);
        } else out[k].set(key, [m.name]);
      }
    }
  }
  for (const k of CLAIM_KINDS) out[k] = new Map([...out[k]].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return out;
}

/**
 * Keys owned by ports of different domains that are not a guest and its own stub domain or
 * emulated NIC: two guests configured with one MAC or address can take each other's place (the
 * guard keeps the rest of the bridge out). For `status` and `plan`.
 */
export function sharedClaims(members: readonly { name: IfName; domid?: number | undefined; target?: number | undefined; claims?: Claims | undefined }[]): string[] {
  const domainOf = new Map(members.map((m) => [m.name, m.target ?? m.domid]));
  const out: string[] = [];
  const owners = claimOwners(members);
  for (const k of CLAIM_KINDS) {
    for (const [key, ports] of owners[k]) {
      const domains = new Set(ports.map((p) => domainOf.get(p) ?? p));
      if (domains.size > 1) out.push(`${k === 'mac' ? 'MAC' : k === 'ipv4' ? 'IPv4 address' : 'IPv6 address'} ${key} belongs to ${ports.join(' and ')}: each can take the other's place`);
    }
  }
  return out;
}
