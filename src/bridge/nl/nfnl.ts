/**
 * nfnetlink message bodies (pure): a `struct nfgenmsg` (4 bytes), then attributes, each a length
 * (u16, little endian, header included), a type (u16; the top bit a flag) and a value padded to
 * 4 bytes. A length that runs past the body ends the reading there.
 */
export function nfnlAttributes(body: Buffer): Map<number, Buffer> {
  const attrs = new Map<number, Buffer>();
  for (let off = 4; off + 4 <= body.length; ) {
    const len = body.readUInt16LE(off);
    if (len < 4 || off + len > body.length) break;
    attrs.set(body.readUInt16LE(off + 2) & 0x7fff, body.subarray(off + 4, off + len));
    off += (len + 3) & ~3;
  }
  return attrs;
}
