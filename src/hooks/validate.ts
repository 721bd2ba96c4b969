/** Validation of values the toolstack hands a hook (argv, env, xenstore) before any use. */
import ipaddr from 'ipaddr.js';
import { usageError } from '../sys/errors.js';

const IFNAMSIZ = 16;

export function isIfname(name: string): boolean {
  return name.length > 0 && name.length < IFNAMSIZ && /^[A-Za-z0-9_][A-Za-z0-9_.:-]*$/.test(name) && name !== '.' && name !== '..';
}

export function checkIfname(name: string, what: string): string {
  if (!isIfname(name)) throw usageError(`${what} ${JSON.stringify(name)} is not a valid interface name (1-15 of A-Z a-z 0-9 _ . : -)`);
  return name;
}

/** A unicast MAC in lower case; rejects anything else. */
export function checkMac(mac: string, what: string): string {
  const m = mac.trim().toLowerCase();
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(m)) throw usageError(`${what} ${JSON.stringify(mac)} is not a MAC address like 00:16:3e:12:34:56`);
  if ((Number.parseInt(m.slice(0, 2), 16) & 1) === 1) throw usageError(`${what} ${m} is a multicast MAC; a guest needs a unicast one`);
  return m;
}

export interface GuestAddress {
  family: 'ipv4' | 'ipv6';
  address: string;
  prefixLen: number;
}

/** Xen's `ip` value: addresses (optionally with /prefix) separated by spaces (or commas). */
export function parseIpList(value: string, what: string): GuestAddress[] {
  const out: GuestAddress[] = [];
  for (const word of value.split(/[\s,]+/).filter((w) => w.length > 0)) {
    const [addr, len, extra] = word.split('/');
    if (extra !== undefined || addr === undefined || !ipaddr.isValid(addr)) throw usageError(`${what}: ${JSON.stringify(word)} is not an IPv4 or IPv6 address`);
    const parsed = ipaddr.parse(addr);
    const family = parsed.kind() === 'ipv4' ? 'ipv4' : 'ipv6';
    const max = family === 'ipv4' ? 32 : 128;
    const prefixLen = len === undefined ? max : Number(len);
    if (!/^\d+$/.test(len ?? String(max)) || prefixLen > max) throw usageError(`${what}: ${JSON.stringify(word)} has a bad prefix length`);
    out.push({ family, address: parsed.toString(), prefixLen });
  }
  return out;
}

export function checkMtu(value: string, what: string): number {
  if (!/^\d{2,5}$/.test(value.trim())) throw usageError(`${what} ${JSON.stringify(value)} is not a number`);
  const mtu = Number(value.trim());
  if (mtu < 68 || mtu > 65535) throw usageError(`${what} ${mtu} is outside 68-65535`);
  return mtu;
}
