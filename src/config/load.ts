/**
 * Loads the rule file: YAML (with source positions) -> schema validation -> cross-field checks.
 * Every error names the file, line, column and key path, says what is wrong and what is valid.
 */
import { readFileSync, statSync, type Stats } from 'node:fs';
import { createRequire } from 'node:module';
import * as jsyaml from 'js-yaml';
import type * as Yaml from 'yaml';
import type { Document, LineCounter } from 'yaml';

/** `yaml` (source positions) is loaded only when a file has problems to point at. */
let yamlModule: typeof Yaml | undefined;
const yaml = (): typeof Yaml => (yamlModule ??= createRequire(import.meta.url)('yaml') as typeof Yaml);
import type { z } from 'zod';
import { XennetError } from '../sys/errors.js';
import { cidrBytes, cidrText, type Cidr } from '../net/index.js';
import { policySchema, type PolicyFile } from './schema.js';

export { DEFAULT_RULES_PATH, rulesPath, rulesSource, type RulesSource } from './paths.js';
import { danglingTarget } from './paths.js';
import { statIdentity } from '../sys/file-identity.js';
import { keysAt, nearest } from './suggest.js';

export interface ConfigProblem {
  file: string;
  line: number;
  col: number;
  path: string;
  message: string;
  /** What was probably meant (a key or value of the schema near the one written). */
  suggestion?: string;
}

/** A problem with the whole file (missing, unreadable, empty) has line 0: it has no position. */
export function formatProblem(p: ConfigProblem): string {
  if (p.line === 0) return `${p.file}: ${p.message}`;
  return `${p.file}:${p.line}:${p.col}: ${p.path === '' ? '' : `${p.path}: `}${p.message}${p.suggestion ? ` (did you mean ${JSON.stringify(p.suggestion)}?)` : ''}`;
}

/** The problems without the file name (for messages that name the file already). */
export function problemsText(problems: readonly ConfigProblem[]): string {
  return problems.map((p) => (p.line === 0 ? p.message : `${p.line}:${p.col} ${p.path === '' ? '' : `${p.path}: `}${p.message}`)).join('; ');
}

export class ConfigError extends XennetError {
  readonly problems: ConfigProblem[];
  constructor(file: string, problems: ConfigProblem[], whole?: { message: string; hint: string }) {
    super('usage', whole ? whole.message : `rule file ${file} is invalid:\n${problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`, {
      hint: whole ? whole.hint : '`xennet check` validates a rule file; `xennet schema` prints the JSON Schema',
      exitCode: 1,
    });
    this.problems = problems;
  }

  /** With --json: the error, and every problem as a record (a whole-file problem has line 0). */
  override toJSON(): ReturnType<XennetError['toJSON']> & { problems: { file: string; line: number; column: number; key: string; message: string; suggestion: string | null }[] } {
    return { ...super.toJSON(), problems: this.problems.map((p) => ({ file: p.file, line: p.line, column: p.col, key: p.path, message: p.message, suggestion: p.suggestion ?? null })) };
  }
}

/**
 * The rule file as a whole cannot be used (missing where a file was named, unreadable, not a
 * regular file, empty): one problem without a position, a message that names the file and a hint
 * that says what to do.
 */
export class RuleFileError extends ConfigError {
  constructor(file: string, problem: string, hint: string) {
    super(file, [{ file, line: 0, col: 0, path: '', message: problem }], { message: `rule file ${file} ${problem}`, hint });
  }
}

export interface LoadedPolicy {
  file: string;
  policy: PolicyFile;
  /** False when the file does not exist and the built-in defaults apply. */
  fromFile: boolean;
  /** The file's text (when read), and its identity as seen before it was read (see config/policy-cache.ts). */
  text?: string;
  identity?: string;
}

type Path = readonly PropertyKey[];
const pathText = (path: Path): string => path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replace(/\.\[/g, '[');

/** Source position of the node at `path` (or of the key, for unknown-key errors). */
function positionOf(doc: Document, lc: LineCounter, path: Path, key?: string): { line: number; col: number } {
  const { isMap, isNode, isPair, isScalar } = yaml();
  let offset = 0;
  let node: unknown = doc.contents;
  for (const seg of path) {
    if (!isNode(node)) break;
    const next = (node as { get?: (k: unknown, keepScalar: boolean) => unknown }).get?.(seg, true);
    if (!isNode(next)) break;
    node = next;
  }
  if (key !== undefined && isMap(node)) {
    const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && it.key.value === key);
    if (pair && isScalar(pair.key) && pair.key.range) offset = pair.key.range[0];
  } else if (isNode(node) && node.range) {
    offset = node.range[0];
  }
  const pos = lc.linePos(offset);
  return { line: pos.line, col: pos.col };
}

/**
 * Where keys are in a rule file's text: the line of the key at the end of `path` (e.g.
 * ['guests', 'web01', 'inbound']), or undefined when the file does not have it.
 */
export function keyLines(text: string): (path: readonly string[]) => number | undefined {
  const lc = new (yaml().LineCounter)();
  const doc = yaml().parseDocument(text, { lineCounter: lc, prettyErrors: false });
  const { isSeq, isNode } = yaml();
  return (path) => {
    if (path.length === 0) return undefined;
    // A list item (`allow_in`, 2): the item's own line.
    const last = path[path.length - 1]!;
    const parent = path.length > 1 ? doc.getIn(path.slice(0, -1), true) : undefined;
    if (isSeq(parent) && /^\d+$/.test(last)) {
      const item: unknown = parent.items[Number(last)];
      return isNode(item) && item.range ? lc.linePos(item.range[0]).line : undefined;
    }
    if (!doc.hasIn(path)) return undefined;
    return positionOf(doc, lc, path.slice(0, -1), last).line;
  };
}

/** A number's bound in xennet's words: a bound no rule file reaches (Number.MAX_SAFE_INTEGER) is "too large". */
function bound(issue: { code: string; minimum?: unknown; maximum?: unknown; inclusive?: boolean; origin?: string }): string | undefined {
  const limit = issue.code === 'too_big' ? issue.maximum : issue.minimum;
  if (typeof limit !== 'number' && typeof limit !== 'bigint') return undefined;
  const n = Number(limit);
  const what = issue.origin === 'array' ? (n === 1 ? 'item' : 'items') : issue.origin === 'string' ? 'characters' : '';
  if (issue.code === 'too_big') {
    if (n >= Number.MAX_SAFE_INTEGER) return 'is too large';
    return issue.inclusive === false ? `must be less than ${n}${what ? ` ${what}` : ''}` : `must be at most ${n}${what ? ` ${what}` : ''}`;
  }
  if (issue.origin === 'array' && n === 1) return 'must not be empty';
  return issue.inclusive === false ? `must be more than ${n}${what ? ` ${what}` : ''}` : `must be at least ${n}${what ? ` ${what}` : ''}`;
}

/** What validation found, in xennet's words (the library's own text never reaches the operator), sorted by position. */
function zodProblems(file: string, doc: Document, lc: LineCounter, issues: z.core.$ZodIssue[]): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const valid = keysAt(policySchema, issue.path) ?? [];
      for (const k of issue.keys) {
        const pos = positionOf(doc, lc, issue.path, k);
        const suggestion = nearest(k, valid);
        out.push({ file, ...pos, path: pathText([...issue.path, k]), message: `unknown key ${JSON.stringify(k)}`, ...(suggestion ? { suggestion } : {}) });
      }
      continue;
    }
    const pos = positionOf(doc, lc, issue.path);
    // The value as written (the library reports none): for the message and the suggestion.
    const given: unknown = issue.input ?? doc.getIn(issue.path.filter((k): k is string | number => typeof k !== 'symbol'));
    let message = issue.message;
    let suggestion: string | undefined;
    if (issue.code === 'invalid_type' && given === undefined) message = `is required (${issue.expected === 'object' ? 'a mapping' : issue.expected === 'array' ? 'a list' : `a ${issue.expected}`})`;
    else if (issue.code === 'invalid_type') message = `must be ${issue.expected === 'object' ? 'a mapping of keys' : issue.expected === 'array' ? 'a list' : issue.expected === 'int' ? 'a whole number' : `a ${issue.expected}`}, not ${given === null ? 'empty' : Array.isArray(given) ? 'a list' : typeof given === 'object' ? 'a mapping' : JSON.stringify(given)}`;
    else if (issue.code === 'invalid_value' && 'values' in issue && issue.message.startsWith('Invalid')) {
      message = `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
      if (typeof given === 'string') suggestion = nearest(given, issue.values.filter((v): v is string => typeof v === 'string'));
    } else if ((issue.code === 'too_big' || issue.code === 'too_small') && /^Too (big|small)/.test(issue.message)) message = bound(issue as never) ?? message;
    else if (issue.code === 'invalid_key') message = 'is not a valid name here (see `xennet schema`)';
    else if (issue.code === 'invalid_union') message = issue.message === 'Invalid input' ? 'is not valid here (see `xennet schema`)' : issue.message;
    out.push({ file, ...pos, path: pathText(issue.path), message, ...(suggestion ? { suggestion } : {}) });
  }
  // A number past both the schema's bound and the largest whole number is said once, by its bound.
  const said = out.filter((p) => !(p.message === 'is too large' && out.some((q) => q !== p && q.path === p.path)));
  return said.sort((a, b) => a.line - b.line || a.col - b.col);
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

/**
 * A prefix as a range of fixed-width hex strings (first and last address), for overlap checks:
 * within a family they compare as the numbers do, without BigInt.
 */
function rangeOf(c: Cidr): { start: string; end: string } {
  const bytes = cidrBytes(c);
  let start = '';
  let end = '';
  bytes.forEach((b, i) => {
    const hostBits = Math.min(8, Math.max(0, (i + 1) * 8 - c.len));
    start += HEX[b]!;
    end += HEX[b | ((1 << hostBits) - 1)]!;
  });
  return { start, end };
}

interface OwnedPrefix {
  owner: string;
  path: Path;
  c: Cidr;
  range: { start: string; end: string };
}

/**
 * Prefixes that overlap an earlier one (by position in the file), in O(n log n): sorted by
 * family and start, prefixes are nested or disjoint, so a stack of the open ones finds every
 * prefix that lies inside another.
 */
function overlapping(prefixes: OwnedPrefix[]): [OwnedPrefix, OwnedPrefix][] {
  const out: [OwnedPrefix, OwnedPrefix][] = [];
  for (const family of ['ipv4', 'ipv6'] as const) {
    const sorted = prefixes
      .map((p, order) => ({ p, order }))
      .filter(({ p }) => p.c.family === family)
      .sort((a, b) => (a.p.range.start < b.p.range.start ? -1 : a.p.range.start > b.p.range.start ? 1 : a.p.c.len - b.p.c.len || a.order - b.order));
    const open: { p: OwnedPrefix; order: number }[] = [];
    for (const cur of sorted) {
      while (open.length > 0 && open[open.length - 1]!.p.range.end < cur.p.range.start) open.pop();
      const outer = open[open.length - 1];
      // Report on the later of the two in the file, naming the earlier.
      if (outer) out.push(outer.order < cur.order ? [cur.p, outer.p] : [outer.p, cur.p]);
      open.push(cur);
    }
  }
  return out;
}

/** Checks across fields and guests that the schema cannot express. */
function crossProblems(policy: PolicyFile): { path: Path; message: string }[] {
  const out: { path: Path; message: string }[] = [];
  const at = (path: Path, message: string): void => {
    out.push({ path, message });
  };
  const macs = new Map<string, string>();
  const prefixes: OwnedPrefix[] = [];
  for (const [name, g] of Object.entries(policy.guests ?? {})) {
    // xl's names for a guest in live migration: its policy comes from its own name.
    const moving = /^(.+)(--incoming|--migratedaway)$/.exec(name);
    if (moving) at(['guests', name], `${JSON.stringify(name)} is the name xl gives ${moving[1]} during a live migration, and the policy then comes from ${JSON.stringify(moving[1])}: name the entry ${JSON.stringify(moving[1])}`);
    const ifaces = [{ path: ['guests', name] as Path, mac: g.mac, ipv4: g.ipv4, ipv6: g.ipv6, devid: 0 }, ...(g.interfaces ?? []).map((i, k) => ({ path: ['guests', name, 'interfaces', k] as Path, mac: i.mac, ipv4: i.ipv4, ipv6: i.ipv6, devid: i.devid }))];
    const devids = new Set<number>();
    ifaces.forEach((iface, k) => {
      if (k > 0 && iface.devid === undefined && iface.mac === undefined) at(iface.path, 'an interface needs devid or mac to be matched to a vif');
      if (k > 0 && iface.devid !== undefined) {
        if (devids.has(iface.devid) || (iface.devid === 0 && (g.mac || g.ipv4 || g.ipv6))) at([...iface.path, 'devid'], `devid ${iface.devid} is described twice`);
        devids.add(iface.devid);
      }
      if (iface.mac) {
        const other = macs.get(iface.mac);
        if (other) at([...iface.path, 'mac'], `MAC ${iface.mac} is also used by ${other}; every guest interface needs its own`);
        else macs.set(iface.mac, `guest ${name}`);
      }
      for (const fam of ['ipv4', 'ipv6'] as const) {
        (iface[fam] ?? []).forEach((c, i) => prefixes.push({ owner: `guest ${name}`, path: [...iface.path, fam, i], c, range: rangeOf(c) }));
      }
    });
    for (const dir of ['allow_in', 'allow_out'] as const) {
      (g[dir] ?? []).forEach((r, i) => {
        const key = dir === 'allow_in' ? 'to' : 'from';
        if (r[key]) at(['guests', name, dir, i, key], `${dir} rules take ${dir === 'allow_in' ? 'from' : 'to'}, not ${key}`);
        for (const cidrKey of ['from', 'to'] as const) {
          (r[cidrKey] ?? []).forEach((c, j) => {
            if (r.proto === 'icmp' && c.family === 'ipv6') at(['guests', name, dir, i, cidrKey, j], 'proto icmp is IPv4; use icmpv6 for IPv6 addresses');
            if (r.proto === 'icmpv6' && c.family === 'ipv4') at(['guests', name, dir, i, cidrKey, j], 'proto icmpv6 is IPv6; use icmp for IPv4 addresses');
          });
        }
      });
    }
  }
  for (const [later, earlier] of overlapping(prefixes)) {
    at(later.path, `${cidrText(later.c)} overlaps ${cidrText(earlier.c)} of ${earlier.owner}; an address belongs to one guest`);
  }
  return out;
}

/** Guest keys JavaScript objects cannot hold as data (the schema would silently drop them). */
function reservedKeyProblems(file: string, doc: Document, lc: LineCounter, js: unknown): ConfigProblem[] {
  const guests = js !== null && typeof js === 'object' ? (js as Record<string, unknown>)['guests'] : undefined;
  if (guests === null || typeof guests !== 'object') return [];
  return Object.getOwnPropertyNames(guests)
    .filter((k) => k === '__proto__')
    .map((k) => ({ file, ...positionOf(doc, lc, ['guests'], k), path: `guests.${k}`, message: `${JSON.stringify(k)} cannot be a guest name in xennet's rule file; rename the domain` }));
}

/**
 * Parses and validates rule file text; throws ConfigError with every problem found.
 *
 * Valid files take a fast path (js-yaml with the YAML 1.2 core schema, then the schema and the
 * cross checks). Anything that fails there is parsed again with `yaml`, which keeps source
 * positions, so every problem is reported as file:line:col; a file with aliases or a
 * `__proto__` key always takes that path (it bounds alias expansion and sees every key).
 */
export function parsePolicy(text: string, file: string): PolicyFile {
  const fast = fastLoad(text);
  if (fast !== undefined) {
    const parsed = policySchema.safeParse(fast);
    if (parsed.success && crossProblems(parsed.data).length === 0) return parsed.data;
  }
  return parseWithPositions(text, file);
}

/** The document as plain data, or undefined when the fast path cannot vouch for it. */
function fastLoad(text: string): unknown {
  // Quoted strings and comments cannot hold an anchor or alias; anything else that might sends
  // the file to the careful path.
  if (/[*&]|__proto__/.test(text.replace(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\n]|'')*'|(?:^|[ \t])#[^\n]*/gm, ''))) return undefined;
  try {
    return jsyaml.load(text, { schema: jsyaml.CORE_SCHEMA, json: false }) ?? {};
  } catch {
    return undefined;
  }
}

/** Where the quoted string that is still open at the end of `text` starts (comments skipped), if one is. */
export function unclosedQuote(text: string): number | undefined {
  let open: number | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (open === undefined) {
      if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) {
        const nl = text.indexOf('\n', i);
        if (nl < 0) break;
        i = nl;
      } else if ((c === '"' || c === "'") && (i === 0 || /[\s:,[{\-?]/.test(text[i - 1]!))) {
        open = i;
      }
    } else if (text[open] === '"') {
      if (c === '\\') i++;
      else if (c === '"') open = undefined;
    } else if (c === "'") {
      if (text[i + 1] === "'") i++;
      else open = undefined;
    }
  }
  return open;
}

function parseWithPositions(text: string, file: string): PolicyFile {
  const lc = new (yaml().LineCounter)();
  const doc = yaml().parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors
        .map((e) => {
          // An unterminated string is reported where the file ends: said where it starts.
          const open = e.code === 'MISSING_CHAR' && /closing ["']quote/.test(e.message) ? unclosedQuote(text) : undefined;
          const pos = lc.linePos(open ?? e.pos[0]);
          const message = open !== undefined ? `YAML: this ${text[open] === '"' ? 'double' : 'single'}-quoted string is never closed` : `YAML: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`;
          return { file, line: pos.line, col: pos.col, path: '', message };
        })
        .sort((a, b) => a.line - b.line || a.col - b.col),
    );
  }
  let js: unknown;
  try {
    // maxAliasCount bounds alias expansion: a "billion laughs" file is refused, not expanded.
    js = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (e) {
    const pos = lc.linePos(0);
    throw new ConfigError(file, [{ file, line: pos.line, col: pos.col, path: '', message: `YAML: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}` }]);
  }
  const reserved = reservedKeyProblems(file, doc, lc, js);
  if (reserved.length > 0) throw new ConfigError(file, reserved);
  const parsed = policySchema.safeParse(js);
  if (!parsed.success) throw new ConfigError(file, zodProblems(file, doc, lc, parsed.error.issues));
  const cross = crossProblems(parsed.data).map((p) => ({ file, ...positionOf(doc, lc, p.path), path: pathText(p.path), message: p.message }));
  if (cross.length > 0) throw new ConfigError(file, cross.sort((a, b) => a.line - b.line || a.col - b.col));
  return parsed.data;
}

/** The file as text, or one error for a file that is not UTF-8 text (a binary one: not 16 YAML errors). */
function textOf(file: string, bytes: Buffer): string {
  const nul = bytes.indexOf(0);
  let bad = nul;
  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    // Where it stops being UTF-8 (lead bytes and their continuations; the decoder said whether).
    let lo = 0;
    while (lo < bytes.length) {
      const b = bytes[lo]!;
      const n = b < 0x80 ? 0 : b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1;
      if (n < 0 || lo + n >= bytes.length + (n === 0 ? 1 : 0) || [...bytes.subarray(lo + 1, lo + 1 + n)].some((c) => (c & 0xc0) !== 0x80)) break;
      lo += n + 1;
    }
    bad = nul >= 0 ? Math.min(nul, lo) : lo;
  }
  if (bad < 0) return text;
  const before = bytes.subarray(0, bad).toString('utf8');
  const line = before.split('\n').length;
  const col = before.length - before.lastIndexOf('\n');
  throw new RuleFileError(file, `is not a text file: byte 0x${bytes[bad]!.toString(16).padStart(2, '0')} at line ${line}, column ${col} is ${bytes[bad] === 0 ? 'a NUL' : 'not UTF-8'}`, 'a rule file is YAML text in UTF-8 (`xennet schema` prints its format); nothing was changed');
}

/** Rule files larger than this are refused unread (5000 fully described guests take about 1.2 MiB). */
export const MAX_RULE_FILE_BYTES = 4 * 1024 * 1024;

export interface LoadOptions {
  /**
   * A missing file means the built-in defaults (anti-spoofing from xenstore). Only for the default
   * path (see rulesSource): a file named by --rules or $XENNET_RULES must exist.
   */
  absentOk?: boolean;
}

/** Why a file cannot be read, for an errno of stat or read. */
function unreadable(file: string, e: NodeJS.ErrnoException, absentOk: boolean): RuleFileError {
  switch (e.code) {
    case 'ENOENT':
      return new RuleFileError(
        file,
        'does not exist',
        absentOk ? 'create it (`version: 1` at least)' : 'check the path given by --rules or XENNET_RULES: only the default /etc/xen/xennet.yaml may be absent (then the built-in defaults apply); nothing was changed',
      );
    case 'ENOTDIR':
      return new RuleFileError(file, 'cannot be read: a component of its path is a file, not a directory', 'check the path given by --rules or XENNET_RULES; nothing was changed');
    case 'EACCES':
    case 'EPERM':
      return new RuleFileError(file, 'cannot be read: permission denied', 'run xennet as root, or make the file readable; nothing was changed');
    case 'EISDIR':
      return new RuleFileError(file, 'is a directory, not a file', 'name the YAML file itself, e.g. /etc/xen/xennet.yaml; nothing was changed');
    default:
      return new RuleFileError(file, `cannot be read: ${e.message}`, 'check the file; nothing was changed');
  }
}

/** A rule file with nothing but whitespace and comments. */
const isBlank = (text: string): boolean => text.replace(/(^|[ \t])#[^\n]*/g, '').trim() === '';

/**
 * Loads the rule file. A missing file means the built-in defaults only with `absentOk` (the
 * default path); any file that exists must be a valid rule file: empty, a directory, a FIFO or an
 * unreadable file is an error, like a missing file named explicitly.
 */
export function loadPolicy(file: string, options: LoadOptions = {}): LoadedPolicy {
  const absentOk = options.absentOk === true;
  let st: Stats;
  try {
    st = statSync(file);
  } catch (e) {
    const target = (e as NodeJS.ErrnoException).code === 'ENOENT' ? danglingTarget(file) : undefined;
    if (target !== undefined) {
      throw new RuleFileError(file, `is a link to ${target}, which does not exist`, 'make the link point to the rule file (or remove the link to use the built-in defaults); nothing was changed');
    }
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && absentOk) return { file, policy: { version: 1 }, fromFile: false };
    throw unreadable(file, e as NodeJS.ErrnoException, absentOk);
  }
  // Before the read: a file replaced during it is never recorded under the new one's identity.
  let identity: string;
  try {
    identity = statIdentity(statSync(file, { bigint: true }));
  } catch (e) {
    throw unreadable(file, e as NodeJS.ErrnoException, absentOk);
  }
  if (st.isDirectory()) throw unreadable(file, Object.assign(new Error('is a directory'), { code: 'EISDIR' }), absentOk);
  // Never opened: reading a FIFO would wait for a writer, a device could be endless.
  if (!st.isFile()) throw new RuleFileError(file, 'is not a regular file (a FIFO, socket or device)', 'name a regular YAML file; nothing was changed');
  if (st.size > MAX_RULE_FILE_BYTES) {
    throw new ConfigError(file, [{ file, line: 1, col: 1, path: '', message: `the file is ${(st.size / 1024 / 1024).toFixed(1)} MiB; a rule file may be at most ${MAX_RULE_FILE_BYTES / 1024 / 1024} MiB` }]);
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw unreadable(file, e as NodeJS.ErrnoException, absentOk);
  }
  const text = textOf(file, bytes);
  if (isBlank(text)) throw new RuleFileError(file, 'is empty', 'write `version: 1` at least (the built-in defaults), then the guests; `xennet schema` prints the format; nothing was changed');
  return { file, policy: parsePolicy(text, file), fromFile: true, text, identity };
}
