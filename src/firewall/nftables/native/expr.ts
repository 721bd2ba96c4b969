/**
 * nf_tables expressions, typed, as xennet writes them to the kernel (pure): the register machine
 * a rule is for the kernel (load a field into a register, compare, look up a set, set a verdict).
 * `rule-parse.ts` makes them from the rule text xennet compiles (the text `nft list` prints, which
 * plan, status and the diff compare); `encode.ts` turns them into netlink attributes.
 *
 * Registers are counted in 32-bit words (word 0 is the first word of NFT_REG_1): a concatenation's
 * second key starts in the word after the first key's last.
 */
import type { NFT_META } from '../../../bridge/nl/nft-numbers.js';

export type PayloadBase = 'll' | 'network' | 'transport';
export type CmpOp = 'eq' | 'neq' | 'lte' | 'gte';
/** The meta keys xennet reads: NFT_META_PROTOCOL, _MARK, _IIFNAME, _OIFNAME, _L4PROTO. */
export type MetaKey = keyof typeof NFT_META;
/** A register: a 32-bit word index, or the verdict register. */
export type Register = number | 'verdict';

export type NftExpr =
  | { type: 'payload'; base: PayloadBase; offset: number; len: number; dreg: number }
  | { type: 'meta'; key: MetaKey; dreg: number }
  | { type: 'metaSet'; key: 'mark'; sreg: number }
  | { type: 'ct'; key: 'state'; dreg: number }
  /** An IPv6 extension header's field (`frag nexthdr`: header 44, offset 0, one byte). */
  | { type: 'exthdr'; header: number; offset: number; len: number; dreg: number }
  | { type: 'cmp'; op: CmpOp; sreg: number; data: Buffer }
  | { type: 'range'; op: 'eq' | 'neq'; sreg: number; from: Buffer; to: Buffer }
  | { type: 'bitwise'; sreg: number; dreg: number; mask: Buffer; xor: Buffer }
  /** A set by name, or the rule's anonymous set number `anon` (named and bound when written). */
  | { type: 'lookup'; sreg: number; set: SetRef; dreg?: Register; invert: boolean }
  | { type: 'dynset'; sreg: number; set: string; timeoutMs?: number; exprs: NftExpr[] }
  | { type: 'counter'; packets?: bigint; bytes?: bigint }
  | { type: 'limit'; rate: number; unitSeconds: number; burst: number }
  | { type: 'log'; prefix?: string; group?: number }
  | { type: 'verdict'; verdict: Verdict };

export type SetRef = { name: string } | { anon: number };

export type Verdict = { code: 'drop' | 'accept' | 'return' } | { code: 'jump' | 'goto'; chain: string };

/**
 * The data types of set keys (nft's datatype numbers, which the kernel keeps for nft to print
 * the elements with): only those xennet's sets use.
 */
export const DATATYPE = {
  verdict: 1,
  ipv4_addr: 7,
  ipv6_addr: 8,
  ether_addr: 9,
  ether_type: 10,
  inet_proto: 12,
  inet_service: 13,
  icmp_type: 14,
  icmpv6_type: 29,
  ifname: 41,
  integer: 4,
} as const;
export type DataTypeName = keyof typeof DATATYPE;

/** What a set's key is made of, as nft describes it in the set's userdata: a protocol field (nft's protocol and template numbers), a raw payload, a meta key. */
export type KeyOrigin = { payload: { desc: number; tmpl: number } } | { raw: { base: number; offset: number; len: number } } | { meta: number };

/** A set a rule carries with it (`{ a, b }`): constant, and an interval set when it holds ranges. */
export interface AnonymousSet {
  keyType: DataTypeName;
  keyLen: number;
  origin: KeyOrigin;
  interval: boolean;
  /** Its elements as the kernel takes them: a key, and whether it ends an interval (exclusive end). */
  elements: { key: Buffer; end: boolean }[];
}

export interface NativeRule {
  exprs: NftExpr[];
  sets: AnonymousSet[];
}

/** The register nft names a word with: NFT_REG_1..4 where a 128-bit register starts, else NFT_REG32_xx. */
export function registerNumber(r: Register): number {
  if (r === 'verdict') return 0;
  return r % 4 === 0 ? 1 + r / 4 : 8 + r;
}

/** How many 32-bit words `len` bytes take. */
export const words = (len: number): number => Math.ceil(len / 4);
