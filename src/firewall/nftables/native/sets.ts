/**
 * xennet's sets and their elements for the kernel (pure): a declaration as the script writes it
 * (`type ipv4_addr . ifname; flags timeout;`, `typeof @th,64,128; counter;`) -> the set's
 * attributes, and an element as the script writes it (`192.0.2.5 . "vif1.0" timeout 30s`,
 * `"vif1.0" : jump XN-O-vif1.0`) -> its key, data and timeout.
 *
 * A set carries userdata for nft to print it with (libnftnl's NFTNL_UDATA_SET_*): the byte order
 * of its keys and, for a `typeof` set or a concatenation, what its key is made of. xennet writes
 * what nft writes, so that nft lists a set made here as one made by nft, and so that `add set` of
 * a set nft made (an older xennet's) is the same set to the kernel.
 */
import { addressBytes, bigEndian, etherBytes, ifnameBytes } from './values.js';
import { DATATYPE, type AnonymousSet, type DataTypeName, type KeyOrigin, type Verdict } from './expr.js';

/** NFT_SET_* flags. */
export const SET_FLAGS = { anonymous: 0x1, constant: 0x2, interval: 0x4, map: 0x8, timeout: 0x10, dynamic: 0x20 } as const;
const BYTEORDER = { invalid: 0, host: 1, big: 2 } as const;

/** One udata record: type, length, value (one byte each for type and length). */
export function udata(type: number, value: Buffer): Buffer {
  if (value.length > 255) throw new Error('a userdata record holds at most 255 bytes');
  return Buffer.concat([Buffer.from([type, value.length]), value]);
}
const udataU32 = (type: number, v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v, 0);
  return udata(type, b);
};

const UDATA = { keyByteorder: 0, dataByteorder: 1, mergeElements: 2, keyTypeof: 3, dataInterval: 6 } as const;
/** nft's expression kinds in a typeof description. */
const EXPR_PAYLOAD = 7;
const EXPR_META = 9;
const EXPR_CONCAT = 13;


function typeofRecord(origin: KeyOrigin): Buffer {
  if ('meta' in origin) return Buffer.concat([udataU32(0, EXPR_META), udata(1, udataU32(0, origin.meta))]);
  if ('payload' in origin) return Buffer.concat([udataU32(0, EXPR_PAYLOAD), udata(1, Buffer.concat([udataU32(0, origin.payload.desc), udataU32(1, origin.payload.tmpl)]))]);
  const r = origin.raw;
  return Buffer.concat([udataU32(0, EXPR_PAYLOAD), udata(1, Buffer.concat([udataU32(0, 0), udataU32(1, 0), udataU32(2, r.base), udataU32(3, r.offset), udataU32(4, r.len)]))]);
}

/** A key part: its type, length and byte order, and (typeof) what it is made of. */
interface KeyPart {
  type: DataTypeName;
  len: number;
  byteorder: keyof typeof BYTEORDER;
  origin?: KeyOrigin;
}

const TYPES: Readonly<Record<string, KeyPart>> = {
  ifname: { type: 'ifname', len: 16, byteorder: 'host' },
  ipv4_addr: { type: 'ipv4_addr', len: 4, byteorder: 'big' },
  ipv6_addr: { type: 'ipv6_addr', len: 16, byteorder: 'big' },
  ether_addr: { type: 'ether_addr', len: 6, byteorder: 'big' },
  ether_type: { type: 'ether_type', len: 2, byteorder: 'big' },
  inet_proto: { type: 'inet_proto', len: 1, byteorder: 'invalid' },
};

/** `typeof` expressions xennet's sets use. */
const TYPEOF: Readonly<Record<string, KeyPart>> = {
  '@th,64,128': { type: 'integer', len: 16, byteorder: 'big', origin: { raw: { base: 3, offset: 64, len: 128 } } },
  iifname: { type: 'ifname', len: 16, byteorder: 'host', origin: { meta: 6 } },
};

/** A set's declaration (shared between scripts: never changed). */
export interface SetDeclaration {
  readonly name: string;
  readonly flags: number;
  readonly keyType: number;
  readonly keyLen: number;
  /** A verdict map's data. */
  readonly verdictMap: boolean;
  readonly size?: number;
  readonly timeoutMs?: number;
  /** Every element counts what it matches (`counter;`). */
  readonly counter: boolean;
  readonly userdata: Buffer;
  /** The parts of its keys, to encode elements with. */
  readonly parts: readonly KeyPart[];
  /** Elements declared with it (`elements = { ... };`). */
  elements: string[];
}

const pad4 = (n: number): number => (n + 3) & ~3;

/** A declaration's text (between its braces) -> the set. */
export function parseSetDeclaration(name: string, text: string, isMap: boolean): SetDeclaration {
  let parts: KeyPart[] | undefined;
  let typeofSet = false;
  let verdictMap = false;
  let flags = 0;
  let size: number | undefined;
  let timeoutMs: number | undefined;
  let counter = false;
  let elements: string[] = [];
  for (const raw of text.split(';')) {
    const s = raw.trim();
    if (s === '') continue;
    let m: RegExpExecArray | null;
    if ((m = /^type (.+?)(?: : verdict)?$/.exec(s))) {
      verdictMap = s.endsWith(' : verdict');
      parts = m[1]!.split(' . ').map((t) => {
        const p = TYPES[t];
        if (!p) throw new Error(`set ${name}: unknown type ${t}`);
        return p;
      });
    } else if ((m = /^typeof (.+)$/.exec(s))) {
      typeofSet = true;
      parts = m[1]!.split(' . ').map((t) => {
        const p = TYPEOF[t];
        if (!p) throw new Error(`set ${name}: unknown typeof ${t}`);
        return p;
      });
    } else if ((m = /^flags ([a-z,]+)$/.exec(s))) {
      for (const f of m[1]!.split(',')) {
        const bit = (SET_FLAGS as Record<string, number>)[f];
        if (bit === undefined) throw new Error(`set ${name}: unknown flag ${f}`);
        flags |= bit;
      }
    } else if ((m = /^size (\d+)$/.exec(s))) {
      size = Number(m[1]);
    } else if ((m = /^timeout (\d+)s$/.exec(s))) {
      timeoutMs = Number(m[1]) * 1000;
    } else if (s === 'counter') {
      counter = true;
    } else if ((m = /^elements = \{ (.*) \}$/.exec(s))) {
      elements = m[1]!.split(',').map((e) => e.trim());
    } else {
      throw new Error(`set ${name}: cannot read "${s}"`);
    }
  }
  if (!parts) throw new Error(`set ${name}: no type`);
  if (verdictMap !== isMap) throw new Error(`set ${name}: a map is a verdict map`);
  const concat = parts.length > 1;
  const keyType = parts.reduce((acc, p) => (acc << 6) | DATATYPE[p.type], 0);
  const keyLen = concat ? parts.reduce((acc, p) => acc + pad4(p.len), 0) : parts[0]!.len;
  const records: Buffer[] = [udataU32(UDATA.keyByteorder, BYTEORDER[concat ? 'invalid' : parts[0]!.byteorder])];
  if (verdictMap) records.push(udataU32(UDATA.dataByteorder, BYTEORDER.invalid));
  if (concat) {
    // A concatenation: `type a . b` says only that; `typeof a . b` also what each part is.
    const list = typeofSet ? Buffer.concat(parts.map((p, i) => udata(i, typeofRecord(p.origin!)))) : Buffer.alloc(0);
    records.push(udata(UDATA.keyTypeof, Buffer.concat([udataU32(0, EXPR_CONCAT), udata(1, list)])));
  } else if (typeofSet) {
    records.push(udata(UDATA.keyTypeof, typeofRecord(parts[0]!.origin!)));
  }
  if (verdictMap) records.push(udataU32(UDATA.dataInterval, 0));
  return {
    name,
    flags: flags | (verdictMap ? SET_FLAGS.map : 0),
    keyType,
    keyLen,
    verdictMap,
    ...(size !== undefined ? { size } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    counter,
    userdata: Buffer.concat(records),
    parts,
    elements,
  };
}

/** The userdata of a rule's anonymous set (key byte order, merged intervals, what the key is). */
export function anonymousSetUserdata(s: AnonymousSet): Buffer {
  const byteorder = s.keyType === 'ifname' ? BYTEORDER.host : s.keyType === 'inet_proto' ? BYTEORDER.invalid : BYTEORDER.big;
  return Buffer.concat([udataU32(UDATA.keyByteorder, byteorder), ...(s.interval ? [udataU32(UDATA.mergeElements, 1)] : []), udata(UDATA.keyTypeof, typeofRecord(s.origin))]);
}

export interface ElementValue {
  key: Buffer;
  verdict?: Verdict;
  timeoutMs?: number;
}

function partBytes(p: KeyPart, text: string): Buffer {
  switch (p.type) {
    case 'ifname':
      return ifnameBytes(text);
    case 'ipv4_addr':
    case 'ipv6_addr':
      return addressBytes(p.type === 'ipv4_addr' ? 'ipv4' : 'ipv6', text);
    case 'ether_addr':
      return etherBytes(text);
    case 'ether_type':
    case 'inet_proto':
    case 'integer':
      if (!/^(0x[0-9a-f]+|\d+)$/i.test(text)) throw new Error(`not a number: ${text}`);
      return bigEndian(BigInt(text), p.len);
    default:
      throw new Error(`an element of type ${p.type}`);
  }
}

/**
 * An element as the script writes it -> its key (parts padded to 4 bytes in a concatenation),
 * data and timeout. An element to delete is named by its key alone.
 */
export function parseElement(decl: SetDeclaration, text: string, keyOnly = false): ElementValue {
  let rest = text.trim();
  let timeoutMs: number | undefined;
  const t = / timeout (\d+)s$/.exec(rest);
  if (t) {
    timeoutMs = Number(t[1]) * 1000;
    rest = rest.slice(0, t.index);
  }
  let verdict: ElementValue['verdict'];
  if (decl.verdictMap) {
    const v = /^(.*) : (?:(jump|goto) (\S+)|(accept|drop|return))$/.exec(rest);
    if (v) {
      rest = v[1]!;
      verdict = v[4] !== undefined ? { code: v[4] as 'accept' | 'drop' | 'return' } : { code: v[2] as 'jump' | 'goto', chain: v[3]! };
    } else if (!keyOnly) {
      throw new Error(`set ${decl.name}: an element of a verdict map is key : verdict, not ${text}`);
    }
  }
  const texts = rest.split(' . ');
  if (texts.length !== decl.parts.length) throw new Error(`set ${decl.name}: ${text} is not a key of ${decl.parts.length} parts`);
  const concat = decl.parts.length > 1;
  const key = Buffer.concat(
    decl.parts.map((p, i) => {
      const b = partBytes(p, texts[i]!);
      return concat && b.length % 4 !== 0 ? Buffer.concat([b, Buffer.alloc(4 - (b.length % 4))]) : b;
    }),
  );
  return { key, ...(verdict ? { verdict } : {}), ...(timeoutMs !== undefined ? { timeoutMs } : {}) };
}
