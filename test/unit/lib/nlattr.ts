/** Netlink attributes made by hand for unit tests: one attribute (header, value, padding), a big-endian u32. */
export const nlAttr = (type: number, value: Buffer): Buffer => {
  const b = Buffer.alloc((4 + value.length + 3) & ~3);
  b.writeUInt16LE(4 + value.length, 0);
  b.writeUInt16LE(type, 2);
  value.copy(b, 4);
  return b;
};

export const u32be = (v: number): Buffer => Buffer.from([v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255]);
