/**
 * Thin drivers around the system's iptables-restore, ip6tables-restore, ebtables-restore and
 * their -save twins. iptables comes as nf_tables or legacy (detected from `iptables --version`,
 * forced with XENNET_IPTABLES=nft|legacy); ebtables only through nf_tables on current kernels.
 * Every restore is one atomic transaction with --noflush: a rejected one leaves the previous
 * rules in force.
 */
import { readFileSync } from 'node:fs';
import { XennetError } from '../../sys/errors.js';
import { findProgram, run } from '../../sys/exec.js';
import { ipFamilyOf, isEbtables, kernelTable, type Engine, type XtablesTable } from '../model.js';
import { ownWrite, type Backend, type IptablesVariant, type TableIo } from '../backend.js';
import { chainRulesNative, nftPath, raiseRuleCounters, xennetChainsIn, type RuleCounterWanted } from '../nftables/backend.js';
import type { Counter } from '../live.js';
import { ipsetRestore } from './ipset.js';
import { learnedSetCreates, setsReadBy } from './learned.js';


/** The built-in chains of each xtables table. */
const BUILTIN_CHAINS: Record<string, readonly string[]> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  raw: ['PREROUTING', 'OUTPUT'],
  nat: ['PREROUTING', 'OUTPUT', 'POSTROUTING'],
  broute: ['BROUTING'],
};

/** Whether a `-save` text of one table shows nothing but its built-in chains at policy ACCEPT. */
export function isPristineTable(saveText: string, table: string): boolean {
  const builtins = BUILTIN_CHAINS[table] ?? [];
  let seen = false;
  for (const raw of saveText.split('\n')) {
    const l = raw.trim();
    if (l === '' || l.startsWith('#') || l === 'COMMIT') continue;
    if (l === `*${table}`) {
      seen = true;
      continue;
    }
    const chain = /^:(\S+) (\S+)/.exec(l);
    if (chain && builtins.includes(chain[1]!) && chain[2] === 'ACCEPT') continue;
    return false;
  }
  return seen;
}

export async function detectVariant(env: NodeJS.ProcessEnv = process.env): Promise<IptablesVariant> {
  const forced = env['XENNET_IPTABLES'];
  if (forced === 'nft' || forced === 'legacy') return forced;
  if (forced) throw new XennetError('usage', `XENNET_IPTABLES=${forced} is not nft or legacy`);
  // Without iptables there is nothing to detect: iptables-nft's tables (nf_tables tables) are
  // what the nftables backend reads natively; the xtables backend says iptables is missing.
  const iptables = findProgram('iptables');
  if (!iptables) return 'nft';
  const r = await run(iptables, ['--version']);
  return /legacy/.test(r.stdout) ? 'legacy' : 'nft';
}

/** The FORWARD chain of iptables-legacy's (or ip6tables-legacy's) filter table in this network namespace. */
export interface LegacyForward {
  family: 'ipv4' | 'ipv6';
  policy: string;
  rules: number;
  /** Whether one of its rules drops (or rejects) everything that reaches it. */
  dropsAll: boolean;
}

/** iptables-legacy's tables of `family` that exist here (/proc/net/ip{,6}_tables_names; no file: no legacy module loaded). */
export function legacyTables(family: 'ipv4' | 'ipv6'): string[] {
  try {
    return readFileSync(family === 'ipv4' ? '/proc/net/ip_tables_names' : '/proc/net/ip6_tables_names', 'utf8').split('\n').filter((t) => t !== '');
  } catch {
    return [];
  }
}

/**
 * iptables-legacy's filter table of a family as `-save` prints it, when it exists here (its module
 * loaded and used: /proc/net/ip{,6}_tables_names lists it) and the program is installed;
 * undefined otherwise. nf_tables does not show these tables.
 */
async function legacyFilterTable(family: 'ipv4' | 'ipv6'): Promise<string | undefined> {
  if (!legacyTables(family).includes('filter')) return undefined;
  const tool = findProgram(`${family === 'ipv4' ? 'iptables' : 'ip6tables'}-legacy-save`);
  if (!tool) return undefined;
  const r = await run(tool, ['-t', 'filter']);
  if (r.code !== 0) throw new XennetError('exec', `${tool} -t filter failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  return r.stdout;
}

/**
 * iptables-legacy's FORWARD chains, where that family's legacy filter table exists. Bridged
 * traffic passes them when br_netfilter calls iptables.
 */
export async function legacyForwardChains(): Promise<LegacyForward[]> {
  const out: LegacyForward[] = [];
  for (const family of ['ipv4', 'ipv6'] as const) {
    const text = await legacyFilterTable(family);
    if (text === undefined) continue;
    const policy = /^:FORWARD (\S+)/m.exec(text)?.[1] ?? 'ACCEPT';
    const rules = text.split('\n').filter((l) => l.startsWith('-A FORWARD '));
    // A rule with no match before its DROP or REJECT drops every forwarded packet, as a policy would.
    out.push({ family, policy, rules: rules.length, dropsAll: rules.some((l) => /^-A FORWARD -j (DROP|REJECT)\b/.test(l)) });
  }
  return out;
}

/**
 * Whether xennet's chains (XN-*) are in iptables' filter table, where the xtables backend always
 * has its root chain: through nf_tables for iptables-nft (no program needed), in iptables-legacy's
 * where that table exists here.
 */
export async function xtablesChainsPresent(): Promise<boolean> {
  try {
    if ((await xennetChainsIn('ipv4', 'filter')).length > 0) return true;
  } catch {
    // A kernel without nf_tables: nothing of the nf_tables variant.
  }
  try {
    return /^:XN-/m.test((await legacyFilterTable('ipv4')) ?? '');
  } catch {
    return false;
  }
}

/** The nf_tables family and table an xtables table of the nf_tables variant lives in. */
function nfTablesHome(table: XtablesTable): { family: 'ipv4' | 'ipv6' | 'bridge'; table: string } {
  return { family: isEbtables(table) ? 'bridge' : ipFamilyOf(table as 'ipv4'), table: kernelTable(table) };
}

/** The protocol numbers of the `-p` names xennet's iptables rules use. */
const PROTOCOLS: Readonly<Record<string, number>> = { icmp: 1, tcp: 6, udp: 17, 'ipv6-icmp': 58, icmpv6: 58 };

/**
 * The counters a restore text starts rules from (renderRestore: `[p:b] -A C ...` for iptables,
 * `-A C ... -c p b` for ebtables), by chain and index in the chain (every chain a text appends to
 * is declared in it, so emptied first), with the protocol an iptables rule names (`-p`), which
 * its matches need when it is written again natively; undefined when none (pure).
 */
export function restorePresets(text: string): Map<string, Map<number, RuleCounterWanted>> | undefined {
  const count = new Map<string, number>();
  let out: Map<string, Map<number, RuleCounterWanted>> | undefined;
  for (const line of text.split('\n')) {
    const m = /^(?:\[(\d+):(\d+)\] )?-A (\S+) (.*?)(?: -c (\d+) (\d+))?$/.exec(line);
    if (!m) continue;
    const chain = m[3]!;
    const i = count.get(chain) ?? 0;
    count.set(chain, i + 1);
    const packets = m[1] ?? m[5];
    const bytes = m[2] ?? m[6];
    if (packets === undefined || bytes === undefined) continue;
    out ??= new Map();
    let mine = out.get(chain);
    if (!mine) out.set(chain, (mine = new Map()));
    const p = /(?:^| )(!\s+)?-p (\S+)/.exec(m[4]!);
    const proto = p ? PROTOCOLS[p[2]!] : undefined;
    mine.set(i, { counter: { packets: Number(packets), bytes: Number(bytes) }, ...(proto !== undefined ? { compat: { proto, invert: p![1] !== undefined } } : {}) });
  }
  return out;
}

/**
 * The xtables tables' readers and writers (the `-save` and `-restore` programs of the iptables
 * variant and ebtables), and what only they do: read another iptables table, drop an empty one.
 * `engine`: the engine in use (the nftables backend reads these tables only to find and remove
 * what the xtables backend left in them, and runs without the programs where nothing is left).
 */
export function xtablesIo(variant: IptablesVariant, engine: Engine): { tables: Record<XtablesTable, TableIo>; saveOther: Backend['saveOther']; dropEmptyTable: (table: XtablesTable) => Promise<boolean> } {
  // The programs are looked up once, and needed only when used: the nftables backend runs on a
  // host without them (what it may have to clean up in their tables it finds through nf_tables).
  const pair = (save: string[], restore: string[]): { save: string | undefined; restore: string | undefined } => ({ save: save.map((p) => findProgram(p)).find((p) => p), restore: restore.map((p) => findProgram(p)).find((p) => p) });
  const v4 = pair([`iptables-${variant}-save`], [`iptables-${variant}-restore`]);
  const v6 = pair([`ip6tables-${variant}-save`], [`ip6tables-${variant}-restore`]);
  const eb = pair(['ebtables-nft-save', 'ebtables-save'], ['ebtables-nft-restore', 'ebtables-restore']);
  const found: Record<XtablesTable, { save: string | undefined; restore: string | undefined }> = { ipv4: v4, ipv6: v6, ipv4raw: v4, ipv6raw: v6, eb, ebnat: eb };
  const inUse = engine.kind === 'xtables';
  const program = (table: XtablesTable, which: 'save' | 'restore'): string => {
    const p = found[table][which];
    if (p) return p;
    const name = isEbtables(table) ? `ebtables-${which}` : `${ipFamilyOf(table as 'ipv4') === 'ipv4' ? 'iptables' : 'ip6tables'}-${variant}-${which}`;
    throw new XennetError('exec', `${name} is not installed`, { hint: inUse ? 'install the Debian packages iptables and ebtables, or use the nftables backend (`backend: nftables`)' : 'install the Debian packages iptables and ebtables to let xennet read and remove what it left in their tables' });
  };
  /** A table as its save program prints it (with counters when asked). */
  const readWith = async (table: XtablesTable, tool: string, options: { counters?: boolean }): Promise<string> => {
    const args = ['-t', kernelTable(table)];
    if (options.counters) args.push('-c');
    const r = await run(tool, args);
    if (r.code !== 0) throw new XennetError('exec', `${tool} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
    // A table holding native nftables rules the tool cannot show is printed as one comment:
    // read as empty, it would hide whatever is there (and invite duplicate rules).
    if (/^# Table `[^']*' is incompatible/m.test(r.stdout)) {
      throw new XennetError('refused', `${tool} cannot show the ${kernelTable(table)} table: it holds native nftables rules that ${isEbtables(table) ? 'ebtables' : 'iptables'} cannot represent, so xennet can neither check nor change it`, {
        hint: `\`nft list table ${isEbtables(table) ? 'bridge' : ipFamilyOf(table as 'ipv4') === 'ipv4' ? 'ip' : 'ip6'} ${kernelTable(table)}\` shows them; move them to a table of their own`,
      });
    }
    return r.stdout;
  };
  /** Whether a table is an nf_tables table: iptables' nf_tables variant; ebtables-nft, or no ebtables program (ebtables' tables are then nf_tables' if anything's). */
  const nfTablesVariant = (table: XtablesTable): boolean => (isEbtables(table) ? !found[table].save || /ebtables-nft-save$/.test(found[table].save) : variant === 'nft');
  const io = (table: XtablesTable): TableIo => ({
    async save(options = {}) {
      if (!inUse) {
        // The other backend in use: all that matters here is what xennet may have left, found
        // without running a program while there is nothing (six of them took 60 ms of every
        // plan). On the nf_tables variant the tables are nf_tables tables, where xennet's chains
        // would show (every rule of xennet's is in, or jumps to, a chain of its own); a legacy
        // table exists only once its module is loaded and the table used.
        const home = nfTablesHome(table);
        const left = nfTablesVariant(table) ? await xennetChainsIn(home.family, home.table) : undefined;
        if (left?.length === 0) return '';
        if (left === undefined && !isEbtables(table) && !legacyTables(ipFamilyOf(table as 'ipv4')).includes(kernelTable(table))) return '';
        if (!found[table].save) {
          // Nothing of the xtables backend's can be read or removed without the program.
          if (left === undefined) return '';
          throw new XennetError('exec', `xennet's chains of the xtables backend remain in ${home.family === 'bridge' ? 'bridge' : home.family === 'ipv4' ? 'ip' : 'ip6'} ${home.table} (${left.slice(0, 3).join(', ')}${left.length > 3 ? ', ...' : ''}), and ${isEbtables(table) ? 'ebtables' : 'iptables'} is not installed to read or remove them`, {
            hint: 'install the Debian packages iptables and ebtables and run `xennet apply`: it removes them',
          });
        }
      }
      return readWith(table, program(table, 'save'), options);
    },
    // On the nf_tables variant the tables are nf_tables tables, whose rules count in a counter
    // expression: a few chains are read without the whole table, their rules known by position
    // while each chain holds as many as recorded (else, and on legacy, matched by text in the save).
    chainCounters:
      variant === 'nft'
        ? async (recorded) => {
            const kernel = await chainRulesNative(nfTablesHome(table).family, nfTablesHome(table).table, recorded.keys());
            const out = new Map<string, Counter[]>();
            for (const [c, rules] of recorded) {
              const live = kernel.get(c) ?? [];
              if (live.length !== rules.length && live.length > 0) return undefined;
              out.set(c, live.length === 0 ? rules.map(() => ({ packets: 0, bytes: 0 })) : live.map((r) => r.counter));
            }
            return out;
          }
        : undefined,
    async restore(text) {
      // Test-only seam: XENNET_TEST_RESTORE_FAIL=<table> makes that table's transaction invalid.
      if (process.env['XENNET_TEST_RESTORE_FAIL'] === table) text = text.replace(/COMMIT\n?$/, '-A XN-TEST-NO-SUCH-CHAIN -j DROP\nCOMMIT\n');
      const tool = program(table, 'restore');
      // A learning guest's source check reads the learned ipsets: they exist before it does.
      if (!isEbtables(table)) await ipsetRestore(learnedSetCreates(setsReadBy(text)));
      const args = isEbtables(table) ? ['--noflush'] : ['--noflush', '-w', '10'];
      // Rules that start from a counter (renderRestore: a guest's drops carried over a rewrite).
      if (!isEbtables(table) && /^\[\d+:\d+\] -A /m.test(text)) args.push('--counters');
      const r = await ownWrite(async (committed) => {
        const done = await run(tool, args, { input: text });
        if (done.code === 0) committed();
        return done;
      });
      if (r.code !== 0) {
        throw new XennetError('exec', `${tool} rejected the update: ${r.stderr.trim().split('\n').slice(0, 3).join(' ')}; the previous rules stay in force`, {
          hint: 'run `xennet plan` to see the difference; report the restore text if it persists',
        });
      }
      // ip6tables-nft (1.8.9) takes no counters from its input: on the nf_tables variant, the
      // rules that start from a counter are looked at, and set where the tool did not.
      // The rules are in force by now: a failure here costs only the counts carried over.
      const presets = variant === 'nft' ? restorePresets(text) : undefined;
      if (presets) await raiseRuleCounters(nfTablesHome(table).family, nfTablesHome(table).table, presets).catch(() => undefined);
    },
  });
  return {
    tables: { ipv4: io('ipv4'), ipv6: io('ipv6'), ipv4raw: io('ipv4raw'), ipv6raw: io('ipv6raw'), eb: io('eb'), ebnat: io('ebnat') },
    async saveOther(family, table) {
      // Without iptables, no other program's rules in its tables can be read (status's check of
      // mark writers has nothing to look at).
      if (!found[family].save && !inUse) return '';
      const tool = program(family, 'save');
      const r = await run(tool, ['-t', table]);
      if (r.code !== 0) throw new XennetError('exec', `${tool} -t ${table} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
      return r.stdout;
    },
    async dropEmptyTable(table) {
      if (nftPath() === undefined) return false;
      const tool = found[table].save;
      if (!tool) return false;
      if (!/-nft-save$/.test(tool) && !(variant === 'nft' && !isEbtables(table))) return false;
      const name = kernelTable(table);
      const r = await run(tool, ['-t', name]);
      if (r.code !== 0 || !isPristineTable(r.stdout, name)) return false;
      const family = isEbtables(table) ? 'bridge' : ipFamilyOf(table as 'ipv4') === 'ipv4' ? 'ip' : 'ip6';
      const d = await run(nftPath()!, ['delete', 'table', family, name]);
      return d.code === 0;
    },
  };
}
