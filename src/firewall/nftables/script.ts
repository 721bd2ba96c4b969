/**
 * Between the table `nftables` of xennet's model and nft itself (pure):
 *
 *   parseNftList(text)  `nft list table bridge xennet` + `... inet xennet` -> chains, with each
 *                       vif's map and set elements as its pseudo-chain XN-E-<vif>
 *   renderNft(plan)     one `nft -f` script, one transaction: detach the vifs that change from the
 *                       maps and sets, rewrite chains, attach them again, delete what goes.
 *
 * Deleting an element that is not there fails a whole transaction, and nft 1.0.6 has no
 * `destroy`: so each element to detach is first added (a no-op when present) and then deleted,
 * and a map element's target chain is added first (a no-op when present; deleted at the end when
 * nothing wants it).
 */
import { readFileSync } from 'node:fs';
import { emptyLive, type LiveTable } from '../live.js';
import type { TablePlan } from '../model.js';
import { isFirewallableName, vifChain, vifOfChain } from '../names.js';
import { BASE_CHAINS, CHAIN_CONST, constElementText, NFT_CONST_SETS, NFT_SETS, elementLine, sortConstLines, type NftSetName } from './compile.js';
import { NFT_TABLE } from './table.js';
import { LEARNED_SETS } from './learned.js';
import { DROP_LOG_SET } from '../drop-log.js';
import { ruleTag, splitComment, UNTAGGED } from './tag.js';
import { CHAIN_CLAIMS, CLAIM_SETS, CLAIM_SET_DECLS, isClaimLine, sortClaimLines, writtenRule } from './guard.js';

export type NftFamily = 'bridge' | 'inet';
export const NFT_FAMILIES: readonly NftFamily[] = ['bridge', 'inet'];

/**
 * A chain found in the other family's table than the one its name belongs in (an `inet` chain
 * called like a guest's bridge chain): keyed with its family (`inet:XN-O-vif5.0`), so that it does
 * not stand for the chain of that name, and the diff deletes it from where it is.
 */
const misplacedKey = (family: NftFamily, chain: string): string => `${family}:${chain}`;
const misplaced = /^(bridge|inet):(.+)$/;

/** The table a chain of xennet's lives in. */
export const familyOfChain = (chain: string): NftFamily => (misplaced.exec(chain)?.[1] as NftFamily | undefined) ?? BASE_CHAINS[chain]?.family ?? 'bridge';
/** The chain's name in its table (a misplaced chain's key without its family). */
export const nameOfChain = (chain: string): string => misplaced.exec(chain)?.[2] ?? chain;
/**
 * The key of the chain `name` found in `family`'s table: its name, unless that belongs in the
 * other table, or is one of the pseudo-chains of set elements (XN-E-<vif>, XN-CLAIMS, XN-CONST:
 * xennet makes no chain of theirs, and a chain so named would be hidden under the elements).
 */
export const chainKey = (family: NftFamily, name: string): string => ((BASE_CHAINS[name]?.family ?? 'bridge') === family && !isElements(name) ? name : misplacedKey(family, name));
/** The key of a set or map found in `family`'s table that xennet does not declare there (`inet:map from_guest`; nothing of xennet's is in the inet table's). */
export const straySetKey = (family: NftFamily, kind: 'set' | 'map', name: string): string => misplacedKey(family, `${kind} ${name}`);
/** Whether a key is a stray set's or map's (see straySetKey): its nft object and name (`map from_guest`). */
const isStraySet = (key: string): boolean => key !== nameOfChain(key) && /^(set|map) /.test(nameOfChain(key));
/** The sets and maps xennet declares in its bridge table. */
const DECLARED_SETS: ReadonlySet<string> = new Set([...NFT_SETS.map((x) => x.name), ...NFT_CONST_SETS.map((x) => x.name), ...CLAIM_SET_DECLS.map((x) => x.name), ...LEARNED_SETS.map((x) => x.name), DROP_LOG_SET]);
export const isDeclaredSet = (family: NftFamily, name: string): boolean => family === 'bridge' && DECLARED_SETS.has(name);
const isVifElements = (chain: string): boolean => chain.startsWith('XN-E-');
/** Pseudo-chains of set elements: a guest's (XN-E-<vif>) and the guard's shared keys. */
export const isElements = (chain: string): boolean => isVifElements(chain) || chain === CHAIN_CLAIMS || chain === CHAIN_CONST;

/** Marker in LiveTable.policies: that family's table exists. */
const present = (f: NftFamily): string => `table ${f}`;
export const tablePresent = (live: LiveTable, f: NftFamily): boolean => live.policies.has(present(f));
/** Marker in LiveTable.policies: that family's table is dormant (its base chains are not hooked). */
const dormant = (f: NftFamily): string => `dormant ${f}`;
export const dormantTables = (live: LiveTable): NftFamily[] => NFT_FAMILIES.filter((f) => live.policies.has(dormant(f)));
/** What a dormant table's base chains show as their hook line: they differ, and are written again (waking the table). */
export const DORMANT = ' # (table dormant: no rule runs)';

/** The families whose table exists (listed, or holding chains) but should not (nothing desired in it). */
export function tablesToDrop(live: LiveTable, desiredChains: Iterable<string>): NftFamily[] {
  const wanted = new Set<NftFamily>();
  for (const c of desiredChains) wanted.add(familyOfChain(c));
  const held = new Set<NftFamily>([...live.chains.keys()].map(familyOfChain));
  return NFT_FAMILIES.filter((f) => (tablePresent(live, f) || held.has(f)) && !wanted.has(f));
}

export function parseNftList(text: string): LiveTable {
  const live = emptyLive();
  const elements = new Map<string, Map<NftSetName, string>>();
  const portClaims = new Map<string, string[]>();
  const keyClaims: { line: string; packets: number; bytes: number }[] = [];
  const claimSets = new Set(CLAIM_SETS.map((c) => c.ports));
  const keySets = new Set(CLAIM_SETS.map((c) => c.keys));
  let family: NftFamily | undefined;
  let block: { kind: 'chain' | 'set'; name: string } | undefined;
  let pending: string | undefined; // an `elements = { ...` that spans lines
  const constLines: string[] = [];
  const addElements = (set: string, body: string): void => {
    if (family !== 'bridge') return;
    const constSet = NFT_CONST_SETS.find((c) => c.name === set);
    if (constSet) {
      for (const raw of body.split(',')) if (raw.trim() !== '') constLines.push(`@${set} ${constValueText(constSet.type, raw.trim())}`);
      return;
    }
    if (claimSets.has(set) || keySets.has(set)) {
      for (const raw of body.split(',')) {
        const item = raw.trim();
        const port = /^(\S+) \. "([^"]*)"$/.exec(item);
        if (claimSets.has(set) && port) {
          const list = portClaims.get(port[2]!) ?? [];
          list.push(`@${set} ${port[1]} . "${port[2]}"`);
          portClaims.set(port[2]!, list);
        }
        const key = /^(\S+)(?: counter packets (\d+) bytes (\d+))?$/.exec(item);
        if (keySets.has(set) && key) keyClaims.push({ line: `@${set} ${key[1]}`, packets: Number(key[2] ?? 0), bytes: Number(key[3] ?? 0) });
      }
      return;
    }
    const spec = NFT_SETS.find((s) => s.name === set);
    if (!spec) return;
    for (const raw of body.split(',')) {
      const item = raw.trim();
      if (item === '') continue;
      const m = /^"([^"]*)"(?:\s*:\s*(.+))?$/.exec(item);
      if (!m) continue;
      const key = m[1]!;
      const line = spec.map ? `@${set} "${key}" : ${m[2] ?? ''}`.trim() : `@${set} "${key}"`;
      let per = elements.get(key);
      if (!per) elements.set(key, (per = new Map()));
      per.set(spec.name, line);
    }
  };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (pending !== undefined) {
      pending += ` ${line}`;
      if (line.endsWith('}')) {
        addElements(block!.name, pending.replace(/^elements = \{/, '').replace(/\}$/, ''));
        pending = undefined;
      }
      continue;
    }
    const table = /^table (bridge|inet) (\S+) \{$/.exec(line);
    if (table) {
      family = table[2] === NFT_TABLE ? (table[1] as NftFamily) : undefined;
      if (family) live.policies.set(present(family), 'present');
      continue;
    }
    if (!family) continue;
    const open = /^(chain|set|map) (\S+) \{$/.exec(line);
    if (open) {
      block = open[1] === 'chain' ? { kind: 'chain', name: chainKey(family, open[2]!) } : { kind: 'set', name: open[2]! };
      // A set or map xennet does not declare there: to be deleted (it may hold jumps to a chain
      // that goes, which it would keep from going).
      if (block.kind === 'set' && !isDeclaredSet(family, block.name)) {
        const key = straySetKey(family, open[1] === 'map' ? 'map' : 'set', block.name);
        live.chains.set(key, []);
        live.counters.set(key, []);
      }
      if (block.kind === 'chain') {
        live.chains.set(block.name, []);
        live.counters.set(block.name, []);
      }
      continue;
    }
    if (line === '}') {
      if (block) block = undefined;
      else family = undefined;
      continue;
    }
    if (!block) {
      if (/^flags\b.*\bdormant\b/.test(line)) live.policies.set(dormant(family), 'dormant');
      continue;
    }
    if (block.kind === 'set') {
      if (line.startsWith('elements = {')) {
        if (line.endsWith('}')) addElements(block.name, line.replace(/^elements = \{/, '').replace(/\}$/, ''));
        else pending = line;
      }
      continue;
    }
    if (line.startsWith('comment ')) continue;
    const rules = live.chains.get(block.name)!;
    const counters = live.counters.get(block.name)!;
    // A base chain's hook line is rule 0 as it is.
    if (line.startsWith('type ')) {
      counters[rules.length] = { packets: 0, bytes: 0 };
      rules.push(line);
      continue;
    }
    // Counters are state, not rule: `counter packets 3 bytes 180` compares as `counter`.
    const { rule, comment } = splitComment(line);
    const counted = /\bcounter packets (\d+) bytes (\d+)/.exec(rule);
    counters[rules.length] = counted ? { packets: Number(counted[1]), bytes: Number(counted[2]) } : { packets: 0, bytes: 0 };
    const text = counted ? rule.replace(counted[0], 'counter') : rule;
    // A rule xennet wrote carries its text's tag; without it, it is not the rule xennet wrote.
    rules.push(comment === ruleTag(text) ? text : `${text}${UNTAGGED}`);
  }
  putElementChains(live, elements, portClaims, keyClaims, constLines);
  // The base chains of a dormant table hook nothing: their hook line differs from the desired one,
  // so plan shows them and apply writes them again, in a transaction that wakes the table
  // (`add table` without flags).
  for (const f of dormantTables(live)) {
    for (const [c, rules] of live.chains) if (familyOfChain(c) === f && rules[0]?.startsWith('type ')) rules[0] = `${rules[0]}${DORMANT}`;
  }
  return live;
}

/**
 * The set elements as pseudo-chains (pure): each port's dispatch entries and claims as its
 * XN-E-<vif>, the guard's keys (with their counters) as XN-CLAIMS, the constant sets' elements
 * as XN-CONST, in one order for every reader.
 */
export function putElementChains(live: LiveTable, elements: ReadonlyMap<string, ReadonlyMap<string, string>>, portClaims: ReadonlyMap<string, string[]>, keyClaims: readonly { line: string; packets: number; bytes: number }[], constLines: readonly string[]): void {
  if (constLines.length > 0) live.chains.set(CHAIN_CONST, sortConstLines(constLines));
  for (const key of [...new Set([...elements.keys(), ...portClaims.keys()])].sort()) {
    const per = elements.get(key);
    live.chains.set(vifChain('E', key), [...NFT_SETS.map((s) => per?.get(s.name)).filter((x): x is string => x !== undefined), ...sortClaimLines(portClaims.get(key) ?? [])]);
  }
  if (keyClaims.length > 0) {
    const lines = sortClaimLines(keyClaims.map((k) => k.line));
    const byLine = new Map(keyClaims.map((k) => [k.line, k]));
    live.chains.set(CHAIN_CLAIMS, lines);
    live.counters.set(CHAIN_CLAIMS, lines.map((l) => ({ packets: byLine.get(l)!.packets, bytes: byLine.get(l)!.bytes })));
  }
}

/** `@to_guest "vif1.0" : jump XN-I-vif1.0` -> `to_guest { "vif1.0" : jump XN-I-vif1.0 }`. */
function elementStatement(line: string): string {
  const m = /^@(\S+) (.*)$/.exec(line);
  if (!m) throw new Error(`not an element line: ${line}`);
  return `${m[1]} { ${m[2]} }`;
}

const constElements = (s: (typeof NFT_CONST_SETS)[number]): string => s.values.map((v) => constElementText(s.type, v)).join(', ');

/** Names nft prints for ethertypes (its own table) and protocols (the host's /etc/protocols). */
const ETHER_NAMES: Readonly<Record<string, number>> = { ip: 0x0800, arp: 0x0806, ip6: 0x86dd, '8021q': 0x8100, '8021ad': 0x88a8, vlan: 0x8100 };
let protocolNumbers: Map<string, number> | undefined;
function protocolNumber(name: string): number | undefined {
  if (!protocolNumbers) {
    protocolNumbers = new Map();
    try {
      for (const l of readFileSync('/etc/protocols', 'utf8').split('\n')) {
        const [n, num, ...aliases] = l.replace(/#.*/, '').trim().split(/\s+/);
        if (n && num && /^\d+$/.test(num)) for (const a of [n, ...aliases]) if (!protocolNumbers.has(a)) protocolNumbers.set(a, Number(num));
      }
    } catch {
      // no such file: nft prints numbers
    }
  }
  return protocolNumbers.get(name);
}

/** A constant set's element as nft printed it -> xennet's text of it (unknown: as printed, which then differs). */
export function constValueText(type: 'ether_type' | 'inet_proto', printed: string): string {
  const n = /^0x[0-9a-f]+$/i.test(printed) || /^\d+$/.test(printed) ? Number(printed) : type === 'ether_type' ? ETHER_NAMES[printed] : protocolNumber(printed);
  return n === undefined ? printed : constElementText(type, n);
}

/** The comment that starts a part of a script that may be a transaction of its own (see renderNft). */
export const PART_MARK = '# part ';

/**
 * The nft script for one plan of table `nftables` (empty when there is nothing to do): one
 * transaction, in parts that could each be one of their own and leave every guest filtered in
 * between (nft-batch.ts: a transaction larger than a netlink datagram may be is written part by
 * part). First the tables and sets; then the guard's (key, port) pairs that guests give up, all
 * of them, so that a key moving from one guest to another (two guests' addresses swapped) is
 * never held by both: between the parts it is held by neither and the guard drops it; then what
 * the guests share (base chains, the guard's claimed keys, the constant sets): a guard key it
 * adds before its guest's pair drops that guest's frames for a moment, never passes another's;
 * then each guest whole (taken out of the dispatch, its chains written, put back, what it no
 * longer has deleted), so that a guest goes from its old rules to its new ones at once; last the
 * guard's keys nobody claims any more (until then the guard drops them from every port, an
 * unguarded new owner's included).
 */
export function renderNft(plan: TablePlan): string {
  const drop = new Set(plan.dropTables ?? []);
  const lines: string[] = [];
  for (const f of drop) lines.push(`add table ${f} ${NFT_TABLE}`, `delete table ${f} ${NFT_TABLE}`);
  const t = (c: string): string => `${familyOfChain(c)} ${NFT_TABLE} ${nameOfChain(c)}`;
  const write = [...plan.write].filter(([c]) => !drop.has(familyOfChain(c)));
  const remove = plan.remove.filter((c) => !drop.has(familyOfChain(c)));
  if (write.length === 0 && remove.length === 0) return lines.length > 0 ? `${lines.join('\n')}\n` : '';

  // A `list` that fails aborts the whole transaction before anything is sent.
  if (plan.expectTable) lines.push(`list set bridge ${NFT_TABLE} guests`);
  if (!drop.has('bridge')) {
    lines.push(`add table bridge ${NFT_TABLE}`);
    for (const s of NFT_SETS) lines.push(`add ${s.map ? 'map' : 'set'} bridge ${NFT_TABLE} ${s.name} { type ifname${s.map ? ' : verdict' : ''}; }`);
    for (const s of NFT_CONST_SETS) lines.push(`add set bridge ${NFT_TABLE} ${s.name} { type ${s.type}; elements = { ${constElements(s)} }; }`);
    for (const s of CLAIM_SET_DECLS) lines.push(`add set bridge ${NFT_TABLE} ${s.name} { ${s.type} }`);
    for (const s of LEARNED_SETS) lines.push(`add set bridge ${NFT_TABLE} ${s.name} { ${s.type} }`);
    // The drop logs' shared budget: one element, and its limit, per Ethernet type (drop-log.ts).
    lines.push(`add set bridge ${NFT_TABLE} ${DROP_LOG_SET} { type ether_type; size 16; flags dynamic; }`);
  }
  if (write.some(([c]) => familyOfChain(c) === 'inet')) lines.push(`add table inet ${NFT_TABLE}`);

  // The parts: what the guests share (''), then each guest by name.
  const parts = new Map<string, string[]>([['', []]]);
  const partOf = (vif: string | undefined): string[] => {
    const key = vif ?? '';
    let p = parts.get(key);
    if (!p) parts.set(key, (p = []));
    return p;
  };
  const ownerOf = (c: string): string | undefined => (c === CHAIN_CLAIMS || c === CHAIN_CONST ? undefined : vifOfChain(c));
  // Their elements as wanted, exactly: an element taken out switches a guest check off, and
  // one put in drops what a guest may send.
  if (!drop.has('bridge') && write.some(([c]) => c === CHAIN_CONST)) for (const s of NFT_CONST_SETS) partOf(undefined).push(`flush set bridge ${NFT_TABLE} ${s.name}`, `add element bridge ${NFT_TABLE} ${s.name} { ${constElements(s)} }`);

  // 1. Detach every vif whose elements change or go (all written ones when the plan does not say
  // which are live).
  const changing = plan.replacing ?? write.map(([c]) => c);
  const detached = [...new Set([...changing, ...remove].filter(isVifElements).map((c) => vifOfChain(c)!))];
  const created = new Map<string, string[]>();
  for (const k of detached) {
    const part = partOf(k);
    // The entry as it is live, when known: the kernel refuses to add a key it holds with other
    // data (an entry someone set to `accept`), so the add-then-delete must name that data.
    const liveLines = plan.before?.get(vifChain('E', k)) ?? [];
    // A key that is no interface name (another program's element, `"vif1.0 "`) names no chain of
    // xennet's: it would name a guest's chain once nft has read it as a word.
    const nameable = isFirewallableName(k);
    for (const s of NFT_SETS) {
      if (s.map && nameable) {
        const target = vifChain(s.target, k);
        part.push(`add chain bridge ${NFT_TABLE} ${target}`);
        created.set(target, part);
      }
      const own = `@${s.name} "${k}"`;
      const live = liveLines.find((l) => l === own || l.startsWith(`${own} `));
      if (!live && !nameable) continue;
      const stmt = elementStatement(live ?? elementLine(s.name, k));
      part.push(`add element bridge ${NFT_TABLE} ${stmt}`, `delete element bridge ${NFT_TABLE} ${s.name} { "${k}" }`);
    }
  }
  // 2. Chains: base chains are made anew (their hook cannot be changed in place).
  for (const [c, rules] of write) {
    if (isElements(c)) continue;
    const part = partOf(ownerOf(c));
    const base = BASE_CHAINS[c];
    part.push(`add chain ${t(c)}`, `flush chain ${t(c)}`);
    if (base && !plan.wake?.includes(familyOfChain(c))) part.push(`delete chain ${t(c)}`, `add chain ${t(c)} { ${base.printed} }`);
    const presets = plan.presets?.get(c);
    rules.forEach((r, i) => {
      if (base && i === 0) return;
      // A counter to start from (a guest's drops carried over a rewrite); the tag is the rule's own.
      const p = presets?.get(i);
      const written = p ? writtenRule(r).replace(/\bcounter drop$/, `counter packets ${p.packets} bytes ${p.bytes} drop`) : writtenRule(r);
      part.push(`add rule ${t(c)} ${written} comment "${ruleTag(r)}"`);
    });
  }
  // 3. Attach. The guard's elements change by difference: one that stays keeps its counter.
  const wanted = new Set<string>();
  for (const [c, rules] of write) {
    if (!isElements(c) || c === CHAIN_CONST) continue;
    const part = partOf(ownerOf(c));
    const had = new Set(plan.before?.get(c) ?? []);
    for (const r of rules) {
      if (c === CHAIN_CLAIMS && had.has(r)) continue;
      part.push(`add element bridge ${NFT_TABLE} ${elementStatement(r)}`);
      const target = / : jump (\S+)$/.exec(r)?.[1];
      if (target) wanted.add(target);
    }
  }
  // A (key, port) pair a guest gives up goes before any part (see `released`); a key nobody
  // claims any more goes after every part (`retired`): until then the guard drops it from every
  // port, its new owner's included when that one is not guarded.
  const released: string[] = [];
  const retired: string[] = [];
  for (const c of new Set([...write.map(([c]) => c), ...remove].filter(isElements))) {
    const keep = new Set(write.find(([x]) => x === c)?.[1] ?? []);
    const owner = ownerOf(c);
    for (const r of plan.before?.get(c) ?? []) {
      if (!isClaimLine(r) || keep.has(r)) continue;
      const stmt = elementStatement(r);
      (owner === undefined ? retired : released).push(`add element bridge ${NFT_TABLE} ${stmt}`, `delete element bridge ${NFT_TABLE} ${stmt}`);
    }
  }
  // 4. Delete chains nothing wants any more (flushed first: they may jump to each other). Those
  // of the other table's names and the sets xennet does not declare go last, after every part
  // that rewrites a chain that might name them.
  const desiredChains = new Set(write.map(([c]) => c));
  const strays = remove.filter((c) => c !== nameOfChain(c));
  const gone = [...new Set([...remove.filter((c) => !isElements(c) && !strays.includes(c)), ...[...created.keys()].filter((c) => !wanted.has(c) && !desiredChains.has(c))])];
  const goneBy = new Map<string[], string[]>();
  for (const c of gone) {
    const part = created.get(c) ?? partOf(ownerOf(c));
    goneBy.set(part, [...(goneBy.get(part) ?? []), c]);
  }
  for (const [part, chains] of goneBy) {
    for (const c of chains) part.push(`flush chain ${t(c)}`);
    for (const c of chains) part.push(`delete chain ${t(c)}`);
  }
  // A stray map's elements may jump to a guest's chain that goes in its part: emptied first
  // (rules may still name the set; it is deleted last, when none does).
  const straySets = strays.filter(isStraySet);
  const setCommand = (verb: string, c: string): string => {
    const [kind, name] = nameOfChain(c).split(' ');
    return `${verb} ${kind} ${familyOfChain(c)} ${NFT_TABLE} ${name}`;
  };
  if (straySets.length > 0) lines.push(`${PART_MARK}strays emptied`, ...straySets.map((c) => setCommand('flush', c)));
  if (released.length > 0) lines.push(`${PART_MARK}released claims`, ...released);
  const shared = parts.get('')!;
  if (shared.length > 0) lines.push(`${PART_MARK}shared`, ...shared);
  for (const k of [...parts.keys()].filter((k) => k !== '').sort()) lines.push(`${PART_MARK}${k}`, ...parts.get(k)!);
  if (retired.length > 0) lines.push(`${PART_MARK}retired claims`, ...retired);
  if (strays.length > 0) {
    const chains = strays.filter((c) => !isStraySet(c));
    lines.push(`${PART_MARK}strays`, ...chains.map((c) => `flush chain ${t(c)}`), ...straySets.map((c) => setCommand('delete', c)), ...chains.map((c) => `delete chain ${t(c)}`));
  }
  return `${lines.join('\n')}\n`;
}
