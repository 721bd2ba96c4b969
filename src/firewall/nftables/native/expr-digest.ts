/**
 * A digest of a rule's expressions (NFTA_RULE_EXPRESSIONS' contents) that is the same for the
 * bytes xennet writes and for the kernel's dump of the rule it made of them (pure).
 *
 * xennet writes it into each rule's userdata, next to the rule's tag (its comment, tag.ts): a
 * reader that dumps the rules natively then knows, from the dump alone, that each rule's
 * expressions are still the ones written for the text its tag names (a rule replaced by hand that
 * kept its comment is not), without encoding every text again or asking `nft` to print them.
 * It detects a rule changed by anyone who does not also write a digest of xennet's for it (root
 * can write anything): a fast 128-bit hash, not a cryptographic one.
 *
 * The kernel's dump is not the request echoed (test/netns/lib/expr-compare.ts checks the rest,
 * attribute by attribute): it lists an expression's attributes in its own order, without the
 * NLA_F_NESTED flag, adds those it defaults to zero (a lookup's flags, a bitwise's operation), a
 * counter carries what it counted, and a rule's own set is `__set%d` with a batch id in the
 * request and `__set<n>` in the dump. So the digest is taken of a canonical form: expressions in
 * order, each by name, its attributes by type without flags, the nested ones (by this schema of
 * what xennet writes) canonical in turn, those the kernel defaults to 0 left out when 0 (by this
 * list: never a register, a value or a log's group), a counter's data left out, a rule's own set by the elements it holds
 * (sorted), not by its name or batch id.
 */
import { userdataRecord } from '../../../bridge/nl/nfnl.js';

const NLA_TYPE_MASK = 0x3fff;
/** NFTA_DATA_VALUE 1, NFTA_DATA_VERDICT 2 (nested: NFTA_VERDICT_CODE 1, NFTA_VERDICT_CHAIN 2). */
const DATA_VERDICT = 2;
/** NFTA_LOOKUP_SET 1, NFTA_LOOKUP_SET_ID 4. */
const LOOKUP_SET = 1;
const LOOKUP_SET_ID = 4;
/** NFTA_LOG_LEVEL 5: 4 (warning) is the kernel's when a log to its own log (no NFTA_LOG_GROUP 1) names none. */
const LOG_LEVEL = 5;
const LOG_GROUP = 1;
/**
 * The attributes the kernel dumps as 0 when a request leaves them out, by expression: these alone
 * are left out of the canonical form when they are 0. Never a register, a key, a length or a
 * log's group or snaplen: a lookup without its destination register (0, the verdict register) is
 * a set test, not a verdict map (`iifname @from_guest` is not `iifname vmap @from_guest`).
 * lookup: NFTA_LOOKUP_FLAGS; bitwise: NFTA_BITWISE_OP; exthdr: NFTA_EXTHDR_FLAGS, _OP; dynset:
 * NFTA_DYNSET_OP, _TIMEOUT, _PAD, _FLAGS; limit: NFTA_LIMIT_TYPE, _FLAGS (what Linux 6.x dumps:
 * another kernel that adds another makes reads fall back to `nft`, never wrong).
 */
const ZERO_DEFAULTS: Readonly<Record<string, readonly number[]>> = { lookup: [5], bitwise: [6], exthdr: [5, 6], dynset: [3, 6, 8, 9], limit: [4, 5] };
const ANONYMOUS_SET = Buffer.from('__set');

/** How an expression's attribute nests: data (NFTA_DATA_*), one named expression, or a list of them. */
type Nested = 'data' | 'expr' | 'exprs';

/** The nested attributes of each expression xennet writes (encode.ts), by NFTA_<EXPR>_* type. */
const NESTED: Readonly<Record<string, Readonly<Record<number, Nested>>>> = {
  cmp: { 3: 'data' },
  range: { 3: 'data', 4: 'data' },
  bitwise: { 4: 'data', 5: 'data' },
  immediate: { 2: 'data' },
  dynset: { 7: 'expr', 10: 'exprs' },
};

/**
 * The attributes of the levels being read, as (type, from, to) triples on one stack (a rule has
 * some ten expressions, a 1000-guest table 35,000 rules: no object per attribute).
 */
let stack = new Int32Array(3 * 1024);
let sp = 0;

/** Pushes the attributes of buf[from, to) by type (insertion sort: a level has a few); their count, or -1 when malformed. */
function scan(buf: Buffer, from: number, to: number): number {
  const base = sp;
  for (let off = from; off + 4 <= to; ) {
    const len = buf[off]! | (buf[off + 1]! << 8);
    if (len < 4 || off + len > to) return -1;
    if (sp + 3 > stack.length) {
      const next = new Int32Array(stack.length * 2);
      next.set(stack);
      stack = next;
    }
    const type = (buf[off + 2]! | (buf[off + 3]! << 8)) & NLA_TYPE_MASK;
    let j = sp;
    while (j > base && stack[j - 3]! > type) {
      stack[j] = stack[j - 3]!;
      stack[j + 1] = stack[j - 2]!;
      stack[j + 2] = stack[j - 1]!;
      j -= 3;
    }
    stack[j] = type;
    stack[j + 1] = off + 4;
    stack[j + 2] = off + len;
    sp += 3;
    off += (len + 3) & ~3;
  }
  return (sp - base) / 3;
}

/** Whether a lookup's set is the rule's own (anonymous: `__set%d` written, `__set<n>` dumped). */
const isOwnSet = (buf: Buffer, from: number, to: number): boolean => to - from > ANONYMOUS_SET.length && buf.compare(ANONYMOUS_SET, 0, ANONYMOUS_SET.length, from, from + ANONYMOUS_SET.length) === 0;

const cName = (buf: Buffer, from: number, to: number): string => {
  const end = buf.indexOf(0, from);
  return buf.toString('latin1', from, end >= from && end < to ? end : to);
};

const allZero = (buf: Buffer, from: number, to: number): boolean => {
  for (let i = from; i < to; i++) if (buf[i] !== 0) return false;
  return true;
};

/** An element of a rule's own set, as written and as dumped: its key and flags (1: it ends an interval). */
export interface SetElementBytes {
  key: Buffer;
  flags: number;
}

/**
 * The elements of a rule's own set: by the batch id its lookup names (what is written) or by the
 * name the kernel gave it (what is dumped); undefined when unknown.
 */
export type OwnSetElements = (set: { name: string; id?: number }) => readonly SetElementBytes[] | undefined;

/** Tokens of the canonical form: a leaf (type, length, bytes), a level opened (by a code or a name), a level closed. */
const LEAF = 0x4c;
const OPEN = 0x4f;
const NAME = 0x4e;
const CLOSE = 0x43;
/** Codes of the levels that have no attribute type of their own. */
const VERDICT_LEVEL = 0xff01;
const SET_LEVEL = 0xff02;

/**
 * The canonical form, fed as it is made into a 128-bit hash (four 32-bit lanes, each byte mixed
 * into all of them: bryc's cyrb128): no copy of it is made, and no object per rule.
 */
class Canon {
  private h1 = 1779033703;
  private h2 = 3144134277;
  private h3 = 1013904242;
  private h4 = 2773480762;

  constructor(readonly ownSet?: OwnSetElements) {}

  private byte(k: number): void {
    this.h1 = this.h2 ^ Math.imul(this.h1 ^ k, 597399067);
    this.h2 = this.h3 ^ Math.imul(this.h2 ^ k, 2869860233);
    this.h3 = this.h4 ^ Math.imul(this.h3 ^ k, 951274213);
    this.h4 = this.h1 ^ Math.imul(this.h4 ^ k, 2716044179);
  }

  private u16(v: number): void {
    this.byte(v >>> 8);
    this.byte(v & 255);
  }

  private bytes(buf: Buffer, from: number, to: number): void {
    for (let i = from; i < to; i++) this.byte(buf[i]!);
  }

  leaf(type: number, buf: Buffer, from: number, to: number): void {
    this.byte(LEAF);
    this.u16(type);
    this.u16(to - from);
    this.bytes(buf, from, to);
  }

  open(code: number): void {
    this.byte(OPEN);
    this.u16(code);
  }

  /** An expression's level, opened by its name (its bytes up to the NUL). */
  named(buf: Buffer, from: number, to: number): void {
    this.byte(NAME);
    this.u16(to - from);
    this.bytes(buf, from, to);
  }

  close(): void {
    this.byte(CLOSE);
  }

  digest(): Buffer {
    let { h1, h2, h3, h4 } = this;
    h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
    h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
    h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
    h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
    h1 ^= h2 ^ h3 ^ h4;
    h2 ^= h1;
    h3 ^= h1;
    h4 ^= h1;
    const out = Buffer.allocUnsafe(16);
    out.writeUInt32BE(h1 >>> 0, 0);
    out.writeUInt32BE(h2 >>> 0, 4);
    out.writeUInt32BE(h3 >>> 0, 8);
    out.writeUInt32BE(h4 >>> 0, 12);
    return out;
  }
}

/** NFTA_DATA_*: its attributes by type (a verdict's too); false when malformed. */
function data(c: Canon, buf: Buffer, from: number, to: number): boolean {
  const base = sp;
  const n = scan(buf, from, to);
  if (n < 0) return false;
  for (let i = 0; i < n; i++) {
    const at = base + 3 * i;
    const type = stack[at]!;
    const f = stack[at + 1]!;
    const t = stack[at + 2]!;
    if (type !== DATA_VERDICT) {
      c.leaf(type, buf, f, t);
      continue;
    }
    const vbase = sp;
    const vn = scan(buf, f, t);
    if (vn < 0) return false;
    c.open(VERDICT_LEVEL);
    for (let k = 0; k < vn; k++) c.leaf(stack[vbase + 3 * k]!, buf, stack[vbase + 3 * k + 1]!, stack[vbase + 3 * k + 2]!);
    c.close();
    sp = vbase;
  }
  sp = base;
  return true;
}

/** The value of attribute `type` among the `n` on the stack from `base`: its [from, to), or undefined. */
function field(base: number, n: number, type: number): [number, number] | undefined {
  for (let i = 0; i < n; i++) if (stack[base + 3 * i] === type) return [stack[base + 3 * i + 1]!, stack[base + 3 * i + 2]!];
  return undefined;
}

/** One expression: NFTA_EXPR_NAME 1, NFTA_EXPR_DATA 2. */
function expression(c: Canon, buf: Buffer, from: number, to: number): boolean {
  const base = sp;
  const n = scan(buf, from, to);
  const name = n < 0 ? undefined : field(base, n, 1);
  if (!name) return false;
  const text = cName(buf, name[0], name[1]);
  c.named(buf, name[0], name[0] + text.length);
  const body = field(base, n, 2);
  sp = base;
  // A counter is the same counter whatever it counted.
  if (body && text !== 'counter') {
    const fbase = sp;
    const fn = scan(buf, body[0], body[1]);
    if (fn < 0) return false;
    const nested = NESTED[text];
    for (let i = 0; i < fn; i++) {
      const at = fbase + 3 * i;
      const type = stack[at]!;
      const f = stack[at + 1]!;
      const t = stack[at + 2]!;
      const kind = nested?.[type];
      if (kind !== undefined) {
        c.open(type);
        if (!(kind === 'data' ? data(c, buf, f, t) : kind === 'expr' ? expression(c, buf, f, t) : expressions(c, buf, f, t))) return false;
        c.close();
      } else if (text === 'lookup' && type === LOOKUP_SET_ID) {
        // The batch id of the rule's own set: in a request only.
      } else if (text === 'lookup' && type === LOOKUP_SET && isOwnSet(buf, f, t)) {
        // A rule's own set: what it holds, whatever it is called.
        const id = field(fbase, fn, LOOKUP_SET_ID);
        const elements = c.ownSet?.({ name: cName(buf, f, t), ...(id && id[1] - id[0] === 4 ? { id: buf.readUInt32BE(id[0]) } : {}) });
        if (!elements) return false;
        c.open(SET_LEVEL);
        for (const e of [...elements].sort((x, y) => Buffer.compare(x.key, y.key) || x.flags - y.flags)) c.leaf(e.flags, e.key, 0, e.key.length);
        c.close();
      } else if ((ZERO_DEFAULTS[text]?.includes(type) === true && allZero(buf, f, t)) || (text === 'log' && type === LOG_LEVEL && t - f === 4 && buf.readUInt32BE(f) === 4 && field(fbase, fn, LOG_GROUP) === undefined)) {
        // What the kernel defaults (and dumps) when a request leaves it out.
      } else c.leaf(type, buf, f, t);
    }
    sp = fbase;
  }
  c.close();
  return true;
}

/** A list of NFTA_LIST_ELEM, in order. */
function expressions(c: Canon, buf: Buffer, from: number, to: number): boolean {
  // In order: not by type (all are NFTA_LIST_ELEM).
  for (let off = from; off + 4 <= to; ) {
    const len = buf[off]! | (buf[off + 1]! << 8);
    if (len < 4 || off + len > to) return false;
    if (!expression(c, buf, off + 4, off + len)) return false;
    off += (len + 3) & ~3;
  }
  return true;
}

/**
 * The digest (16 bytes) of a rule's expressions, written or dumped, its own sets' elements
 * included (`ownSet`); undefined when they are malformed or an own set's elements are unknown.
 */
export function exprDigest(exprs: Buffer, ownSet?: OwnSetElements): Buffer | undefined {
  const c = new Canon(ownSet);
  sp = 0;
  return expressions(c, exprs, 0, exprs.length) ? c.digest() : undefined;
}

/** The names of the rule's own sets its expressions look up (a reader dumps their elements). */
export function ownSetNames(exprs: Buffer): string[] {
  // Most rules have none: not a second walk of their expressions for nothing.
  if (!exprs.includes(ANONYMOUS_SET)) return [];
  const names: string[] = [];
  exprDigest(exprs, ({ name }) => {
    names.push(name);
    return [];
  });
  return names;
}

/** The userdata record type of the digest (libnftnl's rule records are 0, the comment, and 1; nft passes others over). */
export const DIGEST_UDATA = 0xd1;

/** The digest written into a rule's userdata (a record of type DIGEST_UDATA), or undefined. */
export function writtenDigest(userdata: Buffer | undefined): Buffer | undefined {
  return userdataRecord(userdata, DIGEST_UDATA);
}

/** Whether a dumped rule's expressions (and its own sets' elements) are the ones written with its userdata (false: no digest there, or another). */
export function expressionsAsWritten(exprs: Buffer, userdata: Buffer | undefined, ownSet?: OwnSetElements): boolean {
  const written = writtenDigest(userdata);
  return written !== undefined && exprDigest(exprs, ownSet)?.equals(written) === true;
}
