/**
 * `Cidr`: an IPv4 or IPv6 address or prefix in canonical text, exactly as iptables-save,
 * ip6tables-save and ebtables-save print it back (glibc's inet_ntop), so desired and live rules
 * compare equal and every plan converges.
 *
 * Strict syntax: IPv4 only as four decimal parts without leading zeros (`10.1`, `167772161`,
 * `0xa.0.0.1` and `010.0.0.1`, which inet_aton reads as other addresses, are refused); IPv6 in
 * hex groups, without zone ids (`%eth0`) or embedded IPv4; prefix lengths in plain decimal. A
 * prefix may not have host bits set, and `/0` (any address) is refused: as an anti-spoofing
 * address it would allow everything, and `*-save` omits it, so it would never converge.
 */
import ipaddr from 'ipaddr.js';
import { InvalidValue } from './invalid.js';

export type IpFamily = 'ipv4' | 'ipv6';

declare const cidrBrand: unique symbol;
export interface Cidr {
  readonly family: IpFamily;
  /** Canonical address text (inet_ntop). */
  readonly addr: string;
  readonly len: number;
  readonly [cidrBrand]: true;
}

const v4Part = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const v4Pattern = new RegExp(`^${v4Part}(\\.${v4Part}){3}$`);

function v4Bytes(text: string): number[] | undefined {
  return v4Pattern.test(text) ? text.split('.').map(Number) : undefined;
}

function v6Bytes(text: string): number[] | undefined {
  if (text.length > 39 || !/^[0-9A-Fa-f:]+$/.test(text) || !ipaddr.IPv6.isValid(text)) return undefined;
  return ipaddr.IPv6.parse(text).toByteArray();
}

/** IPv6 text as glibc's inet_ntop writes it (what ip6tables-save prints). */
export function inetNtop6(bytes: readonly number[]): string {
  const words = Array.from({ length: 8 }, (_, i) => (bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  let best = { base: -1, len: 0 };
  let cur = { base: -1, len: 0 };
  for (let i = 0; i < 8; i++) {
    if (words[i] === 0) {
      cur = cur.base === -1 ? { base: i, len: 1 } : { base: cur.base, len: cur.len + 1 };
    } else if (cur.base !== -1) {
      if (best.base === -1 || cur.len > best.len) best = cur;
      cur = { base: -1, len: 0 };
    }
  }
  if (cur.base !== -1 && (best.base === -1 || cur.len > best.len)) best = cur;
  if (best.base !== -1 && best.len < 2) best = { base: -1, len: 0 };
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (best.base !== -1 && i >= best.base && i < best.base + best.len) {
      if (i === best.base) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && best.base === 0 && (best.len === 6 || (best.len === 5 && words[5] === 0xffff))) {
      out += bytes.slice(12, 16).join('.');
      return out;
    }
    out += words[i]!.toString(16);
  }
  if (best.base !== -1 && best.base + best.len === 8) out += ':';
  return out;
}

function textOf(family: IpFamily, bytes: readonly number[]): string {
  return family === 'ipv4' ? bytes.join('.') : inetNtop6(bytes);
}

function masked(bytes: readonly number[], len: number): number[] {
  return bytes.map((b, i) => {
    const bits = Math.max(0, Math.min(8, len - 8 * i));
    return b & ((0xff << (8 - bits)) & 0xff);
  });
}

export interface CidrOptions {
  /** Only this family. */
  family?: IpFamily;
  /** Addresses a guest interface can own (refuses unspecified, loopback, multicast, broadcast). */
  guest?: boolean;
}

function make(family: IpFamily, bytes: number[], len: number): Cidr {
  return { family, addr: textOf(family, bytes), len } as Cidr;
}

/** Parses `ADDR` or `ADDR/LEN`; a bare address is a host prefix (/32, /128). */
export function parseCidr(raw: string, what = 'address', options: CidrOptions = {}): Cidr {
  const slash = raw.indexOf('/');
  const addrText = slash === -1 ? raw : raw.slice(0, slash);
  const lenText = slash === -1 ? undefined : raw.slice(slash + 1);
  const b4 = v4Bytes(addrText);
  const b6 = b4 ? undefined : v6Bytes(addrText);
  const bytes = b4 ?? b6;
  const kind = options.family === 'ipv4' ? 'an IPv4' : options.family === 'ipv6' ? 'an IPv6' : 'an IPv4 or IPv6';
  if (!bytes) {
    const hint = addrText.includes('%') ? ' (zone ids like %eth0 are not allowed)' : /^[0-9a-fA-FxX.]+$/.test(addrText) && !addrText.includes(':') ? ' (write IPv4 as four decimal parts, like 192.168.0.5)' : '';
    throw new InvalidValue(what, raw, `is not ${kind} address${hint}`);
  }
  const family: IpFamily = b4 ? 'ipv4' : 'ipv6';
  if (options.family && options.family !== family) throw new InvalidValue(what, raw, `is not ${kind} address`);
  const max = family === 'ipv4' ? 32 : 128;
  let len = max;
  if (lenText !== undefined) {
    if (!/^(0|[1-9]\d{0,2})$/.test(lenText) || Number(lenText) > max) throw new InvalidValue(what, raw, `has a bad prefix length (0-${max})`);
    len = Number(lenText);
  }
  if (len === 0) throw new InvalidValue(what, raw, 'is /0, which means any address: it would make the rule a no-op (to allow any address, leave the list out)');
  const net = masked(bytes, len);
  if (net.some((b, i) => b !== bytes[i])) {
    throw new InvalidValue(what, raw, `has host bits set; write the network ${textOf(family, net)}/${len} or the single address ${textOf(family, bytes)}`);
  }
  if (options.guest) {
    const bad = guestAddressProblem(family, bytes);
    if (bad) throw new InvalidValue(what, raw, `is ${bad}, not an address a guest interface can own`);
  }
  return make(family, bytes, len);
}

function guestAddressProblem(family: IpFamily, b: readonly number[]): string | undefined {
  if (family === 'ipv4') {
    if (b[0] === 0) return 'in 0.0.0.0/8 (this network)';
    if (b[0] === 127) return 'a loopback address';
    if (b[0]! >= 224 && b[0]! <= 239) return 'a multicast address';
    if (b.every((x) => x === 255)) return 'the broadcast address';
    return undefined;
  }
  if (b.every((x) => x === 0)) return 'the unspecified address';
  if (b.slice(0, 15).every((x) => x === 0) && b[15] === 1) return 'the loopback address';
  if (b[0] === 0xff) return 'a multicast address';
  if (b.slice(0, 10).every((x) => x === 0) && ((b[10] === 0xff && b[11] === 0xff) || (b[10] === 0 && b[11] === 0))) return 'an IPv4-mapped or IPv4-compatible address';
  return undefined;
}

export const cidrText = (c: Cidr): string => `${c.addr}/${c.len}`;

/** The bytes of the address part. */
export function cidrBytes(c: Cidr): number[] {
  return c.family === 'ipv4' ? c.addr.split('.').map(Number) : ipaddr.IPv6.parse(c.addr).toByteArray();
}

/** Whether two prefixes share an address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const len = Math.min(a.len, b.len);
  const x = masked(cidrBytes(a), len);
  const y = masked(cidrBytes(b), len);
  return x.every((v, i) => v === y[i]);
}

/** A sortable key: family, then address bytes, then length (for O(n log n) overlap checks). */
export function cidrSortKey(c: Cidr): string {
  return `${c.family === 'ipv4' ? 4 : 6}:${cidrBytes(c).map((x) => x.toString(16).padStart(2, '0')).join('')}:${String(c.len).padStart(3, '0')}`;
}

/** Xen's `ip` node: guest addresses separated by spaces (or commas). */
export function parseGuestAddressList(raw: string, what = 'ip'): Cidr[] {
  const out: Cidr[] = [];
  for (const word of raw.split(/[ ,]+/).filter((w) => w.length > 0)) out.push(parseCidr(word, what, { guest: true }));
  if (out.length === 0 && raw.length > 0 && raw.trim().length > 0) throw new InvalidValue(what, raw, 'holds no address');
  return out;
}

/** A host address (bare IP, no prefix), as a Cidr of full length. */
export function hostCidr(family: IpFamily, bytes: readonly number[]): Cidr {
  return make(family, [...bytes], family === 'ipv4' ? 32 : 128);
}
