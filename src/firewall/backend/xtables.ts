/**
 * Thin drivers around the system's iptables-restore, ip6tables-restore, ebtables-restore and
 * their -save twins. iptables comes as nf_tables or legacy (detected from `iptables --version`,
 * forced with XENNET_IPTABLES=nft|legacy); ebtables only through nf_tables on current kernels.
 * Every restore is one atomic transaction with --noflush: a rejected one leaves the previous
 * rules in force.
 */
import { existsSync } from 'node:fs';
import { XennetError } from '../../sys/errors.js';
import { run } from '../../sys/exec.js';
import { ipFamilyOf, isEbtables, kernelTable, XTABLES, type Engine, type TableName } from '../model.js';
import { applyScript, listOwnTables, nftPath, readOwnTablesNative } from './nft.js';
import type { LiveTable } from '../save-parse.js';
import { ipsetRestore } from './ipset.js';
import { learnedSetCreates, setsReadBy } from '../learned-xtables.js';

export type IptablesVariant = 'nft' | 'legacy';

/** Pids of this process's recent restores (a ruleset monitor tells its own changes from others'). */
export const ownRestorePids = new Map<number, number>();
function noteOwnPid(pid: number): void {
  const now = Date.now();
  ownRestorePids.set(pid, now);
  for (const [p, t] of ownRestorePids) if (now - t > 60_000) ownRestorePids.delete(p);
}

/**
 * The firewall's kernel interface: every table xennet may have rules in (the xtables ones and its
 * own nftables tables), and the engine the rule file compiles to.
 */
export interface Backend {
  variant: IptablesVariant;
  engine: Engine;
  /** The executables used, for status. */
  tools: Record<TableName, { save: string; restore: string }>;
  save(table: TableName, options?: { counters?: boolean }): Promise<string>;
  /**
   * xennet's nftables tables read without text, when every rule in them is one of `known` (by
   * its tag) and all else is as xennet writes it; undefined otherwise (then `save` must be read).
   */
  readNative?(known: ReadonlyMap<string, string>): Promise<LiveTable | undefined>;
  /** Another table of iptables/ip6tables (read only: status looks for rules that rewrite marks). */
  saveOther(family: 'ipv4' | 'ipv6', table: 'mangle' | 'raw'): Promise<string>;
  restore(table: TableName, text: string): Promise<void>;
  /**
   * Deletes an iptables/ebtables table that holds nothing (built-in chains only, policy ACCEPT,
   * no rule): what uninstall leaves of a table xennet made. Only on the nf_tables variant, whose
   * tables exist only once used (a legacy table is a module's, always there); true when deleted.
   */
  dropEmptyTable(table: TableName): Promise<boolean>;
}

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

const sbinDirs = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];

function which(name: string): string | undefined {
  for (const d of sbinDirs) if (existsSync(`${d}/${name}`)) return `${d}/${name}`;
  return undefined;
}

function need(name: string): string {
  const p = which(name);
  if (!p) throw new XennetError('exec', `${name} is not installed`, { hint: 'install the Debian packages iptables and ebtables' });
  return p;
}

export async function detectVariant(env: NodeJS.ProcessEnv = process.env): Promise<IptablesVariant> {
  const forced = env['XENNET_IPTABLES'];
  if (forced === 'nft' || forced === 'legacy') return forced;
  if (forced) throw new XennetError('usage', `XENNET_IPTABLES=${forced} is not nft or legacy`);
  const r = await run(need('iptables'), ['--version']);
  return /legacy/.test(r.stdout) ? 'legacy' : 'nft';
}

export function xtablesBackend(variant: IptablesVariant, engine: Engine = XTABLES): Backend {
  const v4 = { save: need(`iptables-${variant}-save`), restore: need(`iptables-${variant}-restore`) };
  const v6 = { save: need(`ip6tables-${variant}-save`), restore: need(`ip6tables-${variant}-restore`) };
  const eb = { save: which('ebtables-nft-save') ?? need('ebtables-save'), restore: which('ebtables-nft-restore') ?? need('ebtables-restore') };
  const nft = nftPath() ?? 'nft';
  const tools: Backend['tools'] = { ipv4: v4, ipv6: v6, ipv4raw: v4, ipv6raw: v6, eb, ebnat: eb, nftables: { save: nft, restore: nft } };
  return {
    variant,
    engine,
    tools,
    async save(table, options = {}) {
      if (table === 'nftables') return listOwnTables();
      const args = ['-t', kernelTable(table)];
      if (options.counters) args.push('-c');
      const r = await run(tools[table].save, args);
      if (r.code !== 0) throw new XennetError('exec', `${tools[table].save} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
      // A table holding native nftables rules the tool cannot show is printed as one comment:
      // read as empty, it would hide whatever is there (and invite duplicate rules).
      if (/^# Table `[^']*' is incompatible/m.test(r.stdout)) {
        throw new XennetError('refused', `${tools[table].save} cannot show the ${kernelTable(table)} table: it holds native nftables rules that ${isEbtables(table) ? 'ebtables' : 'iptables'} cannot represent, so xennet can neither check nor change it`, {
          hint: `\`nft list table ${isEbtables(table) ? 'bridge' : ipFamilyOf(table as 'ipv4') === 'ipv4' ? 'ip' : 'ip6'} ${kernelTable(table)}\` shows them; move them to a table of their own`,
        });
      }
      return r.stdout;
    },
    readNative: readOwnTablesNative,
    async dropEmptyTable(table) {
      if (table === 'nftables' || nftPath() === undefined) return false;
      const tool = tools[table].save;
      if (!/-nft-save$/.test(tool) && !(variant === 'nft' && !isEbtables(table))) return false;
      const name = kernelTable(table);
      const r = await run(tool, ['-t', name]);
      if (r.code !== 0 || !isPristineTable(r.stdout, name)) return false;
      const family = isEbtables(table) ? 'bridge' : ipFamilyOf(table as 'ipv4') === 'ipv4' ? 'ip' : 'ip6';
      const d = await run(nft, ['delete', 'table', family, name]);
      return d.code === 0;
    },
    async saveOther(family, table) {
      const r = await run(tools[family].save, ['-t', table]);
      if (r.code !== 0) throw new XennetError('exec', `${tools[family].save} -t ${table} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
      return r.stdout;
    },
    async restore(table, text) {
      // Test-only seam: XENNET_TEST_RESTORE_FAIL=<table> makes that table's transaction invalid.
      if (process.env['XENNET_TEST_RESTORE_FAIL'] === table) text = table === 'nftables' ? `${text}add rule bridge xennet XN-TEST-NO-SUCH-CHAIN drop\n` : text.replace(/COMMIT\n?$/, '-A XN-TEST-NO-SUCH-CHAIN -j DROP\nCOMMIT\n');
      if (table === 'nftables') return applyScript(text, noteOwnPid);
      // A learning guest's source check reads the learned ipsets: they exist before it does.
      if (!isEbtables(table)) await ipsetRestore(learnedSetCreates(setsReadBy(text)));
      const args = isEbtables(table) ? ['--noflush'] : ['--noflush', '-w', '10'];
      const r = await run(tools[table].restore, args, { input: text, onSpawn: noteOwnPid });
      if (r.code !== 0) {
        throw new XennetError('exec', `${tools[table].restore} rejected the update: ${r.stderr.trim().split('\n').slice(0, 3).join(' ')}; the previous rules stay in force`, {
          hint: 'run `xennet plan` to see the difference; report the restore text if it persists',
        });
      }
    },
  };
}

export async function defaultBackend(env: NodeJS.ProcessEnv = process.env): Promise<Backend> {
  return xtablesBackend(await detectVariant(env));
}
