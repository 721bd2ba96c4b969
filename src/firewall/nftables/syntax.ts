/**
 * nft values written the way `nft list` prints them, so that live and desired rules compare as
 * text: symbolic ethertypes and ICMP types, anonymous sets sorted (and, when they hold a range or
 * prefix, merged into intervals, as nft merges them), hexadecimal without leading zeros.
 */
import { cidrBytes, hostCidr, type Cidr, type IpFamily } from '../../net/index.js';
import { keyDigits, memoized } from '../claims.js';

export const ETHERTYPE_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [0x0800, 'ip'],
  [0x0806, 'arp'],
  [0x86dd, 'ip6'],
  [0x8100, '8021q'],
  [0x88a8, '8021ad'],
]);

export const ICMP_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [0, 'echo-reply'], [3, 'destination-unreachable'], [4, 'source-quench'], [5, 'redirect'], [8, 'echo-request'], [9, 'router-advertisement'],
  [10, 'router-solicitation'], [11, 'time-exceeded'], [12, 'parameter-problem'], [13, 'timestamp-request'], [14, 'timestamp-reply'],
  [15, 'info-request'], [16, 'info-reply'], [17, 'address-mask-request'], [18, 'address-mask-reply'],
]);

export const ICMPV6_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [1, 'destination-unreachable'], [2, 'packet-too-big'], [3, 'time-exceeded'], [4, 'parameter-problem'], [128, 'echo-request'], [129, 'echo-reply'],
  [130, 'mld-listener-query'], [131, 'mld-listener-report'], [132, 'mld-listener-done'], [133, 'nd-router-solicit'], [134, 'nd-router-advert'],
  [135, 'nd-neighbor-solicit'], [136, 'nd-neighbor-advert'], [137, 'nd-redirect'], [138, 'router-renumbering'], [141, 'ind-neighbor-solicit'],
  [142, 'ind-neighbor-advert'], [143, 'mld2-listener-report'],
]);

/** `{ a, b }` for several values, the bare value for one. */
function setOf(items: readonly string[]): string {
  return items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`;
}

function uniqueSorted(values: readonly number[]): number[] {
  return [...new Set(values)].sort((a, b) => a - b);
}

export function ethertypeText(t: number): string {
  return ETHERTYPE_NAMES.get(t) ?? `0x${t.toString(16).padStart(4, '0')}`;
}

export function ethertypes(values: readonly number[]): string {
  return setOf(uniqueSorted(values).map(ethertypeText));
}

export function icmpTypes(family: IpFamily, values: readonly number[]): string {
  const names = family === 'ipv4' ? ICMP_NAMES : ICMPV6_NAMES;
  return setOf(uniqueSorted(values).map((t) => names.get(t) ?? String(t)));
}

/** `0x` and the value in hexadecimal, as nft prints raw payload values. */
export function hex(n: bigint): string {
  return `0x${n.toString(16)}`;
}

/** Hex digits (a MAC's, an address's) as nft prints the raw value: `0x`, no leading zeros. */
export function rawHex(digits: string): string {
  return `0x${digits.toLowerCase().replace(/^0+(?=.)/, '')}`;
}

/** An IPv6 address as a raw 128-bit value (an NA's target read with `@th,64,128`). */
export const raw128 = (address: string): string => memoized(`r ${address}`, () => rawHex(keyDigits('ipv6', address)));

/** A mark value or mask (nft prints marks as 8 hex digits). */
export function mark32(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

interface Interval {
  lo: bigint;
  hi: bigint;
}

/**
 * An anonymous set: singletons stay as given (sorted, unique); once one element is a range,
 * nft stores intervals and merges overlapping and adjacent ones, and prints each as a single
 * value, a prefix (`printPrefix`) or `lo-hi`. Written already merged, so nft reads it back as is.
 */
function intervalSet(items: readonly Interval[], print: (v: bigint) => string, printPrefix?: (i: Interval) => string | undefined): string {
  const sorted = [...items].sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : a.hi < b.hi ? -1 : a.hi > b.hi ? 1 : 0));
  if (sorted.every((i) => i.lo === i.hi)) {
    const out: string[] = [];
    for (const i of sorted) if (out[out.length - 1] !== print(i.lo)) out.push(print(i.lo));
    return setOf(out);
  }
  const merged: Interval[] = [];
  for (const i of sorted) {
    const last = merged[merged.length - 1];
    if (last && i.lo <= last.hi + 1n) {
      if (i.hi > last.hi) last.hi = i.hi;
    } else {
      merged.push({ ...i });
    }
  }
  // What xennet writes is what nft reads back: a set merged down to one element is written bare
  // (nft would turn `{ x }` into `x`).
  return setOf(merged.map((i) => (i.lo === i.hi ? print(i.lo) : (printPrefix?.(i) ?? `${print(i.lo)}-${print(i.hi)}`))));
}

const familyBits = (f: IpFamily): number => (f === 'ipv4' ? 32 : 128);

function toBig(bytes: readonly number[]): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

function fromBig(family: IpFamily, n: bigint): number[] {
  const len = familyBits(family) / 8;
  const out = new Array<number>(len);
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

export function cidrInterval(c: Cidr): Interval {
  const bits = BigInt(familyBits(c.family) - c.len);
  const lo = (toBig(cidrBytes(c)) >> bits) << bits;
  return { lo, hi: lo + (1n << bits) - 1n };
}

const addrText = (family: IpFamily, n: bigint): string => hostCidr(family, fromBig(family, n)).addr;

/** Addresses and prefixes of one family, as nft prints them (`10.0.0.5`, `{ 10.0.0.5, 10.1.0.0/16 }`). */
export function addressSet(family: IpFamily, cidrs: readonly Cidr[]): string {
  const total = familyBits(family);
  const prefix = (i: Interval): string | undefined => {
    const size = i.hi - i.lo + 1n;
    if ((size & (size - 1n)) !== 0n || i.lo % size !== 0n) return undefined;
    return `${addrText(family, i.lo)}/${total - (size.toString(2).length - 1)}`;
  };
  return intervalSet(cidrs.map(cidrInterval), (v) => addrText(family, v), prefix);
}

/** Ports (`80`, `"8000-8080"`), as nft prints them. */
export function portSet(ports: readonly (number | string)[]): string {
  return intervalSet(
    ports.map((p) => {
      const [a, b] = String(p).split('-').map((x) => BigInt(x)) as [bigint, bigint | undefined];
      return { lo: a, hi: b ?? a };
    }),
    (v) => v.toString(),
  );
}

/**
 * "The target address of this neighbour advertisement is in `c`": the 16 bytes after the ICMPv6
 * header's first 8 (a raw transport-header match: `icmpv6 taddr` needs nft >= 1.0.9, and the
 * transport header is found past any extension headers either way).
 */
export function naTargetMatch(c: Cidr): string {
  const { lo } = cidrInterval(c);
  if (c.len === 128) return `@th,64,128 ${hex(lo)}`;
  const mask = ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - c.len)) - 1n);
  return `@th,64,128 & ${hex(mask)} == ${hex(lo)}`;
}
