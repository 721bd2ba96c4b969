/**
 * Whether a rule's expressions as the kernel dumps them are the ones xennet writes for a text
 * (pure; the native write test's check that what nft wrote is what xennet's encoder makes of the
 * same text): the bytes `ruleExpressionBytes` makes of it, compared attribute by attribute.
 *
 * The kernel's dump is not the request echoed: it lists an expression's attributes in its own
 * order, without the NLA_F_NESTED flag, adds those it defaults (a lookup's flags, 0; a log's
 * level), and a counter carries what it counted. So each expression is compared by name, then its attributes by
 * type: nested ones (as the written side marks them) recursively, the others byte for byte; an
 * attribute only the kernel lists must be zero or its default; a counter's values are not compared.
 */
const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;

interface Attr {
  type: number;
  nested: boolean;
  from: number;
  to: number;
}

function attrs(buf: Buffer, start: number, end: number): Attr[] {
  const out: Attr[] = [];
  for (let off = start; off + 4 <= end; ) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > end) return out;
    const t = buf.readUInt16LE(off + 2);
    out.push({ type: t & NLA_TYPE_MASK, nested: (t & NLA_F_NESTED) !== 0, from: off + 4, to: off + len });
    off += (len + 3) & ~3;
  }
  return out;
}

const isZero = (buf: Buffer, from: number, to: number): boolean => {
  for (let i = from; i < to; i++) if (buf[i] !== 0) return false;
  return true;
};

/**
 * What the kernel lists that a request may leave out, by expression: a log to the kernel's log
 * (no group) has the level 4 (warning, NFTA_LOG_LEVEL 5).
 */
const DEFAULTS: Readonly<Record<string, ReadonlyMap<number, Buffer>>> = {
  'log\0': new Map([[5, Buffer.from([0, 0, 0, 4])]]),
};

/** Attributes of one level alike, by type (see the module's comment). */
function sameLevel(w: Buffer, wFrom: number, wTo: number, k: Buffer, kFrom: number, kTo: number, defaults?: ReadonlyMap<number, Buffer>, ignore: ReadonlySet<number> = new Set()): boolean {
  const written = attrs(w, wFrom, wTo).filter((a) => !ignore.has(a.type));
  const dumped = attrs(k, kFrom, kTo).filter((a) => !ignore.has(a.type));
  const seen = new Set<number>();
  for (const a of written) {
    if (seen.has(a.type)) return false;
    seen.add(a.type);
    const b = dumped.find((x) => x.type === a.type);
    if (!b) return false;
    if (a.nested ? !sameLevel(w, a.from, a.to, k, b.from, b.to) : a.to - a.from !== b.to - b.from || w.compare(k, b.from, b.to, a.from, a.to) !== 0) return false;
  }
  return dumped.every((b) => seen.has(b.type) || isZero(k, b.from, b.to) || defaults?.get(b.type)?.equals(k.subarray(b.from, b.to)) === true);
}

const COUNTER = Buffer.from('counter\0');
const LOOKUP = Buffer.from('lookup\0');
/** The name a rule's own (anonymous) set has in a request; the kernel names it `__set<n>`. */
const ANONYMOUS = Buffer.from('__set%d\0');

/**
 * `written`: NFTA_RULE_EXPRESSIONS' contents as xennet writes them; `dumped`: as the kernel lists
 * them. The kernel's names of the rule's anonymous sets are pushed to `anonymous`, in order (a
 * lookup of one names `__set%d` and its batch id in the request, the set's own name in the dump).
 */
export function sameExpressions(written: Buffer, dumped: Buffer, anonymous: string[] = []): boolean {
  const w = attrs(written, 0, written.length);
  const k = attrs(dumped, 0, dumped.length);
  if (w.length !== k.length) return false;
  for (let i = 0; i < w.length; i++) {
    // NFTA_LIST_ELEM: NFTA_EXPR_NAME 1, NFTA_EXPR_DATA 2.
    const we = attrs(written, w[i]!.from, w[i]!.to);
    const ke = attrs(dumped, k[i]!.from, k[i]!.to);
    const wName = we.find((a) => a.type === 1);
    const kName = ke.find((a) => a.type === 1);
    if (!wName || !kName || written.compare(dumped, kName.from, kName.to, wName.from, wName.to) !== 0) return false;
    if (written.compare(COUNTER, 0, COUNTER.length, wName.from, wName.to) === 0) continue;
    const wData = we.find((a) => a.type === 2);
    const kData = ke.find((a) => a.type === 2);
    if (!wData || !kData) {
      if (wData || (kData && !isZero(dumped, kData.from, kData.to))) return false;
      continue;
    }
    let ignore: Set<number> | undefined;
    if (written.compare(LOOKUP, 0, LOOKUP.length, wName.from, wName.to) === 0) {
      // NFTA_LOOKUP_SET 1, NFTA_LOOKUP_SET_ID 4.
      const wSet = attrs(written, wData.from, wData.to).find((a) => a.type === 1);
      const kSet = attrs(dumped, kData.from, kData.to).find((a) => a.type === 1);
      if (wSet && kSet && written.compare(ANONYMOUS, 0, ANONYMOUS.length, wSet.from, wSet.to) === 0) {
        const name = dumped.toString('latin1', kSet.from, kSet.to).replace(/\0.*$/s, '');
        if (!/^__set\d+$/.test(name)) return false;
        anonymous.push(name);
        ignore = new Set([1, 4]);
      }
    }
    if (!sameLevel(written, wData.from, wData.to, dumped, kData.from, kData.to, DEFAULTS[written.toString('latin1', wName.from, wName.to)], ignore)) return false;
  }
  return true;
}
