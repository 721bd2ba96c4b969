/**
 * nf_tables for the nftables backend: reads xennet's own tables (`bridge xennet`, `inet xennet`)
 * over nfnetlink, and through `nft list` where a rule is not one xennet wrote (nft prints what is
 * there); applies a script as one nfnetlink transaction (all of it or nothing); probes the kernel
 * (checked transactions, never applied); lists the base chains of everyone else's tables (read
 * only). None of it grows with other tables' size.
 */
import { SET_FLAGS } from './native/sets.js';
import { reasonOf, XennetError } from '../../sys/errors.js';
import { killPoint } from '../../sys/test-seams.js';
import { findProgram, needProgram, run } from '../../sys/exec.js';
import { BATCH_OVERHEAD, messageSize, NftBatchWriter, type NftMessage } from '../../bridge/nl/nft-batch.js';
import { scriptMessages, scriptParts } from './native/script.js';
import { BASE_CHAINS, CHAIN_FWD } from './compile.js';
import type { BridgeConntrack } from '../model.js';
import { NFPROTO, nfgenmsg, NftReader, TABLE_DORMANT, type NftElementObject } from '../../bridge/nl/nftables.js';
import { AttrWriter } from './native/encode.js';
import { ownSetNames } from './native/expr-digest.js';

const NFT_MSG_NEWRULE = 6;
const NLM_F_REPLACE = 0x100;
import { NFT_TABLE } from './table.js';
import { keyText, knownRules, liveFromNative, NATIVE_SETS, type NativeTables } from './native-live.js';
import type { Counter, LiveTable } from '../live.js';
import { ownWrite, type TableIo } from '../backend.js';
import { familyOfChain, NFT_FAMILIES } from './script.js';
import { ruleTag } from './tag.js';
import { countersOfRecorded } from '../counter-match.js';

export const nftPath = (): string | undefined => findProgram('nft');

const needNft = (): string => needProgram('nft', 'nftables', 'it prints rules xennet did not write');

const noSuchTable = (stderr: string): boolean => /No such file or directory/.test(stderr);

/** The listing of xennet's nftables tables ('' when nft is absent: then nothing of ours can be read or exist through it). */
export async function listOwnTables(): Promise<string> {
  const nft = nftPath();
  if (!nft) return '';
  const parts = await Promise.all(
    NFT_FAMILIES.map(async (f) => {
      const r = await run(nft, ['list', 'table', f, NFT_TABLE]);
      if (r.code === 0) return r.stdout;
      if (noSuchTable(r.stderr)) return '';
      throw new XennetError('exec', `nft list table ${f} ${NFT_TABLE} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
    }),
  );
  return parts.join('');
}

/**
 * xennet's tables read over nfnetlink (no `nft` process): one dump per object kind, between two
 * reads of the ruleset's generation (a commit in between reads again, as nft's cache does). The
 * rules' texts come from their tags among `known`, their expressions checked against the digest
 * written with them; undefined when a rule is not among them, is not as written, or anything is
 * not as xennet writes it (then `nft` must print it).
 */
export function readOwnTablesNative(known: ReadonlyMap<string, string>): Promise<LiveTable | undefined> {
  return withReader(async (reader) => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const before = await reader.generation();
      const read: NativeTables = { tables: { bridge: undefined, inet: undefined }, elements: new Map<string, NftElementObject[]>() };
      for (const family of NFT_FAMILIES) {
        const flags = await reader.tableFlags(family, NFT_TABLE);
        if (flags === undefined) continue;
        // A dormant table runs none of its rules: nft's listing shows it, and what reads that
        // marks it (parseNftList).
        if (flags & TABLE_DORMANT) return undefined;
        const [chains, rules] = await Promise.all([reader.chains(family), reader.rules(family, NFT_TABLE)]);
        read.tables[family] = { chains: chains.filter((c) => c.table === NFT_TABLE), rules: rules ?? [] };
        // Its named sets and maps (a rule's own anonymous ones are not): one it does not declare is a stray.
        (read.setNames ??= {})[family] = ((await reader.sets(family, NFT_TABLE)) ?? []).filter((s) => (s.flags & SET_FLAGS.anonymous) === 0).map((s) => ({ name: s.name, map: (s.flags & SET_FLAGS.map) !== 0 }));
        // The rules' own sets, whose elements their digests cover.
        for (const name of new Set((rules ?? []).flatMap((r) => (r.exprs ? ownSetNames(r.exprs) : [])))) {
          const elements = await reader.elements(family, NFT_TABLE, name);
          if (elements) (read.ownSets ??= new Map()).set(`${family} ${name}`, elements);
        }
      }
      if (read.tables.bridge) {
        const sets = await Promise.all(NATIVE_SETS.map(async (s) => [s, await reader.elements('bridge', NFT_TABLE, s)] as const));
        for (const [s, elements] of sets) if (elements) read.elements.set(s, elements);
      }
      if ((await reader.generation()) !== before) continue;
      return liveFromNative(read, known);
    }
    return undefined;
  });
}

/** Runs `fn` with a reader of nf_tables, closed after. */
async function withReader<T>(fn: (reader: NftReader) => Promise<T>): Promise<T> {
  const reader = new NftReader();
  try {
    return await fn(reader);
  } finally {
    reader.close();
  }
}

/**
 * Applies a script over nfnetlink: one transaction (every line of it or none) where it fits in a
 * netlink datagram, as every hook's change and the changes of hosts with up to some tens of
 * guests do; else part by part (renderNft's parts, packed into as few transactions as fit: the
 * shared part first, then each guest whole; every guest stays filtered in between), the parts
 * before a refused one applied. Each transaction the kernel accepted counts as this process's own
 * (ownWrite).
 */
export function applyScript(script: string): Promise<void> {
  return ownWrite((committed) => applyScriptNow(script, committed));
}

async function applyScriptNow(script: string, committed: () => void): Promise<void> {
  const writer = batchWriter();
  let done = 0;
  let batches: NftMessage[][] = [];
  try {
    const parts = scriptParts(script);
    // Test-only seam: XENNET_TEST_NFT_BATCH_BYTES=<n> caps a transaction as a host with a smaller net.core.wmem_max would.
    const cap = Number(process.env['XENNET_TEST_NFT_BATCH_BYTES'] ?? '');
    batches = packParts(parts, Number.isInteger(cap) && cap > 0 ? Math.min(cap, writer.capacity()) : writer.capacity());
    for (const b of batches) {
      await writer.commit(b);
      committed();
      done++;
      if (done < batches.length) {
        killPoint('nftables:part-committed');
        killPoint(`nftables:part-committed:${done}`);
      }
    }
  } catch (e) {
    // After a failure the socket goes: the next write opens a new one.
    if (shared === writer) shared = undefined;
    writer.close();
    const partial = done > 0 ? ` (${done} of ${batches.length} transactions applied before it: the next apply or commit reconciles the rest)` : '';
    throw new XennetError('netlink', `nf_tables rejected the update: ${reasonOf(e)}; the previous rules stay in force${partial}`, {
      hint: 'run `xennet plan` to see the difference; report the script (`xennet plan --json`) if it persists',
      cause: e,
    });
  }
}

/**
 * One socket for every write of this process, opened at the first (a daemon commits again and
 * again: opening and closing a netlink socket with its large send buffer each time cost 6 ms).
 * Its writes are serial (NftBatchWriter queues them).
 */
let shared: NftBatchWriter | undefined;
function batchWriter(): NftBatchWriter {
  shared ??= new NftBatchWriter();
  return shared;
}

/** Parts packed, in order, into as few transactions of at most `capacity` bytes as they fit in (one where all of it fits); a part that fits in none is an error. */
export function packParts(parts: readonly NftMessage[][], capacity: number): NftMessage[][] {
  const out: NftMessage[][] = [];
  let cur: NftMessage[] = [];
  let size = BATCH_OVERHEAD;
  for (const p of parts) {
    const n = p.reduce((acc, m) => acc + messageSize(m), 0);
    if (size + n <= capacity) {
      cur.push(...p);
      size += n;
      continue;
    }
    if (BATCH_OVERHEAD + n > capacity) throw new XennetError('netlink', `one part of the change (${p[0]?.what ?? '?'} ...: ${p.length} messages, ${n} bytes) is larger than a netlink datagram may be here (${capacity} bytes)`, { hint: 'raise net.core.wmem_max (sysctl)' });
    if (cur.length > 0) out.push(cur);
    cur = [...p];
    size = BATCH_OVERHEAD + n;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** Whether the kernel takes a transaction (checked, never applied: `nft -c`); false when nf_tables is not there at all. */
async function kernelTakes(script: string): Promise<boolean> {
  let writer: NftBatchWriter | undefined;
  try {
    writer = new NftBatchWriter();
    await writer.check(scriptMessages(script, PROBE_TABLE));
    return true;
  } catch {
    return false;
  } finally {
    writer?.close();
  }
}

const PROBE_TABLE = 'xennet-probe';

/** Whether the bridge family can read connection state itself (nf_conntrack_bridge, Linux >= 5.3). */
export async function probeBridgeConntrack(): Promise<BridgeConntrack> {
  const ok = await kernelTakes(`add table bridge ${PROBE_TABLE}\nadd chain bridge ${PROBE_TABLE} XN-PROBE\nadd rule bridge ${PROBE_TABLE} XN-PROBE ct state established,related return\n`);
  return ok ? 'bridge' : 'mark';
}

/** Whether the nftables backend can run here: the kernel takes a table of the bridge family with a base chain (checked, never applied). */
export async function nftablesUsable(): Promise<boolean> {
  return kernelTakes(`add table bridge ${PROBE_TABLE}\nadd chain bridge ${PROBE_TABLE} ${CHAIN_FWD} { ${BASE_CHAINS[CHAIN_FWD]!.printed} }\n`);
}

export interface ForeignBaseChain {
  family: string;
  table: string;
  name: string;
  hook: string;
  prio: number;
  policy: string;
}

/** Family names as nft prints them, by NFPROTO number. */
const FAMILY_NAMES: Record<number, string> = { 1: 'inet', 2: 'ip', 3: 'arp', 5: 'netdev', 7: 'bridge', 10: 'ip6' };
/** Hook names by family and hook number (the netfilter hooks of each family). */
const hookName = (family: string, num: number): string =>
  (family === 'netdev' ? ['ingress', 'egress'] : family === 'arp' ? ['input', 'output', 'forward'] : ['prerouting', 'input', 'forward', 'output', 'postrouting', 'ingress'])[num] ?? `hook ${num}`;

/**
 * Every base chain of every table that is not xennet's (read only: status looks for conflicts),
 * from one dump of the chains of every family (no `nft` process: `nft list chains` also fetches
 * every chain's rules, xennet's thousands included).
 */
export function listForeignBaseChains(): Promise<ForeignBaseChain[]> {
  return withReader(async (reader) => {
    const out: ForeignBaseChain[] = [];
    for (const c of await reader.chains('all')) {
      if (!c.hook) continue;
      const family = FAMILY_NAMES[c.family] ?? `family ${c.family}`;
      if (c.table === NFT_TABLE && (family === 'bridge' || family === 'inet')) continue;
      out.push({ family, table: c.table, name: c.name, hook: hookName(family, c.hook.num), prio: c.hook.priority, policy: c.policy === 0 ? 'drop' : 'accept' });
    }
    return out;
  });
}

/**
 * The names of xennet's chains (XN-*) in one nf_tables table of the xtables programs'
 * (iptables-nft, ebtables-nft), read natively: no iptables or ebtables program is needed.
 */
export async function xennetChainsIn(family: 'ipv4' | 'ipv6' | 'bridge', table: string): Promise<string[]> {
  // The kernel dumps a family's chains whole (xennet's own thousands in the bridge family): first
  // whether the table is there at all.
  return withReader(async (reader) => ((await reader.tableExists(family, table)) ? (await reader.chains(family)).filter((c) => c.table === table && c.name.startsWith('XN-')).map((c) => c.name) : []));
}

/**
 * The rules of these chains of an nf_tables table (xennet's own, or an iptables-nft or
 * ebtables-nft table: their rules count in a counter expression): each one's counter and comment,
 * in each chain's order, read over nfnetlink one chain at a time (cheap whatever else the table
 * holds); a chain that does not exist is left out.
 */
export function chainRulesNative(family: 'inet' | 'ipv4' | 'ipv6' | 'bridge', table: string, chains: Iterable<string>): Promise<Map<string, { counter: Counter; comment?: string }[]>> {
  return withReader(async (reader) => {
    const out = new Map<string, { counter: Counter; comment?: string }[]>();
    for (const c of chains) {
      const rules = await reader.rules(family, table, c);
      if (rules) out.set(c, rules.map((r) => ({ counter: r.counter ?? { packets: 0, bytes: 0 }, ...(r.comment !== undefined ? { comment: r.comment } : {}) })));
    }
    return out;
  });
}

/** A rule's expressions (NFTA_RULE_EXPRESSIONS' contents) with its first counter starting from `c` (undefined: it has none). Pure. */
export function exprsWithCounter(exprs: Buffer, c: Counter): Buffer | undefined {
  const w = new AttrWriter();
  let done = false;
  for (let off = 0; off + 4 <= exprs.length; ) {
    const len = exprs.readUInt16LE(off);
    if (len < 4 || off + len > exprs.length) return undefined;
    const elem = exprs.subarray(off, off + len);
    // NFTA_LIST_ELEM: NFTA_EXPR_NAME (1), NFTA_EXPR_DATA (2).
    const name = elem.length >= 12 && (elem.readUInt16LE(6) & 0x3fff) === 1 ? elem.toString('utf8', 8, 4 + elem.readUInt16LE(4)).replace(/\0.*$/s, '') : '';
    if (!done && name === 'counter') {
      w.nest(1, () => w.str(1, 'counter').nest(2, () => w.u64(1, c.bytes).u64(2, c.packets)));
      done = true;
    } else w.raw(Buffer.concat([elem, Buffer.alloc(((len + 3) & ~3) - len)]));
    off += (len + 3) & ~3;
  }
  return done ? w.take() : undefined;
}

/** A counter to set on a rule, and what an xtables rule's matches need to know of its protocol (NFTA_RULE_COMPAT: the kernel does not dump it). */
export interface RuleCounterWanted {
  counter: Counter;
  compat?: { proto: number; invert: boolean };
}

/**
 * Sets the counters of rules in an nf_tables table (an iptables-nft or ebtables-nft table too)
 * where its writer could not: ip6tables-nft 1.8.9 takes no counters from `[p:b]` or `-c`. Each
 * rule named by chain and index that counts less than wanted is replaced by itself (its handle,
 * expressions, userdata, and the protocol its xtables matches check) with its counter starting
 * from the wanted value, in one transaction. A rule that is gone or has no counter is left as it is.
 */
export async function raiseRuleCounters(family: 'ipv4' | 'ipv6' | 'bridge', table: string, wanted: ReadonlyMap<string, ReadonlyMap<number, RuleCounterWanted>>): Promise<void> {
  const messages: NftMessage[] = [];
  await withReader(async (reader) => {
    for (const [chain, byIndex] of wanted) {
      const rules = await reader.rules(family, table, chain);
      for (const [i, want] of byIndex) {
        const r = rules?.[i];
        const c = want.counter;
        const exprs = r?.counter && r.exprs && r.counter.packets < c.packets ? exprsWithCounter(r.exprs, c) : undefined;
        if (!r || !exprs) continue;
        const w = new AttrWriter().raw(nfgenmsg(NFPROTO[family])).str(1, table).str(2, chain).u64(3, r.handle);
        w.nest(4, () => w.raw(exprs));
        // An xtables match checks the rule's protocol (icmp6: 58) against NFTA_RULE_COMPAT.
        const compat = want.compat;
        if (compat) w.nest(5, () => w.u32(1, compat.proto).u32(2, compat.invert ? 1 : 0));
        if (r.userdata) w.bytes(7, r.userdata);
        messages.push({ msg: NFT_MSG_NEWRULE, flags: NLM_F_REPLACE, body: w.take(), what: `the counter of rule ${i + 1} of ${family} ${table} ${chain}` });
      }
    }
  });
  if (messages.length === 0) return;
  await ownWrite(async (committed) => {
    await batchWriter().commit(messages);
    committed();
  });
}

/** The rules of one foreign chain (read only), as nft prints them. */
export async function listChainRules(family: string, table: string, chain: string): Promise<string[]> {
  const r = await run(needNft(), ['list', 'chain', family, table, chain]);
  if (r.code !== 0) return [];
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('table ') && !l.startsWith('chain ') && l !== '}' && !l.startsWith('type '));
}

/**
 * The learned bindings in the kernel (the elements of `learned_ip4` and `learned_ip6`: address,
 * port, time left), read over nfnetlink. Sets that do not exist hold none.
 */
export function listLearnedNative(): Promise<{ vif: string; family: 'ipv4' | 'ipv6'; address: string; expiresMs: number | null }[]> {
  return withReader(async (reader) => {
    const out: { vif: string; family: 'ipv4' | 'ipv6'; address: string; expiresMs: number | null }[] = [];
    for (const [set, family] of [['learned_ip4', 'ipv4'], ['learned_ip6', 'ipv6']] as const) {
      for (const e of (await reader.elements('bridge', NFT_TABLE, set)) ?? []) {
        const text = keyText([family, 'ifname'], e.key);
        const m = text === undefined ? undefined : /^(\S+) \. "([^"]*)"$/.exec(text);
        if (!m) continue;
        out.push({ address: m[1]!, vif: m[2]!, family, expiresMs: e.timeout !== undefined ? (e.expiration ?? 0) : null });
      }
    }
    return out;
  });
}

/** nf_tables' ruleset generation: every commit to any table makes a new one. */
export function rulesetGeneration(): Promise<number> {
  return withReader((reader) => reader.generation());
}

/**
 * Whether `bridge xennet` exists (one netlink request; no `nft` needed). A kernel without
 * nf_tables has none.
 */
export async function ownBridgeTablePresent(): Promise<boolean> {
  try {
    return await withReader((reader) => reader.tableExists('bridge', NFT_TABLE));
  } catch {
    return false;
  }
}

/** xennet's nftables tables as one table of the core's: listed by `nft`, read natively where every rule is known, written by `nft -f`. */
export const nftablesIo: TableIo = {
  save: () => listOwnTables(),
  readKnown: (desired) => readOwnTablesNative(knownRules(desired.chains.values())),
  // Each recorded rule is known in the kernel by its tag (its comment).
  async chainCounters(recorded) {
    const out = new Map<string, Counter[]>();
    for (const f of NFT_FAMILIES) {
      const mine = [...recorded.keys()].filter((c) => familyOfChain(c) === f);
      if (mine.length === 0) continue;
      const kernel = await chainRulesNative(f, NFT_TABLE, mine);
      for (const c of mine) {
        const live = kernel.get(c) ?? [];
        const rules = recorded.get(c)!;
        out.set(c, countersOfRecorded(rules.map(ruleTag), live.map((r) => r.comment ?? ''), live.map((r) => r.counter), 'nft'));
      }
    }
    return out;
  },
  async restore(text) {
    // Test-only seam: XENNET_TEST_RESTORE_FAIL=nftables makes the transaction invalid.
    if (process.env['XENNET_TEST_RESTORE_FAIL'] === 'nftables') text = `${text}add rule bridge xennet XN-TEST-NO-SUCH-CHAIN drop\n`;
    await applyScript(text);
  },
};
