/**
 * An in-memory stand-in for iptables-restore/-save and ebtables-restore/-save: one filter table
 * per family, restore text applied with --noflush semantics in one transaction (any error rejects
 * all of it), save printing what is there. Enough to test commit logic, crashes and drift without
 * root.
 */
import { XennetError } from '../../../src/sys/errors.js';
import type { Backend } from '../../../src/firewall/backend.js';
import type { Counter } from '../../../src/firewall/live.js';
import { isEbtables, kernelTable, XTABLES, type TableName, type XtablesTable } from '../../../src/firewall/model.js';

interface Table {
  chains: Map<string, string[]>;
  builtins: Map<string, string[]>;
}

const newTable = (kind: 'filter' | 'nat' | 'raw' = 'filter'): Table => ({ chains: new Map(), builtins: new Map((kind === 'nat' ? ['PREROUTING', 'OUTPUT', 'POSTROUTING'] : kind === 'raw' ? ['PREROUTING', 'OUTPUT'] : ['INPUT', 'FORWARD', 'OUTPUT']).map((c) => [c, []])) });

function clone(t: Table): Table {
  return { chains: new Map([...t.chains].map(([k, v]) => [k, [...v]])), builtins: new Map([...t.builtins].map(([k, v]) => [k, [...v]])) };
}

export class ModelBackend implements Backend {
  readonly variant = 'nft' as const;
  /** The xtables engine: xennet's nftables tables stay absent (the model has none to show). */
  readonly engine = XTABLES;
  readonly tools = { ipv4: { save: 'model', restore: 'model' }, ipv6: { save: 'model', restore: 'model' }, ipv4raw: { save: 'model', restore: 'model' }, ipv6raw: { save: 'model', restore: 'model' }, eb: { save: 'model', restore: 'model' }, ebnat: { save: 'model', restore: 'model' }, nftables: { save: 'model', restore: 'model' } };
  readonly tables: Record<XtablesTable, Table> = { ipv4: newTable(), ipv6: newTable(), ipv4raw: newTable('raw'), ipv6raw: newTable('raw'), eb: newTable(), ebnat: newTable('nat') };
  readonly restores: { table: TableName; text: string }[] = [];
  saves = 0;
  /** Called before each restore is applied; throw to simulate a crash or rejection. */
  beforeRestore?: (table: TableName, text: string) => void;

  async dropEmptyTable(): Promise<boolean> {
    return false;
  }

  /** The model counts nothing: every rule's counter is zero. */
  async chainCounters(_table: TableName, recorded: ReadonlyMap<string, readonly string[]>): Promise<Map<string, Counter[]>> {
    return new Map([...recorded].map(([c, rules]) => [c, rules.map(() => ({ packets: 0, bytes: 0 }))] as const));
  }

  async saveOther(_family: 'ipv4' | 'ipv6', table: 'mangle' | 'raw'): Promise<string> {
    return `*${table}\nCOMMIT\n`;
  }

  async save(table: TableName): Promise<string> {
    if (table === 'nftables') return '';
    this.saves++;
    const t = this.tables[table];
    const lines = [`*${kernelTable(table)}`];
    for (const c of t.builtins.keys()) lines.push(isEbtables(table) ? `:${c} ACCEPT` : `:${c} ACCEPT [0:0]`);
    for (const c of t.chains.keys()) lines.push(isEbtables(table) ? `:${c} RETURN` : `:${c} - [0:0]`);
    for (const [c, rules] of [...t.builtins, ...t.chains]) for (const r of rules) lines.push(`-A ${c} ${r}`);
    lines.push('COMMIT', '');
    return lines.join('\n');
  }

  async restore(table: TableName, text: string): Promise<void> {
    if (table === 'nftables') throw new XennetError('internal', `the xtables engine wrote to nftables: ${text}`);
    this.beforeRestore?.(table, text);
    this.restores.push({ table, text });
    const t = clone(this.tables[table]);
    const fail = (line: string): never => {
      throw new XennetError('exec', `model restore rejected: ${line}; the previous rules stay in force`);
    };
    const chain = (name: string, line: string): string[] => t.builtins.get(name) ?? t.chains.get(name) ?? fail(line);
    for (const line of text.split('\n')) {
      if (line === '' || line === '*filter' || line === '*nat' || line === '*raw' || line === 'COMMIT') continue;
      let m: RegExpExecArray | null;
      if ((m = /^:(\S+) /.exec(line))) {
        if (!t.builtins.has(m[1]!)) t.chains.set(m[1]!, []);
      } else if ((m = /^-A (\S+) (.*)$/.exec(line))) {
        chain(m[1]!, line).push(m[2]!);
      } else if ((m = /^-I (\S+) 1 (.*)$/.exec(line))) {
        chain(m[1]!, line).unshift(m[2]!);
      } else if ((m = /^-D (\S+) (.*)$/.exec(line))) {
        const c = chain(m[1]!, line);
        const i = c.indexOf(m[2]!);
        if (i < 0) fail(line);
        c.splice(i, 1);
      } else if ((m = /^-X (\S+)$/.exec(line))) {
        if (!t.chains.has(m[1]!)) fail(line);
        const target = new RegExp(`-[jg] ${m[1]!.replace(/[.+]/g, '\\$&')}$`);
        if ([...t.builtins.values(), ...t.chains.values()].some((rs) => rs.some((r) => target.test(r)))) fail(`${line} (still referenced)`);
        t.chains.delete(m[1]!);
      } else {
        fail(line);
      }
    }
    for (const rules of [...t.builtins.values(), ...t.chains.values()]) {
      for (const r of rules) {
        const j = /-[jg] (XN-\S+)$/.exec(r);
        if (j && !t.chains.has(j[1]!)) fail(`jump to missing chain ${j[1]}`);
      }
    }
    this.tables[table] = t;
  }

  /** Owned chains as name -> rules, for assertions. */
  owned(table: XtablesTable): Map<string, string[]> {
    return new Map([...this.tables[table].chains].filter(([k]) => k.startsWith('XN-')));
  }
}
