/** Values as the kernel compares them (pure): the bytes of an interface name, a MAC, an address, a number. */
import { cidrBytes, parseCidr, parseMac } from '../../../net/index.js';

/**
 * `"vif1.0"` -> 16 bytes, the name NUL-padded (IFNAMSIZ). Refused as nft refuses or reads them
 * otherwise: the empty name, and names with `*` (nft's wildcard) or a backslash (its escape).
 */
export function ifnameBytes(quoted: string): Buffer {
  const m = /^"([^"*\\]+)"$/.exec(quoted);
  if (!m || Buffer.byteLength(m[1]!) > 15) throw new Error(`not an interface name: ${quoted}`);
  const b = Buffer.alloc(16);
  b.write(m[1]!, 'utf8');
  return b;
}

export const etherBytes = (text: string): Buffer => Buffer.from(parseMac(text).split(':').map((h) => Number.parseInt(h, 16)));

/** An address, or a prefix's address (its length is the caller's). */
export const addressBytes = (family: 'ipv4' | 'ipv6', text: string): Buffer => Buffer.from(cidrBytes(parseCidr(text, 'address', { family })));

/** A number in `len` bytes, most significant first; an error when it does not fit. */
export function bigEndian(n: bigint | number, len: number): Buffer {
  const b = Buffer.alloc(len);
  let v = BigInt(n);
  for (let i = len - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  if (v !== 0n) throw new Error(`${n} does not fit in ${len} bytes`);
  return b;
}
