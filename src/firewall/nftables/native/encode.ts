/**
 * nf_tables expressions as netlink attributes (pure): NFTA_RULE_EXPRESSIONS's list, each element
 * an expression's name and its data (include/uapi/linux/netfilter/nf_tables.h). Numbers are big
 * endian, as nf_tables takes them; nested attributes carry NLA_F_NESTED, as libmnl writes them.
 */
import { nfnlAttribute } from '../../../bridge/nl/nfnl.js';
import { registerNumber, type NftExpr, type SetRef } from './expr.js';

const NLA_F_NESTED = 0x8000;

export const attr = (type: number, value: Buffer): Buffer => nfnlAttribute(type, value);
export const nest = (type: number, ...children: Buffer[]): Buffer => nfnlAttribute(type | NLA_F_NESTED, Buffer.concat(children));
export const u32 = (type: number, v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return attr(type, b);
};
export const s32 = (type: number, v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v, 0);
  return attr(type, b);
};
export const u64 = (type: number, v: bigint | number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v), 0);
  return attr(type, b);
};
export const str = (type: number, s: string): Buffer => attr(type, Buffer.from(`${s}\0`, 'utf8'));
const u8 = (type: number, v: number): Buffer => attr(type, Buffer.from([v]));
const u16 = (type: number, v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v, 0);
  return attr(type, b);
};

/** NFTA_DATA_VALUE inside the given attribute. */
export const dataValue = (type: number, value: Buffer): Buffer => nest(type, attr(1, value));

const VERDICT_CODES = { drop: 0, accept: 1, return: -5, jump: -3, goto: -4 } as const;

/** NFTA_DATA_VERDICT inside the given attribute: NFTA_VERDICT_CODE, and the chain of a jump or goto. */
export function dataVerdict(type: number, v: Extract<NftExpr, { type: 'verdict' }>['verdict']): Buffer {
  return nest(type, nest(2, s32(1, VERDICT_CODES[v.code]), ...('chain' in v ? [str(2, v.chain)] : [])));
}

const BASES = { ll: 0, network: 1, transport: 2 } as const;
const META_KEYS = { protocol: 1, mark: 3, iifname: 6, oifname: 7, l4proto: 16 } as const;
const CMP_OPS = { eq: 0, neq: 1, lte: 3, gte: 5 } as const;
const reg = (type: number, r: number | 'verdict'): Buffer => u32(type, registerNumber(r));

/** The name of the set a lookup reads, and its batch id when it is one of the rule's own. */
export type SetNaming = (ref: SetRef) => { name: string; id?: number };

function body(e: NftExpr, setName: SetNaming): [string, Buffer[]] {
  switch (e.type) {
    case 'payload':
      return ['payload', [reg(1, e.dreg), u32(2, BASES[e.base]), u32(3, e.offset), u32(4, e.len)]];
    case 'meta':
      return ['meta', [reg(1, e.dreg), u32(2, META_KEYS[e.key])]];
    case 'metaSet':
      return ['meta', [u32(2, META_KEYS[e.key]), reg(3, e.sreg)]];
    case 'ct':
      return ['ct', [reg(1, e.dreg), u32(2, 0)]];
    case 'exthdr':
      return ['exthdr', [reg(1, e.dreg), u8(2, e.header), u32(3, e.offset), u32(4, e.len)]];
    case 'cmp':
      return ['cmp', [reg(1, e.sreg), u32(2, CMP_OPS[e.op]), dataValue(3, e.data)]];
    case 'range':
      return ['range', [reg(1, e.sreg), u32(2, CMP_OPS[e.op]), dataValue(3, e.from), dataValue(4, e.to)]];
    case 'bitwise':
      return ['bitwise', [reg(1, e.sreg), reg(2, e.dreg), u32(3, e.mask.length), dataValue(4, e.mask), dataValue(5, e.xor)]];
    case 'lookup': {
      const s = setName(e.set);
      return ['lookup', [str(1, s.name), reg(2, e.sreg), ...(e.dreg !== undefined ? [reg(3, e.dreg)] : []), ...(s.id !== undefined ? [u32(4, s.id)] : []), ...(e.invert ? [u32(5, 1)] : [])]];
    }
    case 'dynset': {
      const inner = e.exprs.map((x) => encodeExpr(x, setName));
      return ['dynset', [str(1, e.set), u32(3, 0), reg(4, e.sreg), ...(e.timeoutMs !== undefined ? [u64(6, e.timeoutMs)] : []), ...(inner.length === 1 ? [nest(7, ...inner.map((x) => x.subarray(4)))] : inner.length > 1 ? [nest(10, ...inner)] : [])]];
    }
    case 'counter':
      return ['counter', [u64(1, 0), u64(2, 0)]];
    case 'limit':
      return ['limit', [u64(1, e.rate), u64(2, e.unitSeconds), u32(3, e.burst), u32(4, 0), u32(5, 0)]];
    case 'log':
      return ['log', [...(e.group !== undefined ? [u16(1, e.group)] : []), ...(e.prefix !== undefined ? [str(2, e.prefix)] : [])]];
    case 'verdict':
      return ['immediate', [reg(1, 'verdict'), dataVerdict(2, e.verdict)]];
  }
}

/** One expression as an NFTA_LIST_ELEM: NFTA_EXPR_NAME and NFTA_EXPR_DATA. */
export function encodeExpr(e: NftExpr, setName: SetNaming): Buffer {
  const [name, attrs] = body(e, setName);
  return nest(1, str(1, name), nest(2, ...attrs));
}

/** NFTA_RULE_EXPRESSIONS's value: the list of a rule's expressions. */
export function encodeExprs(exprs: readonly NftExpr[], setName: SetNaming): Buffer {
  return Buffer.concat(exprs.map((e) => encodeExpr(e, setName)));
}
