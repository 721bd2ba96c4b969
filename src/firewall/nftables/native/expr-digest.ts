/**
 * A digest of a rule's expressions (NFTA_RULE_EXPRESSIONS' contents) that is the same for the
 * bytes xennet writes and for the kernel's dump of the rule it made of them (pure).
 *
 * xennet writes it into each rule's userdata, next to the rule's tag (its comment, tag.ts): a
 * reader that dumps the rules natively then knows, from the dump alone, that each rule's
 * expressions are still the ones written for the text its tag names (a rule replaced by hand that
 * kept its comment is not), without encoding every text again or asking `nft` to print them.
 *
 * The kernel's dump is not the request echoed (test/netns/lib/expr-compare.ts checks the rest,
 * attribute by attribute): it lists an expression's attributes in its own order, without the
 * NLA_F_NESTED flag, adds those it defaults to zero (a lookup's flags, a bitwise's operation), a
 * counter carries what it counted, and a rule's own set is `__set%d` with a batch id in the
 * request and `__set<n>` in the dump. So the digest is taken of a canonical form: expressions in
 * order, each by name, its attributes by type without flags, the nested ones (by this schema of
 * what xennet writes) canonical in turn, the all-zero ones of an expression left out (data values
 * and a log's group never), a counter's data left out, a rule's own set by that prefix alone and no batch id.
 */
import { createHash } from 'node:crypto';

const NLA_TYPE_MASK = 0x3fff;
/** NFTA_DATA_VALUE 1, NFTA_DATA_VERDICT 2 (nested: NFTA_VERDICT_CODE 1, NFTA_VERDICT_CHAIN 2). */
const DATA_VERDICT = 2;
/** NFTA_LOOKUP_SET 1, NFTA_LOOKUP_SET_ID 4. */
const LOOKUP_SET = 1;
const LOOKUP_SET_ID = 4;
/** NFTA_LOG_LEVEL 5: 4 (warning) is the kernel's when a log to its own log names none. NFTA_LOG_GROUP 1: group 0 is nflog, not the kernel's log. */
const LOG_LEVEL = 5;
const LOG_GROUP = 1;
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

interface Attr {
  type: number;
  from: number;
  to: number;
}

function attrs(buf: Buffer, from: number, to: number): Attr[] | undefined {
  const out: Attr[] = [];
  for (let off = from; off + 4 <= to; ) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > to) return undefined;
    out.push({ type: buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, from: off + 4, to: off + len });
    off += (len + 3) & ~3;
  }
  return out;
}

/** Whether a lookup's set is the rule's own (anonymous: `__set%d` written, `__set<n>` dumped). */
const isOwnSet = (buf: Buffer, f: Attr): boolean => f.to - f.from > ANONYMOUS_SET.length && buf.compare(ANONYMOUS_SET, 0, ANONYMOUS_SET.length, f.from, f.from + ANONYMOUS_SET.length) === 0;

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

/** The canonical form, written as tokens: a type, a length and bytes, or a mark opening or closing a level. */
class Canon {
  private readonly parts: Buffer[] = [];
  private readonly head = Buffer.alloc(6);

  constructor(readonly ownSet?: OwnSetElements) {}

  leaf(type: number, buf: Buffer, from: number, to: number): void {
    this.head.writeUInt16BE(type, 0);
    this.head.writeUInt32BE(to - from, 2);
    this.parts.push(Buffer.from(this.head), buf.subarray(from, to));
  }

  mark(token: string): void {
    this.parts.push(Buffer.from(token));
  }

  digest(): Buffer {
    const h = createHash('sha256');
    for (const p of this.parts) h.update(p);
    return h.digest().subarray(0, 16);
  }
}

/** NFTA_DATA_*: its attributes by type (a verdict's too); false when malformed. */
function data(c: Canon, buf: Buffer, from: number, to: number): boolean {
  const list = attrs(buf, from, to);
  if (!list) return false;
  for (const a of [...list].sort((x, y) => x.type - y.type)) {
    if (a.type !== DATA_VERDICT) {
      c.leaf(a.type, buf, a.from, a.to);
      continue;
    }
    const verdict = attrs(buf, a.from, a.to);
    if (!verdict) return false;
    c.mark('(v');
    for (const v of [...verdict].sort((x, y) => x.type - y.type)) c.leaf(v.type, buf, v.from, v.to);
    c.mark(')');
  }
  return true;
}

/** One expression: NFTA_EXPR_NAME 1, NFTA_EXPR_DATA 2. */
function expression(c: Canon, buf: Buffer, from: number, to: number): boolean {
  const list = attrs(buf, from, to);
  const name = list?.find((a) => a.type === 1);
  if (!list || !name) return false;
  const text = cName(buf, name.from, name.to);
  c.mark(`(${text}`);
  const body = list.find((a) => a.type === 2);
  // A counter is the same counter whatever it counted.
  if (body && text !== 'counter') {
    const fields = attrs(buf, body.from, body.to);
    if (!fields) return false;
    const nested = NESTED[text] ?? {};
    for (const f of [...fields].sort((x, y) => x.type - y.type)) {
      const kind = nested[f.type];
      if (kind === 'data') {
        c.mark(`(${f.type}`);
        if (!data(c, buf, f.from, f.to)) return false;
        c.mark(')');
      } else if (kind === 'expr') {
        c.mark(`(${f.type}`);
        if (!expression(c, buf, f.from, f.to)) return false;
        c.mark(')');
      } else if (kind === 'exprs') {
        c.mark(`(${f.type}`);
        if (!expressions(c, buf, f.from, f.to)) return false;
        c.mark(')');
      } else if (text === 'lookup' && f.type === LOOKUP_SET_ID) {
        // The batch id of the rule's own set: in a request only.
      } else if (text === 'lookup' && f.type === LOOKUP_SET && isOwnSet(buf, f)) {
        // A rule's own set: what it holds, whatever it is called.
        const id = fields.find((x) => x.type === LOOKUP_SET_ID);
        const elements = c.ownSet?.({ name: cName(buf, f.from, f.to), ...(id && id.to - id.from === 4 ? { id: buf.readUInt32BE(id.from) } : {}) });
        if (!elements) return false;
        c.mark('(set');
        for (const e of [...elements].sort((x, y) => Buffer.compare(x.key, y.key) || x.flags - y.flags)) {
          c.leaf(e.flags, e.key, 0, e.key.length);
        }
        c.mark(')');
      } else if ((allZero(buf, f.from, f.to) && !(text === 'log' && f.type === LOG_GROUP)) || (text === 'log' && f.type === LOG_LEVEL && f.to - f.from === 4 && buf.readUInt32BE(f.from) === 4)) {
        // What the kernel defaults (and dumps) when a request leaves it out.
      } else c.leaf(f.type, buf, f.from, f.to);
    }
  }
  c.mark(')');
  return true;
}

/** A list of NFTA_LIST_ELEM, in order. */
function expressions(c: Canon, buf: Buffer, from: number, to: number): boolean {
  const list = attrs(buf, from, to);
  if (!list) return false;
  for (const e of list) if (!expression(c, buf, e.from, e.to)) return false;
  return true;
}

/**
 * The digest (16 bytes) of a rule's expressions, written or dumped, its own sets' elements
 * included (`ownSet`); undefined when they are malformed or an own set's elements are unknown.
 */
export function exprDigest(exprs: Buffer, ownSet?: OwnSetElements): Buffer | undefined {
  const c = new Canon(ownSet);
  return expressions(c, exprs, 0, exprs.length) ? c.digest() : undefined;
}

/** The names of the rule's own sets its expressions look up (a reader dumps their elements). */
export function ownSetNames(exprs: Buffer): string[] {
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
  if (!userdata) return undefined;
  for (let off = 0; off + 2 <= userdata.length; ) {
    const type = userdata[off]!;
    const len = userdata[off + 1]!;
    if (off + 2 + len > userdata.length) return undefined;
    if (type === DIGEST_UDATA) return userdata.subarray(off + 2, off + 2 + len);
    off += 2 + len;
  }
  return undefined;
}

/** Whether a dumped rule's expressions (and its own sets' elements) are the ones written with its userdata (false: no digest there, or another). */
export function expressionsAsWritten(exprs: Buffer, userdata: Buffer | undefined, ownSet?: OwnSetElements): boolean {
  const written = writtenDigest(userdata);
  return written !== undefined && exprDigest(exprs, ownSet)?.equals(written) === true;
}
