/**
 * nf_tables messages' attributes, written into one growing buffer (pure): a 1000-guest change is
 * 55,000 messages and 2 million attributes, too many for a buffer each. Numbers are big endian,
 * as nf_tables takes them; nested attributes carry NLA_F_NESTED, as libmnl writes them
 * (include/uapi/linux/netfilter/nf_tables.h for the attribute numbers).
 */
import { NFT_META, VERDICT } from '../../../bridge/nl/nft-numbers.js';
import { registerNumber, type NftExpr, type SetRef, type Verdict } from './expr.js';

const NLA_F_NESTED = 0x8000;

export class AttrWriter {
  private buf = Buffer.allocUnsafe(64 * 1024);
  private len = 0;

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  /** Bytes as they are (a message's nfgenmsg). */
  raw(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  private header(type: number, valueLen: number): void {
    this.room(4 + valueLen + 3);
    this.buf.writeUInt16LE(4 + valueLen, this.len);
    this.buf.writeUInt16LE(type, this.len + 2);
    this.len += 4;
  }

  private pad(): void {
    while (this.len % 4 !== 0) this.buf[this.len++] = 0;
  }

  bytes(type: number, value: Uint8Array): this {
    this.header(type, value.length);
    this.buf.set(value, this.len);
    this.len += value.length;
    this.pad();
    return this;
  }

  u8(type: number, v: number): this {
    this.header(type, 1);
    this.buf[this.len++] = v;
    this.pad();
    return this;
  }

  u16(type: number, v: number): this {
    this.header(type, 2);
    this.buf.writeUInt16BE(v, this.len);
    this.len += 2;
    this.pad();
    return this;
  }

  u32(type: number, v: number): this {
    this.header(type, 4);
    this.buf.writeUInt32BE(v >>> 0, this.len);
    this.len += 4;
    return this;
  }

  s32(type: number, v: number): this {
    this.header(type, 4);
    this.buf.writeInt32BE(v, this.len);
    this.len += 4;
    return this;
  }

  u64(type: number, v: bigint | number): this {
    this.header(type, 8);
    this.buf.writeBigUInt64BE(BigInt(v), this.len);
    this.len += 8;
    return this;
  }

  /** A NUL-terminated string. */
  str(type: number, s: string): this {
    const n = Buffer.byteLength(s);
    this.header(type, n + 1);
    this.buf.write(s, this.len, 'utf8');
    this.buf[this.len + n] = 0;
    this.len += n + 1;
    this.pad();
    return this;
  }

  /** A nested attribute: what `children` writes, its length filled in after. */
  nest(type: number, children: () => void): this {
    this.room(4);
    const at = this.len;
    this.buf.writeUInt16LE(type | NLA_F_NESTED, at + 2);
    this.len += 4;
    children();
    this.buf.writeUInt16LE(this.len - at, at);
    return this;
  }

  /** What was written, as a buffer of its own; the writer starts again empty. */
  take(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.len));
    this.len = 0;
    return out;
  }
}

/** NFTA_DATA_VALUE inside the given attribute. */
export const dataValue = (w: AttrWriter, type: number, value: Uint8Array): AttrWriter => w.nest(type, () => w.bytes(1, value));


/** NFTA_DATA_VERDICT inside the given attribute: NFTA_VERDICT_CODE, and the chain of a jump or goto. */
export function dataVerdict(w: AttrWriter, type: number, v: Verdict): AttrWriter {
  return w.nest(type, () =>
    w.nest(2, () => {
      w.s32(1, VERDICT[v.code]);
      if ('chain' in v) w.str(2, v.chain);
    }),
  );
}

const BASES = { ll: 0, network: 1, transport: 2 } as const;
const CMP_OPS = { eq: 0, neq: 1, lte: 3, gte: 5 } as const;

/** The name of the set a lookup reads, and its batch id when it is one of the rule's own. */
export type SetNaming = (ref: SetRef) => { name: string; id?: number };

const NAMES: Record<NftExpr['type'], string> = { payload: 'payload', meta: 'meta', metaSet: 'meta', ct: 'ct', exthdr: 'exthdr', cmp: 'cmp', range: 'range', bitwise: 'bitwise', lookup: 'lookup', dynset: 'dynset', counter: 'counter', limit: 'limit', log: 'log', verdict: 'immediate' };

/** An expression's data (NFTA_<EXPR>_* attributes). */
function writeData(w: AttrWriter, e: NftExpr, setName: SetNaming): void {
  const reg = (type: number, r: number | 'verdict'): AttrWriter => w.u32(type, registerNumber(r));
  switch (e.type) {
    case 'payload':
      reg(1, e.dreg).u32(2, BASES[e.base]).u32(3, e.offset).u32(4, e.len);
      return;
    case 'meta':
      reg(1, e.dreg).u32(2, NFT_META[e.key]);
      return;
    case 'metaSet':
      w.u32(2, NFT_META[e.key]);
      reg(3, e.sreg);
      return;
    case 'ct':
      reg(1, e.dreg).u32(2, 0);
      return;
    case 'exthdr':
      reg(1, e.dreg).u8(2, e.header).u32(3, e.offset).u32(4, e.len);
      return;
    case 'cmp':
      reg(1, e.sreg).u32(2, CMP_OPS[e.op]);
      dataValue(w, 3, e.data);
      return;
    case 'range':
      reg(1, e.sreg).u32(2, CMP_OPS[e.op]);
      dataValue(w, 3, e.from);
      dataValue(w, 4, e.to);
      return;
    case 'bitwise':
      reg(1, e.sreg);
      reg(2, e.dreg).u32(3, e.mask.length);
      dataValue(w, 4, e.mask);
      dataValue(w, 5, e.xor);
      return;
    case 'lookup': {
      const s = setName(e.set);
      w.str(1, s.name);
      reg(2, e.sreg);
      if (e.dreg !== undefined) reg(3, e.dreg);
      if (s.id !== undefined) w.u32(4, s.id);
      if (e.invert) w.u32(5, 1);
      return;
    }
    case 'dynset':
      w.str(1, e.set).u32(3, 0);
      reg(4, e.sreg);
      if (e.timeoutMs !== undefined) w.u64(6, e.timeoutMs);
      // One expression is NFTA_DYNSET_EXPR (its name and data), more are NFTA_DYNSET_EXPRESSIONS.
      if (e.exprs.length === 1) w.nest(7, () => writeNamed(w, e.exprs[0]!, setName));
      else if (e.exprs.length > 1) w.nest(10, () => e.exprs.forEach((x) => writeExpr(w, x, setName)));
      return;
    case 'counter':
      w.u64(1, e.bytes ?? 0).u64(2, e.packets ?? 0);
      return;
    case 'limit':
      w.u64(1, e.rate).u64(2, e.unitSeconds).u32(3, e.burst).u32(4, 0).u32(5, 0);
      return;
    case 'log':
      if (e.group !== undefined) w.u16(1, e.group);
      if (e.prefix !== undefined) w.str(2, e.prefix);
      return;
    case 'verdict':
      reg(1, 'verdict');
      dataVerdict(w, 2, e.verdict);
      return;
  }
}

/** NFTA_EXPR_NAME and NFTA_EXPR_DATA. */
function writeNamed(w: AttrWriter, e: NftExpr, setName: SetNaming): void {
  w.str(1, NAMES[e.type]).nest(2, () => writeData(w, e, setName));
}

/** One expression as an NFTA_LIST_ELEM. */
export function writeExpr(w: AttrWriter, e: NftExpr, setName: SetNaming): void {
  w.nest(1, () => writeNamed(w, e, setName));
}
