/**
 * What xennet has installed, and what hooks have staged, in the state directory:
 *
 *   firewall/index.json           which vifs have rules: bridge, inbound filtering, owner
 *                                 (domid/devid), the install token, and `dirty` (a change was
 *                                 started and not confirmed: the next commit reconciles in full)
 *   firewall/index.journal        the daemon's commits since index.json was written: one line per
 *                                 write, the entries it changed (see saveIndex)
 *   firewall/vif/<name>.json      a vif's compiled chains per table
 *   firewall/pending/<token>.json a staged change (+ .chains.json), owned by the process that
 *                                 staged it (pid, start time, boot)
 *
 * Every file is written atomically and durably. Nothing here is ever fatal: a file that does not
 * parse is reported, set aside and rebuilt from the live rules; a staged change whose process is
 * gone is discarded, never committed; temporary files of killed writers are swept. An index from
 * an earlier boot describes rules that are gone and is ignored.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cidrText, isIfName, parseCidr, type IfName } from '../net/index.js';
import { currentBootId } from '../sys/boot.js';
import { pathIdentity, statIfAny } from '../sys/file-identity.js';
import type { Logger } from '../sys/log.js';
import { identityAlive, type ProcessIdentity } from '../sys/process.js';
import { fsyncDirectory, readJsonTolerant, removeFile, setAside, stateDir, sweepTempFiles, writeAllSync, writeJsonAtomic, writeJsonFilesAtomic } from '../sys/statefile.js';
import { parseClaims } from './claims.js';
import { parseFilterRecord, type FilterRecord } from './widening.js';
import { emptyRuleSet, tableNames, type Claims, type BackendKind, type Engine, type RuleSet, type TableName } from './model.js';

export interface Owner {
  domid: number;
  devid: number;
}

/** What the shared chains need to know of an installed vif (see TreeMember). */
export interface MemberFacts {
  bridge: IfName;
  inbound: boolean;
  isolated: boolean;
  /** Whether it learns its addresses (its DHCP replies are handed to the daemon). */
  learning?: true;
  /** What only its ports may carry as a source (the identity guard). */
  claims?: Claims;
  /** The policy its rules were compiled from (what `plan` compares to find widenings). */
  filter?: FilterRecord;
  /** Its declared addresses and prefixes and its EUI-64 link-local (CIDR texts), guard or not. */
  declared?: { ipv4: string[]; ipv6: string[] };
}

export interface IndexEntry {
  /** The bridge the vif is (or will be) a port of; null when unknown (rules adopted from live). */
  bridge: IfName | null;
  /** Whether traffic to it is filtered (it is in the to-guest tree). */
  inbound: boolean;
  /** Whether it is isolated from the other guests. */
  isolated: boolean;
  /** Whether it learns its addresses. */
  learning?: true;
  /** Its declared host addresses (see MemberFacts). */
  declared?: { ipv4: string[]; ipv6: string[] };
  claims?: Claims;
  /** The policy its rules were compiled from (absent: adopted from live, or an older xennet). */
  filter?: FilterRecord;
  owner?: Owner;
  /** What its domain's identity was read from (domain-identity.ts namesKey): a rename changes it. */
  names?: string;
  /** The change that installed it. */
  token?: string;
  /** `installing` from the write-ahead record until the kernel confirmed the change. */
  state: 'installing' | 'installed';
  /** Who was installing it (a hook); checked when the change was never confirmed. */
  stager?: ProcessIdentity;
  /** What was installed (see {@link fingerprintOf}): a repeated install of the same needs no commit. */
  fingerprint?: string;
}

export interface FirewallIndex {
  version: 2;
  bootId: string;
  /** Which write of index.json this is: the journal's lines name the one they follow. */
  gen?: string;
  backend?: string;
  /** What the installed firewall was compiled to (absent: xtables, as before the nftables backend). */
  engine?: Engine;
  /** A change was started and not confirmed: the live rules may differ from this record. */
  dirty: boolean;
  vifs: Record<string, IndexEntry>;
  /**
   * Guests whose removal was written ahead and not confirmed. The change that asked for it may
   * have died with its committer (a hook or the daemon killed): the next commit finishes it, and
   * does not take their chains, still live, back into the record as another guest's.
   */
  removing?: string[];
}

export interface StagedChange {
  op: 'install' | 'remove';
  name: IfName;
  /** For installs: where the vif goes, whether it filters inbound, whether it is isolated, its claims. */
  member?: MemberFacts;
  owner?: Owner;
  /** For installs: what its domain's identity was read from. */
  names?: string;
  /** Unique per change: tells a hook whether its change was committed. */
  token: string;
  stager: ProcessIdentity;
  /** Staging time (ms), for ordering: a later change to the same vif wins. */
  at: number;
  /** For installs: what it installs (see {@link fingerprintOf}). */
  fingerprint?: string;
  /** For removals: the token of the install recorded when it was staged (see readStaged). */
  replaces?: string;
}

/** A new change's token: unique per change (see StagedChange.token, IndexEntry.token). */
export function newToken(): string {
  return `${process.pid}-${randomUUID()}`;
}

export const dirOf = (env: NodeJS.ProcessEnv): string => join(stateDir(env), 'firewall');
const indexPath = (env: NodeJS.ProcessEnv): string => join(dirOf(env), 'index.json');
const journalPath = (indexFile: string): string => indexFile.replace(/\.json$/, '.journal');

/**
 * What changes whenever the index is written, or 'none': cheap to poll. The index is replaced by a
 * rename (a new inode each time), its journal appended to; the times in nanoseconds and the ctime
 * also tell apart two writes in one millisecond and a rewrite in place with the old mtime put back.
 */
export const indexStamp = (env: NodeJS.ProcessEnv): string => stampOf(indexPath(env));
const stampOf = (path: string): string => {
  const base = pathIdentity(path);
  return base === undefined ? 'none' : `${base}+${pathIdentity(journalPath(path)) ?? 'none'}`;
};
export const pendingDir = (env: NodeJS.ProcessEnv): string => join(dirOf(env), 'pending');
const vifPath = (name: string, env: NodeJS.ProcessEnv): string => join(dirOf(env), 'vif', `${name}.json`);

export function emptyIndex(): FirewallIndex {
  return { version: 2, bootId: currentBootId(), dirty: false, vifs: {} };
}

const isOwner = (o: unknown): o is Owner => typeof o === 'object' && o !== null && Number.isInteger((o as Owner).domid) && Number.isInteger((o as Owner).devid);
const isIdentity = (o: unknown): o is ProcessIdentity =>
  typeof o === 'object' && o !== null && Number.isInteger((o as ProcessIdentity).pid) && typeof (o as ProcessIdentity).start === 'string' && typeof (o as ProcessIdentity).boot === 'string';

/** Declared host addresses read back from the state directory (hostile until parsed): canonical texts only. */
function parseDeclared(raw: unknown): { ipv4: string[]; ipv6: string[] } | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  const list = (v: unknown, family: 'ipv4' | 'ipv6'): string[] | undefined => {
    if (!Array.isArray(v) || v.length > 4096) return undefined;
    const out: string[] = [];
    for (const x of v as unknown[]) {
      if (typeof x !== 'string') return undefined;
      try {
        const c = parseCidr(x, 'address');
        if (c.family !== family || cidrText(c) !== x) return undefined;
      } catch {
        return undefined;
      }
      out.push(x);
    }
    return out;
  };
  const ipv4 = list(r['ipv4'], 'ipv4');
  const ipv6 = list(r['ipv6'], 'ipv6');
  return ipv4 && ipv6 ? { ipv4, ipv6 } : undefined;
}

function entryOf(raw: unknown): IndexEntry | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  const bridge = r['bridge'];
  if (!(bridge === null || (typeof bridge === 'string' && isIfName(bridge)))) return undefined;
  const e: IndexEntry = { bridge: bridge as IfName | null, inbound: r['inbound'] === true, isolated: r['isolated'] === true, state: r['state'] === 'installing' ? 'installing' : 'installed' };
  if (r['learning'] === true) e.learning = true;
  const declared = parseDeclared(r['declared']);
  if (declared) e.declared = declared;
  if (isOwner(r['owner'])) e.owner = { domid: r['owner'].domid, devid: r['owner'].devid };
  const claims = parseClaims(r['claims']);
  if (claims) e.claims = claims;
  const filter = parseFilterRecord(r['filter']);
  if (filter) e.filter = filter;
  if (typeof r['names'] === 'string') e.names = r['names'];
  if (typeof r['token'] === 'string') e.token = r['token'];
  if (isIdentity(r['stager'])) e.stager = r['stager'];
  if (typeof r['fingerprint'] === 'string') e.fingerprint = r['fingerprint'];
  return e;
}

export interface LoadedIndex {
  index: FirewallIndex;
  /**
   * The record cannot say what is installed: the file is missing, from an earlier boot (rules may
   * have been restored at boot by another tool), or unreadable (set aside when `repair`). The next
   * commit reconciles from the live rules.
   */
  recovered: boolean;
  /**
   * The backend a record that cannot say what is installed still names (from an earlier boot, or
   * with an entry that does not parse; see kindRecordedIn). A reboot empties the tables, not the
   * operator's choice: the host comes back on the backend it had.
   */
  lastKind?: BackendKind;
  /** Why the file there could not be read as an index (absent: it could, or there is none). */
  unreadable?: string;
}

/**
 * The backend a record names, even one that cannot say what is installed (from an earlier boot,
 * or with an entry that does not parse): its engine, else xtables when it lists guests (a record
 * from before the nftables backend).
 */
function kindRecordedIn(raw: Partial<Record<keyof FirewallIndex, unknown>> | undefined): BackendKind | undefined {
  if (!raw || raw.version !== 2) return undefined;
  const engine = raw.engine as { kind?: unknown } | undefined;
  if (engine?.kind === 'xtables' || engine?.kind === 'nftables') return engine.kind;
  return typeof raw.vifs === 'object' && raw.vifs !== null && Object.keys(raw.vifs).length > 0 ? 'xtables' : undefined;
}

/**
 * The index of this boot. Nothing here is fatal: with `repair` (the caller holds the hotplug lock
 * and will reconcile), a file that does not parse is moved aside and reported; without, it is
 * only read.
 */
export function loadIndex(env: NodeJS.ProcessEnv, log: Logger, options: { repair?: boolean } = {}): LoadedIndex {
  const path = indexPath(env);
  if (!remembering) return parseIndexRaw(path, readIndexRaw(path).r, log, options);
  // The same files as last time (index.json replaced by a rename, its journal appended to): their parse.
  const before = indexStamp(env);
  if (memo && memo.path === path && memo.stamp === before && before !== 'none') return handOut(memo.loaded);
  const { r, journal } = readIndexRaw(path);
  const loaded = parseIndexRaw(path, r, log, options);
  if (!loaded.recovered && indexStamp(env) === before) remember(path, before, loaded, journal);
  return loaded;
}

/** What a process knows of index.journal: its lines of index.json's generation, its size, and whether it ends cleanly. */
interface JournalState {
  lines: number;
  bytes: number;
  clean: boolean;
}

/** A journal larger than this is not read (the daemon writes index.json anew long before). */
const JOURNAL_MAX_BYTES = 64 * 1024 * 1024;
/** index.json is written anew (the journal emptied) once the journal has this many lines... */
const JOURNAL_MAX_LINES = 256;
/** ...or more bytes than this or index.json, whichever is more... */
const JOURNAL_MIN_BYTES = 256 * 1024;
/** ...or a write changes more guests than this (an apply). */
const JOURNAL_MAX_ENTRIES = 64;

/**
 * The last index this process parsed or wrote, by its files' stamp: the daemon's hooks, watches
 * and checks each load it, and parsing and checking 1000 guests' entries costs about 35 ms. Only a
 * process that loads the index again and again turns it on (the daemon): a one-shot process would
 * pay for a copy for nothing. Such a process also writes its commits to the journal (saveIndex).
 */
let memo: { path: string; stamp: string; loaded: LoadedIndex; journal: JournalState; baseBytes: number } | undefined;
let remembering = false;

/** Keep the last parsed index in this process (see memo). */
export function rememberIndexParses(on = true): void {
  remembering = on;
  if (!on) memo = undefined;
}

/**
 * The index's entry for `name` as the files record it now, read only (no repair, no copy, no
 * check of its fields): the remembered one while the files are the ones remembered, else read raw
 * (a hook asking whether its change was committed, several times a call).
 */
export function recordedEntry(name: string, env: NodeJS.ProcessEnv): Readonly<{ token?: unknown; state?: unknown }> | undefined {
  const path = indexPath(env);
  if (remembering && memo && memo.path === path && memo.stamp === indexStamp(env)) return Object.hasOwn(memo.loaded.index.vifs, name) ? memo.loaded.index.vifs[name] : undefined;
  const { r } = readIndexRaw(path);
  if (r.kind !== 'ok' || typeof r.value !== 'object' || r.value === null) return undefined;
  const vifs = (r.value as { vifs?: Record<string, { token?: unknown; state?: unknown }> }).vifs;
  return vifs && typeof vifs === 'object' && Object.hasOwn(vifs, name) ? vifs[name] : undefined;
}

/** Kept frozen: a caller that changed what it was handed would change it for everyone after. */
function remember(path: string, stamp: string, loaded: LoadedIndex, journal: JournalState): void {
  memo = { path, stamp, loaded: deepFreeze(structuredClone(loaded)), journal, baseBytes: Number(statIfAny(path)?.size ?? 0) };
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/**
 * A caller's copy: the index and its map of guests are its own to change; the entries are shared
 * and frozen (a caller replaces an entry, never changes one: copying 1000 of them per load cost
 * the daemon a fifth of a commit).
 */
function handOut(l: LoadedIndex): LoadedIndex {
  return { ...l, index: { ...l.index, vifs: { ...l.index.vifs } } };
}

/**
 * The index file with its journal's lines replayed (each line's entries over the file's; a line of
 * another generation, written against an earlier index.json, left out), as parsed JSON: hostile
 * until its entries are checked. A last line cut short (a crash in the middle of an append) ends
 * the replay: the write it was is the one a crash interrupted, and the journal is not appended to
 * again (`clean: false`) until the next full write. A whole line that does not parse makes the
 * index unreadable (rebuilt from the live rules), as a damaged index.json does.
 */
function readIndexRaw(path: string): { r: ReturnType<typeof readJsonTolerant>; journal: JournalState } {
  const r = readJsonTolerant(path);
  const journal: JournalState = { lines: 0, bytes: 0, clean: true };
  if (r.kind !== 'ok' || typeof r.value !== 'object' || r.value === null) return { r, journal };
  const raw = r.value as Record<string, unknown>;
  const gen = raw['gen'];
  let text: string;
  try {
    const st = lstatSync(journalPath(path));
    // Not a file (a link is never followed): no journal of the daemon's, and none is appended to.
    if (!st.isFile()) return { r, journal: { ...journal, clean: false } };
    if (st.size > JOURNAL_MAX_BYTES) return { r: { kind: 'corrupt', reason: `its journal ${journalPath(path)} is larger than ${JOURNAL_MAX_BYTES} bytes` }, journal };
    text = readFileSync(journalPath(path), 'utf8');
  } catch {
    return { r, journal }; // no journal: the file says it all
  }
  journal.bytes = Buffer.byteLength(text);
  const vifs = raw['vifs'];
  let start = 0;
  for (let end = text.indexOf('\n'); end >= 0; start = end + 1, end = text.indexOf('\n', start)) {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text.slice(start, end)) as Record<string, unknown>;
    } catch (e) {
      // Every append is one whole line: one that ends and does not parse was not cut short by a
      // crash, it was damaged (the lines after it could not be taken without it).
      return { r: { kind: 'corrupt', reason: `line ${journal.lines + 1} of its journal ${journalPath(path)} does not parse (${(e as Error).message})` }, journal };
    }
    if (typeof line !== 'object' || line === null || typeof gen !== 'string' || line['gen'] !== gen) continue;
    journal.lines++;
    if (typeof vifs === 'object' && vifs !== null && !Array.isArray(vifs)) replayLine(raw, vifs, line);
  }
  if (start < text.length) journal.clean = false; // a last line without its end
  return { r, journal };
}

/** One journal line over an index (the file's parsed JSON, or the remembered index's copy): its guests set or (null) removed, and the index's own fields set or (null) removed. */
function replayLine(index: object, vifs: object, line: Record<string, unknown>): void {
  const changed = line['vifs'];
  if (typeof changed === 'object' && changed !== null && !Array.isArray(changed)) {
    for (const [name, e] of Object.entries(changed as Record<string, unknown>)) {
      if (e === null) delete (vifs as Record<string, unknown>)[name];
      else ownProperty(vifs, name, e);
    }
  }
  for (const k of ['dirty', 'backend', 'engine', 'removing'] as const) {
    if (line[k] === null) delete (index as Record<string, unknown>)[k];
    else if (Object.hasOwn(line, k)) ownProperty(index, k, line[k]);
  }
}

/** Sets a property of its own, whatever its name (`__proto__` is a valid interface name: an assignment would set the prototype). */
export function ownProperty(o: object, name: string, value: unknown): void {
  Object.defineProperty(o, name, { value, enumerable: true, writable: true, configurable: true });
}

/** The names of removals written ahead (hostile until parsed): interface names only, else none (their chains are then adopted, as before this record). */
function removingOf(raw: unknown): string[] | undefined {
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > 4096) return undefined;
  const names = raw as unknown[];
  return names.every((n): n is string => typeof n === 'string' && isIfName(n)) ? [...new Set(names)] : undefined;
}

function parseIndexRaw(path: string, r: ReturnType<typeof readJsonTolerant>, log: Logger, options: { repair?: boolean }): LoadedIndex {
  if (r.kind === 'missing') return { index: { ...emptyIndex(), dirty: true }, recovered: true };
  const raw = r.kind === 'ok' ? (r.value as Partial<Record<keyof FirewallIndex, unknown>>) : undefined;
  const boot = currentBootId();
  const lastKind = kindRecordedIn(raw);
  if (raw && raw.version === 2 && raw.bootId !== boot) return { index: { ...emptyIndex(), dirty: true }, recovered: true, ...(lastKind ? { lastKind } : {}) };
  const vifs: Record<string, IndexEntry> = {};
  let ok = !!raw && raw.version === 2 && typeof raw.vifs === 'object' && raw.vifs !== null && !Array.isArray(raw.vifs);
  if (ok) {
    for (const [name, v] of Object.entries(raw!.vifs as Record<string, unknown>)) {
      const e = entryOf(v);
      if (!isIfName(name) || !e) {
        ok = false;
        break;
      }
      ownProperty(vifs, name, e);
    }
  }
  if (!ok) {
    if (options.repair) {
      const aside = setAside(path);
      log.warning(`firewall index ${path} is unreadable (${r.kind === 'corrupt' ? r.reason : 'unexpected content'}); ${aside ? `moved to ${aside}; ` : ''}rebuilding it from the live rules`);
    }
    return { index: { ...emptyIndex(), dirty: true }, recovered: true, unreadable: r.kind === 'corrupt' ? r.reason : 'not a firewall index of this version', ...(lastKind ? { lastKind } : {}) };
  }
  const index: FirewallIndex = { version: 2, bootId: boot, dirty: raw!.dirty === true, vifs };
  if (typeof raw!.gen === 'string') index.gen = raw!.gen;
  if (typeof raw!.backend === 'string') index.backend = raw!.backend;
  const engine = raw!.engine as { kind?: unknown; conntrack?: unknown } | undefined;
  if (engine?.kind === 'xtables') index.engine = { kind: 'xtables' };
  else if (engine?.kind === 'nftables' && (engine.conntrack === 'bridge' || engine.conntrack === 'mark')) index.engine = { kind: 'nftables', conntrack: engine.conntrack };
  const removing = removingOf(raw!.removing);
  if (removing) index.removing = removing;
  return { index, recovered: false };
}

/**
 * Writes the index. A process that remembers its parses (the daemon) appends what changed since
 * the index it last loaded or wrote to index.journal, one line per write (fsynced), while the
 * journal is small and ends cleanly: a hook's commit then writes its guest's entry, not 1000
 * guests' (twice per commit). Otherwise, and every JOURNAL_MAX_LINES writes, index.json is written
 * whole under a new generation and the journal removed (a crash in between leaves lines of the
 * old generation, which no reader replays).
 */
export function saveIndex(index: FirewallIndex, env: NodeJS.ProcessEnv): void {
  const path = indexPath(env);
  if (remembering && memo && memo.path === path && memo.stamp === indexStamp(env) && appendable(memo)) {
    const delta = journalDelta(memo.loaded.index, index);
    if (delta === undefined) return; // nothing changed: what is there says it
    if (delta !== 'whole') {
      try {
        appendJournal(path, memo, delta, env);
        return;
      } catch {
        // The journal cannot be appended to (full, immutable): written whole, if that can be.
      }
    }
  }
  // Compact: at 1000 guests the index is 0.5 MB.
  const written = writeJsonAtomic(path, { ...index, gen: randomBytes(8).toString('hex'), bootId: currentBootId() }, { compact: true });
  // Its lines name the generation before, which nobody replays: one that cannot be removed stays,
  // and is not appended to (written whole until it can be).
  let removed = true;
  try {
    rmSync(journalPath(path), { force: true });
  } catch {
    removed = false;
  }
  // What this process wrote is what the next load would parse: remembered as written (no parse),
  // when the file there is still the one written (no other writer renamed its own over it).
  if (!remembering || !written) return;
  const st = statIfAny(path);
  if (st?.ino === written.ino) memo = { path, stamp: stampOf(path), loaded: deepFreeze({ index: JSON.parse(written.text) as FirewallIndex, recovered: false }), journal: { lines: 0, bytes: 0, clean: removed }, baseBytes: written.text.length };
  else memo = undefined;
}

const appendable = (m: NonNullable<typeof memo>): boolean => m.loaded.index.gen !== undefined && m.journal.clean && m.journal.lines < JOURNAL_MAX_LINES && m.journal.bytes < Math.max(JOURNAL_MIN_BYTES, m.baseBytes);

/** Two entries record the same (shared parts are the same objects; else compared as written). */
const sameEntry = (a: IndexEntry, b: IndexEntry): boolean => {
  const ka = Object.keys(a);
  if (ka.length === Object.keys(b).length && ka.every((k) => (a as unknown as Record<string, unknown>)[k] === (b as unknown as Record<string, unknown>)[k])) return true;
  return JSON.stringify(a) === JSON.stringify(b);
};

/** What a journal line records of `next` against `prev` (entries by name, null: gone), undefined when nothing, 'whole' when too much for a line. */
function journalDelta(prev: FirewallIndex, next: FirewallIndex): Record<string, unknown> | 'whole' | undefined {
  const vifs: Record<string, IndexEntry | null> = {};
  let n = 0;
  for (const [name, e] of Object.entries(next.vifs)) {
    const p = Object.hasOwn(prev.vifs, name) ? prev.vifs[name] : undefined;
    if (p !== undefined && (p === e || sameEntry(p, e))) continue;
    ownProperty(vifs, name, e);
    if (++n > JOURNAL_MAX_ENTRIES) return 'whole';
  }
  for (const name of Object.keys(prev.vifs)) {
    if (Object.hasOwn(next.vifs, name)) continue;
    ownProperty(vifs, name, null);
    if (++n > JOURNAL_MAX_ENTRIES) return 'whole';
  }
  const delta: Record<string, unknown> = {};
  if (n > 0) delta['vifs'] = vifs;
  if (next.dirty !== prev.dirty) delta['dirty'] = next.dirty;
  if (next.backend !== prev.backend) delta['backend'] = next.backend ?? null;
  if (JSON.stringify(next.engine ?? null) !== JSON.stringify(prev.engine ?? null)) delta['engine'] = next.engine ?? null;
  if (JSON.stringify(next.removing ?? null) !== JSON.stringify(prev.removing ?? null)) delta['removing'] = next.removing ?? null;
  return Object.keys(delta).length === 0 ? undefined : delta;
}

/** One line on the journal, durably; the remembered index follows it (what a load would replay). */
function appendJournal(path: string, m: NonNullable<typeof memo>, delta: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  const text = `${JSON.stringify({ gen: m.loaded.index.gen, ...delta })}\n`;
  const file = journalPath(path);
  try {
    const fd = openSync(file, 'a', 0o644);
    try {
      writeAllSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    // A journal just made: its name must last too.
    if (m.journal.bytes === 0) fsyncDirectory(dirname(file));
  } catch (e) {
    memo = undefined; // a line cut short may be there: the next write is a whole one
    throw e;
  }
  const vifs = { ...m.loaded.index.vifs };
  const index: FirewallIndex = { ...m.loaded.index, vifs };
  replayLine(index, vifs, JSON.parse(text) as Record<string, unknown>);
  // (The entries it kept are frozen already: only the new ones are walked.)
  memo = { ...m, stamp: indexStamp(env), loaded: { index: deepFreeze(index), recovered: false }, journal: { lines: m.journal.lines + 1, bytes: m.journal.bytes + Buffer.byteLength(text), clean: true } };
}

type StoredChains = Record<TableName, [string, string[]][]>;

/**
 * What one vif install puts in place, as a digest: its member facts, its owner, its chains, and
 * the names its policy was resolved from. Equal fingerprints install the same rules.
 */
export function fingerprintOf(member: MemberFacts, owner: Owner | undefined, chains: RuleSet, names?: string): string {
  const text = JSON.stringify([member.bridge, member.inbound, member.isolated, member.learning ?? false, member.claims ?? null, owner ? [owner.domid, owner.devid] : null, toStored(chains), names ?? null]);
  return createHash('sha256').update(text).digest('base64url').slice(0, 32);
}

function toStored(rs: RuleSet): StoredChains {
  return Object.fromEntries(tableNames.map((t) => [t, [...rs[t].chains.entries()]])) as StoredChains;
}

function fromStored(raw: unknown): RuleSet | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const rs = emptyRuleSet();
  for (const t of tableNames) {
    const list = (raw as Record<string, unknown>)[t];
    if (list === undefined) continue;
    if (!Array.isArray(list)) return undefined;
    for (const item of list) {
      if (!Array.isArray(item) || typeof item[0] !== 'string' || !Array.isArray(item[1]) || !item[1].every((x) => typeof x === 'string')) return undefined;
      rs[t].chains.set(item[0], item[1] as string[]);
    }
  }
  return rs;
}

/** Records vifs' chains (a record that holds them already is not written again: an apply that changes nothing writes nothing per guest), their fsyncs together. */
export function writeVifChains(chains: Iterable<readonly [string, RuleSet]>, env: NodeJS.ProcessEnv): Promise<void> {
  return writeJsonFilesAtomic([...chains].map(([name, rs]) => ({ path: vifPath(name, env), value: toStored(rs) })));
}

/** A vif's recorded chains; undefined when missing or unreadable (then the live rules decide). */
export function readVifChains(name: string, env: NodeJS.ProcessEnv, log?: Logger): RuleSet | undefined {
  const path = vifPath(name, env);
  const r = readJsonTolerant(path);
  if (r.kind === 'missing') return undefined;
  const rs = r.kind === 'ok' ? fromStored(r.value) : undefined;
  if (!rs) {
    setAside(path);
    log?.warning(`recorded chains of ${name} (${path}) are unreadable; the live rules decide`);
  }
  return rs;
}

export function removeVifChains(name: string, env: NodeJS.ProcessEnv): void {
  removeFile(vifPath(name, env));
}

/** Names with a recorded chains file. */
export function recordedVifs(env: NodeJS.ProcessEnv): string[] {
  try {
    return readdirSync(join(dirOf(env), 'vif'))
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -5));
  } catch {
    return [];
  }
}

/** Stages a change; the change files are written before the entry that points at them. */
export function stage(change: StagedChange, chains: RuleSet | undefined, env: NodeJS.ProcessEnv): void {
  const dir = pendingDir(env);
  mkdirSync(dir, { recursive: true });
  if (chains) writeJsonAtomic(join(dir, `${change.token}.chains.json`), toStored(chains));
  writeJsonAtomic(join(dir, `${change.token}.json`), change);
}

/** Takes back a staged change that was not committed (its stager failed); true when it was still there. */
export function unstage(token: string, env: NodeJS.ProcessEnv): boolean {
  const dir = pendingDir(env);
  const entry = join(dir, `${token}.json`);
  let there = true;
  try {
    statSync(entry);
  } catch {
    there = false;
  }
  rmSync(entry, { force: true });
  rmSync(join(dir, `${token}.chains.json`), { force: true });
  return there;
}

export function isStaged(token: string, env: NodeJS.ProcessEnv): boolean {
  try {
    statSync(join(pendingDir(env), `${token}.json`));
    return true;
  } catch {
    return false;
  }
}

function stagedOf(raw: unknown): StagedChange | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  if ((r['op'] !== 'install' && r['op'] !== 'remove') || typeof r['name'] !== 'string' || !isIfName(r['name']) || typeof r['token'] !== 'string' || !isIdentity(r['stager'])) return undefined;
  const c: StagedChange = { op: r['op'], name: r['name'], token: r['token'], stager: r['stager'], at: typeof r['at'] === 'number' ? r['at'] : 0 };
  const m = r['member'] as Record<string, unknown> | undefined;
  if (c.op === 'install') {
    if (!m || typeof m['bridge'] !== 'string' || !isIfName(m['bridge'])) return undefined;
    c.member = { bridge: m['bridge'], inbound: m['inbound'] === true, isolated: m['isolated'] === true };
    if (m['learning'] === true) c.member.learning = true;
    const declared = parseDeclared(m['declared']);
    if (declared) c.member.declared = declared;
    const claims = parseClaims(m['claims']);
    if (claims) c.member.claims = claims;
    const filter = parseFilterRecord(m['filter']);
    if (filter) c.member.filter = filter;
    if (typeof r['names'] === 'string') c.names = r['names'];
  }
  if (isOwner(r['owner'])) c.owner = { domid: r['owner'].domid, devid: r['owner'].devid };
  if (c.op === 'install' && typeof r['fingerprint'] === 'string') c.fingerprint = r['fingerprint'];
  if (c.op === 'remove' && typeof r['replaces'] === 'string') c.replaces = r['replaces'];
  return c;
}

export interface Staged {
  change: StagedChange;
  chains: RuleSet | undefined;
  /** A removal whose stager is gone (see readStaged): the committer checks it still stands. */
  orphaned?: true;
  files: string[];
}

/**
 * The staged changes of live stagers, oldest first. Unreadable ones and those of processes that
 * are gone (killed, failed without cleaning up, or from an earlier boot) are discarded.
 */
export function readStaged(env: NodeJS.ProcessEnv, log: Logger): Staged[] {
  const dir = pendingDir(env);
  let names: string[];
  try {
    names = readdirSync(dir).filter((f) => f.endsWith('.json') && !f.endsWith('.chains.json'));
  } catch {
    return [];
  }
  const out: Staged[] = [];
  for (const f of names) {
    const files = [join(dir, f), join(dir, `${f.slice(0, -5)}.chains.json`)];
    const discard = (why: string): void => {
      // (recursive: what is not a file, a directory too, goes; a link goes, not what it names)
      for (const x of files) rmSync(x, { force: true, recursive: true });
      log.warning(`discarded staged firewall change ${f}: ${why}`);
    };
    const r = readJsonTolerant(files[0]!);
    if (r.kind === 'missing') continue; // committed meanwhile
    const change = r.kind === 'ok' ? stagedOf(r.value) : undefined;
    if (!change || `${change.token}.json` !== f) {
      discard(r.kind === 'corrupt' ? `it does not parse: ${r.reason}` : 'it does not parse');
      continue;
    }
    if (!identityAlive(change.stager)) {
      // A removal of a recorded install outlives its stager (the daemon answers an offline once
      // the removal is staged, and may die before committing it): the committer finishes it if
      // that install is still the one recorded and its port is on no bridge (commitStaged).
      if (change.op === 'remove' && change.replaces !== undefined) {
        out.push({ change, chains: undefined, files, orphaned: true });
        continue;
      }
      discard(`${change.op} of ${change.name} by pid ${change.stager.pid}, which is gone`);
      continue;
    }
    let chains: RuleSet | undefined;
    if (change.op === 'install') {
      const c = readJsonTolerant(files[1]!);
      chains = c.kind === 'ok' ? fromStored(c.value) : undefined;
      if (!chains) {
        discard('its chains are missing or do not parse');
        continue;
      }
    }
    out.push({ change, chains, files });
  }
  return out.sort((a, b) => a.change.at - b.change.at || a.change.token.localeCompare(b.change.token));
}

/**
 * A staged install of exactly this (name and fingerprint) by a live stager, if any: a hook that
 * finds one (the daemon preparing the vif as its backend appeared) waits for it instead of
 * staging the same change again.
 */
export function findStagedInstall(name: string, fingerprint: string, env: NodeJS.ProcessEnv): StagedChange | undefined {
  let files: string[];
  try {
    files = readdirSync(pendingDir(env)).filter((f) => f.endsWith('.json') && !f.endsWith('.chains.json'));
  } catch {
    return undefined;
  }
  for (const f of files) {
    const r = readJsonTolerant(join(pendingDir(env), f));
    const c = r.kind === 'ok' ? stagedOf(r.value) : undefined;
    if (c && c.op === 'install' && c.name === name && c.fingerprint === fingerprint && `${c.token}.json` === f && identityAlive(c.stager)) return c;
  }
  return undefined;
}

/** Sweeps temporary files left by killed writers in the firewall state directories. */
export function sweepFirewallTemp(env: NodeJS.ProcessEnv): void {
  for (const d of [dirOf(env), pendingDir(env), join(dirOf(env), 'vif')]) sweepTempFiles(d);
}
