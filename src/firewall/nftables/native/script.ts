/**
 * An nft script of xennet's -> the nfnetlink messages of one transaction (pure).
 *
 * The scripts are the ones xennet renders (renderNft, learnedScript: what `xennet plan` shows and
 * what `nft -f` would run), one command per line, in the few forms they use:
 *
 *   add|delete table F xennet            add chain F xennet C [{ type filter hook ... }]
 *   flush chain F xennet C               delete chain F xennet C
 *   add rule F xennet C <rule> comment "<tag>"
 *   add set|map bridge xennet S { <declaration> }    flush set|map F xennet S
 *   delete set|map F xennet S            (a set or a map xennet does not declare)
 *   add|delete element bridge xennet S { <element>, ... }
 *   list set bridge xennet S             (the transaction fails when the set is missing)
 *
 * Anything else is an error that names the line: a script is never half understood.
 */
import type { NftMessage } from '../../../bridge/nl/nft-batch.js';
import { HOOK, NFPROTO, nfgenmsg } from '../../../bridge/nl/nft-numbers.js';
import { BASE_CHAINS } from '../compile.js';
import { PART_MARK } from '../script.js';
import { NFT_TABLE } from '../table.js';
import { splitComment } from '../tag.js';
import { AttrWriter, dataValue, dataVerdict, writeExpr } from './encode.js';
import { DIGEST_UDATA, exprDigest } from './expr-digest.js';
import { DATATYPE, type AnonymousSet, type SetRef } from './expr.js';
import { parseNftRule } from './rule-parse.js';
import { anonymousSetUserdata, parseElement, parseSetDeclaration, SET_FLAGS, type ElementValue, type SetDeclaration } from './sets.js';
import { XennetError } from '../../../sys/errors.js';

const NLA_F_NESTED = 0x8000;

const MSG = { newTable: 0, delTable: 2, newChain: 3, delChain: 5, newRule: 6, delRule: 8, newSet: 9, delSet: 11, newSetElem: 12, delSetElem: 14 } as const;
const NLM_F_CREATE = 0x400;
const NLM_F_APPEND = 0x800;
const NFT_DATA_VERDICT = 0xffffff00;

type Family = 'bridge' | 'inet';

/** `struct nfgenmsg` of each family xennet writes in. */
const GENMSG: Record<Family, Buffer> = { bridge: nfgenmsg(NFPROTO.bridge), inet: nfgenmsg(NFPROTO.inet) };

/** Set declarations by their text: every script declares the same few sets again. */
const declarations = new Map<string, SetDeclaration>();
function declaration(name: string, text: string, map: boolean): SetDeclaration {
  const key = `${map ? 'map' : 'set'} ${name} ${text}`;
  let d = declarations.get(key);
  if (!d) {
    if (declarations.size >= 256) declarations.clear();
    declarations.set(key, (d = parseSetDeclaration(name, text, map)));
  }
  return d;
}

/** Splits `a, b, "c, d"` at the commas outside quotes. */
function splitList(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const c of text) {
    if (c === '"') quoted = !quoted;
    if (c === ',' && !quoted) {
      out.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  if (cur.trim() !== '') out.push(cur.trim());
  return out;
}

/** NEWSET: the kernel wants a batch-local id even for a named set. */
function setMessage(w: AttrWriter, table: string, decl: SetDeclaration, id: number, family: Family = 'bridge'): Buffer {
  w.raw(GENMSG[family]).str(1, table).str(2, decl.name);
  if (decl.flags !== 0) w.u32(3, decl.flags);
  w.u32(4, decl.keyType).u32(5, decl.keyLen);
  if (decl.verdictMap) w.u32(6, NFT_DATA_VERDICT);
  if (decl.size !== undefined) w.nest(9, () => w.u32(1, decl.size!));
  w.u32(10, id);
  if (decl.timeoutMs !== undefined) w.u64(11, decl.timeoutMs);
  w.bytes(13, decl.userdata);
  if (decl.counter) w.nest(17, () => w.str(1, 'counter').nest(2, () => w.u64(1, 0).u64(2, 0)));
  return w.take();
}

/** One NFTA_LIST_ELEM of NFTA_SET_ELEM_LIST_ELEMENTS. */
function writeElement(w: AttrWriter, e: ElementValue, flags = 0): void {
  w.nest(1, () => {
    dataValue(w, 1, e.key);
    if (e.verdict) dataVerdict(w, 2, e.verdict);
    if (flags !== 0) w.u32(3, flags);
    if (e.timeoutMs !== undefined) w.u64(4, e.timeoutMs);
  });
}

function elementsMessage(w: AttrWriter, table: string, set: string, elements: readonly { e: ElementValue; flags?: number }[], setId?: number, family: Family = 'bridge'): Buffer {
  w.raw(GENMSG[family]).str(1, table).str(2, set);
  if (elements.length > 0) w.nest(3, () => elements.forEach((x) => writeElement(w, x.e, x.flags)));
  if (setId !== undefined) w.u32(4, setId);
  return w.take();
}

/** The declaration of a rule's anonymous set, as nft makes it. */
function anonymousDeclaration(s: AnonymousSet): SetDeclaration {
  return {
    name: '__set%d',
    flags: SET_FLAGS.anonymous | SET_FLAGS.constant | (s.interval ? SET_FLAGS.interval : 0),
    keyType: DATATYPE[s.keyType],
    keyLen: s.keyLen,
    verdictMap: false,
    size: s.elements.length,
    counter: false,
    userdata: anonymousSetUserdata(s),
    parts: [],
    elements: [],
  };
}

class ScriptTranslator {
  readonly out: NftMessage[] = [];
  private readonly sets = new Map<string, SetDeclaration>();
  private nextSetId = 1;
  private readonly w = new AttrWriter();
  /** A rule's expressions, written apart first: the digest in its userdata is taken of them. */
  private readonly exprWriter = new AttrWriter();

  /** The commands' forms, for this table. */
  private readonly patterns: Record<'rule' | 'element' | 'table' | 'addChain' | 'chain' | 'set' | 'deleteSet' | 'list' | 'flushSet', RegExp>;

  constructor(private readonly table: string) {
    const T = table.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    this.patterns = {
      rule: new RegExp(`^add rule (bridge|inet) ${T} (\\S+) (.*)$`),
      element: new RegExp(`^(add|delete) element bridge ${T} (\\S+) \\{ (.*) \\}$`),
      table: new RegExp(`^(add|delete) table (bridge|inet) ${T}$`),
      addChain: new RegExp(`^add chain (bridge|inet) ${T} (\\S+)(?: \\{ (.*) \\})?$`),
      chain: new RegExp(`^(flush|delete) chain (bridge|inet) ${T} (\\S+)$`),
      set: new RegExp(`^add (set|map) bridge ${T} (\\S+) \\{ (.*) \\}$`),
      deleteSet: new RegExp(`^delete (?:set|map) (bridge|inet) ${T} (\\S+)$`),
      list: new RegExp(`^list set bridge ${T} (\\S+)$`),
      flushSet: new RegExp(`^flush (?:set|map) (bridge|inet) ${T} (\\S+)$`),
    };
  }

  private push(msg: number, flags: number, body: Buffer, what: string): void {
    this.out.push({ msg, flags, body, what });
  }

  private decl(set: string): SetDeclaration {
    const d = this.sets.get(set);
    if (!d) throw new Error(`set ${set} is not declared earlier in the script`);
    return d;
  }

  line(line: string): void {
    const p = this.patterns;
    let m: RegExpExecArray | null;
    if ((m = p.rule.exec(line))) {
      this.rule(m[1] as Family, m[2]!, m[3]!, line);
    } else if ((m = p.element.exec(line))) {
      const decl = this.decl(m[2]!);
      const elements = splitList(m[3]!).map((e) => ({ e: parseElement(decl, e, m![1] === 'delete') }));
      this.push(m[1] === 'add' ? MSG.newSetElem : MSG.delSetElem, m[1] === 'add' ? NLM_F_CREATE : 0, elementsMessage(this.w, this.table, decl.name, elements), line);
    } else if ((m = p.table.exec(line))) {
      const f = m[2] as Family;
      if (m[1] === 'add') this.push(MSG.newTable, NLM_F_CREATE, this.w.raw(GENMSG[f]).str(1, this.table).u32(2, 0).take(), line);
      else this.push(MSG.delTable, 0, this.w.raw(GENMSG[f]).str(1, this.table).take(), line);
    } else if ((m = p.addChain.exec(line))) {
      const f = m[1] as Family;
      const chain = m[2]!;
      const spec = m[3] === undefined ? undefined : BASE_CHAINS[chain];
      if (m[3] !== undefined && (!spec || spec.printed !== m[3] || spec.family !== f)) throw new Error(`base chain ${chain} is not one of xennet's`);
      const w = this.w.raw(GENMSG[f]).str(1, this.table).str(3, chain);
      if (spec) w.nest(4, () => w.u32(1, HOOK[spec.hook]).u32(2, spec.priority)).u32(5, 1).str(7, 'filter');
      this.push(MSG.newChain, NLM_F_CREATE, w.take(), line);
    } else if ((m = p.chain.exec(line))) {
      const f = m[2] as Family;
      if (m[1] === 'flush') this.push(MSG.delRule, 0, this.w.raw(GENMSG[f]).str(1, this.table).str(2, m[3]!).take(), line);
      else this.push(MSG.delChain, 0, this.w.raw(GENMSG[f]).str(1, this.table).str(3, m[3]!).take(), line);
    } else if ((m = p.set.exec(line))) {
      const decl = declaration(m[2]!, m[3]!, m[1] === 'map');
      this.sets.set(decl.name, decl);
      this.push(MSG.newSet, NLM_F_CREATE, setMessage(this.w, this.table, decl, this.nextSetId++), line);
      if (decl.elements.length > 0) this.push(MSG.newSetElem, NLM_F_CREATE, elementsMessage(this.w, this.table, decl.name, decl.elements.map((e) => ({ e: parseElement(decl, e) }))), line);
    } else if ((m = p.deleteSet.exec(line))) {
      // A set or map (the kernel deletes either by name), with its elements.
      this.push(MSG.delSet, 0, this.w.raw(GENMSG[m[1] as Family]).str(1, this.table).str(2, m[2]!).take(), line);
    } else if ((m = p.list.exec(line))) {
      // The set declared again without NLM_F_CREATE: a no-op where it exists, ENOENT (and no
      // transaction) where it (or the table) does not.
      const decl = this.known(m[1]!);
      this.push(MSG.newSet, 0, setMessage(this.w, this.table, decl, this.nextSetId++), line);
    } else if ((m = p.flushSet.exec(line))) {
      this.push(MSG.delSetElem, 0, elementsMessage(this.w, this.table, m[2]!, [], undefined, m[1] as Family), line);
    } else {
      throw new Error('not a command xennet writes');
    }
  }

  /** A set a `list` names: declared earlier, or one of the dispatch sets (their declaration is fixed). */
  private known(set: string): SetDeclaration {
    return this.sets.get(set) ?? declaration(set, 'type ifname;', false);
  }

  private rule(family: Family, chain: string, text: string, line: string): void {
    const { rule, comment } = splitComment(text);
    const native = parseNftRule(rule);
    const ids = native.sets.map(() => this.nextSetId++);
    native.sets.forEach((s, i) => {
      this.push(MSG.newSet, NLM_F_CREATE, setMessage(this.w, this.table, anonymousDeclaration(s), ids[i]!, family), `${line} (its set ${i + 1})`);
      const elements = s.elements.map((e) => ({ e: { key: e.key }, flags: e.end ? 1 : 0 }));
      this.push(MSG.newSetElem, NLM_F_CREATE, elementsMessage(this.w, this.table, '__set%d', elements, ids[i], family), `${line} (the elements of its set ${i + 1})`);
    });
    const naming = (ref: SetRef): { name: string; id?: number } => ('name' in ref ? { name: ref.name } : { name: '__set%d', id: ids[ref.anon]! });
    const exprs = this.exprWriter;
    native.exprs.forEach((e) => writeExpr(exprs, e, naming));
    const written = exprs.take();
    const w = this.w.raw(GENMSG[family]).str(1, this.table).str(2, chain);
    w.bytes(4 | NLA_F_NESTED, written);
    // Its userdata: its comment (libnftnl's record type 0, its length, the text and a NUL), and
    // the digest of its expressions (expr-digest.ts).
    if (comment !== undefined) {
      const c = Buffer.from(`${comment}\0`);
      const digest = exprDigest(written, ({ id }) => {
        const i = id === undefined ? -1 : ids.indexOf(id);
        return i < 0 ? undefined : native.sets[i]!.elements.map((e) => ({ key: e.key, flags: e.end ? 1 : 0 }));
      });
      w.bytes(7, Buffer.concat([Buffer.from([0, c.length]), c, ...(digest ? [Buffer.from([DIGEST_UDATA, digest.length]), digest] : [])]));
    }
    this.push(MSG.newRule, NLM_F_CREATE | NLM_F_APPEND, w.take(), line);
  }
}

/** A rule's expressions as NFTA_RULE_EXPRESSIONS holds them (its anonymous sets named `__set%d`). */
export function ruleExpressionBytes(rule: string): Buffer {
  const native = parseNftRule(rule);
  const w = new AttrWriter();
  native.exprs.forEach((e) => writeExpr(w, e, (ref) => ('name' in ref ? { name: ref.name } : { name: '__set%d' })));
  return w.take();
}

/**
 * The messages of a script, in its parts (renderNft's `# part` comments: what may be a
 * transaction of its own; what comes before the first is a part too); an error naming the line
 * xennet cannot write natively.
 */
export function scriptParts(script: string, table: string = NFT_TABLE): NftMessage[][] {
  const t = new ScriptTranslator(table);
  const parts: NftMessage[][] = [];
  let from = 0;
  for (const raw of script.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      if (line.startsWith(PART_MARK) && t.out.length > from) {
        parts.push(t.out.slice(from));
        from = t.out.length;
      }
      continue;
    }
    try {
      t.line(line);
    } catch (e) {
      if (e instanceof XennetError) throw e;
      throw new XennetError('internal', `cannot write natively: ${line} (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  if (t.out.length > from) parts.push(t.out.slice(from));
  return parts;
}

/** The messages of a script, as one transaction. */
export function scriptMessages(script: string, table: string = NFT_TABLE): NftMessage[] {
  return scriptParts(script, table).flat();
}
