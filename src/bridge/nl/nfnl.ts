/**
 * nfnetlink message bodies (pure): a `struct nfgenmsg` (4 bytes), then attributes, each a length
 * (u16, little endian, header included), a type (u16; the top two bits flags: nested, network
 * byte order) and a value padded to 4 bytes. A length that runs past the body ends the reading.
 */
export interface NfnlAttribute {
  type: number;
  value: Buffer;
}

/**
 * Calls `fn(type, offset, length)` for each attribute of `buf` between `start` and `end`, the
 * value's place given as offsets, not as a Buffer: a link dump has some 60 attributes per link,
 * and a Buffer view for each was most of its parse (a length that runs past the end ends the walk).
 */
export function walkAttributes(buf: Buffer, start: number, end: number, fn: (type: number, offset: number, length: number) => void): void {
  for (let off = start; off + 4 <= end; ) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > end) break;
    fn(buf.readUInt16LE(off + 2) & 0x3fff, off + 4, len - 4);
    off += (len + 3) & ~3;
  }
}

/** Calls `fn(type, value)` for each attribute of a buffer from `start`, in order (a length that runs past the end ends the walk). */
export function forEachAttribute(buf: Buffer, fn: (type: number, value: Buffer) => void, start = 0): void {
  walkAttributes(buf, start, buf.length, (type, offset, length) => fn(type, buf.subarray(offset, offset + length)));
}

/** The attributes of a buffer from `start`, in order (a type may come more than once: lists). */
export function nfnlAttributeList(buf: Buffer, start = 0): NfnlAttribute[] {
  const out: NfnlAttribute[] = [];
  forEachAttribute(buf, (type, value) => out.push({ type, value }), start);
  return out;
}

/** The attributes of a message body (after its nfgenmsg), by type (the last of each). */
export function nfnlAttributes(body: Buffer): Map<number, Buffer> {
  return new Map(nfnlAttributeList(body, 4).map((a) => [a.type, a.value]));
}

/** One attribute, header included and padded to 4 bytes (pure). */
export function nfnlAttribute(type: number, value: Buffer): Buffer {
  const len = 4 + value.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  value.copy(b, 4);
  return b;
}

/**
 * One record of nftables userdata (pure): type-length-value records of one byte each (libnftnl's
 * udata); the value of the first of `type`, or undefined (a record running past the end ends it).
 */
export function userdataRecord(b: Buffer | undefined, type: number): Buffer | undefined {
  if (!b) return undefined;
  for (let off = 0; off + 2 <= b.length; ) {
    const len = b[off + 1]!;
    if (off + 2 + len > b.length) return undefined;
    if (b[off] === type) return b.subarray(off + 2, off + 2 + len);
    off += 2 + len;
  }
  return undefined;
}
