/**
 * The firewall's kernel interface: every table xennet may have rules in (each driver's tables,
 * the backend not in use included: moving the firewall is a diff like any other), each read and
 * written through the reader and writer of the driver that owns it.
 */
import type { Counter, LiveTable } from './live.js';
import type { Engine, TableName, TableRules } from './model.js';

/** The iptables variant whose programs read and write the xtables tables. */
export type IptablesVariant = 'nft' | 'legacy';

/** One table's reader and writer. */
export interface TableIo {
  save(options?: { counters?: boolean }): Promise<string>;
  /** One transaction: all of it or nothing. */
  restore(text: string): Promise<void>;
  /**
   * The table read without text, when every rule in it is one of `desired`'s (known by its tag)
   * and all else is as xennet writes it; undefined otherwise (then `save` must be read).
   */
  readKnown?(desired: TableRules): Promise<LiveTable | undefined>;
  /**
   * What the kernel counted for each of these recorded rules of xennet's chains (by chain, one
   * counter per recorded rule: zero for a rule the kernel does not hold as recorded), read without
   * the whole table; undefined where the table's reader cannot tell which kernel rule is which
   * (then `save` with counters is read).
   */
  chainCounters?(recorded: ReadonlyMap<string, readonly string[]>): Promise<Map<string, Counter[]> | undefined>;
}

/**
 * This process's writes to the firewall, for a watcher of nf_tables' ruleset generation (every
 * commit to any table makes a new one): it tells its own commits from other programs' by
 * counting. A generation that moved by no more than the commits made here since it last looked
 * (and while no write is in flight) is this process's own.
 */
const ownWrites = { inFlight: 0, commits: 0 };

/** Runs `write`, which calls `committed` after each transaction the kernel accepted. */
export async function ownWrite<T>(write: (committed: () => void) => Promise<T>): Promise<T> {
  ownWrites.inFlight++;
  try {
    return await write(() => {
      ownWrites.commits++;
    });
  } finally {
    ownWrites.inFlight--;
  }
}

/** The writes in flight and the commits made so far by this process. */
export function ownWriteState(): { inFlight: number; commits: number } {
  return { ...ownWrites };
}

/**
 * Whether the generation moved from `seen` to `now` by others' commits too, when this process
 * made `ownCommits` commits in between (pure). A transaction with nothing in it makes no
 * generation, so fewer than counted is still this process's own.
 */
export function othersCommitted(seen: number, now: number, ownCommits: number): boolean {
  const moved = (now - seen) >>> 0;
  return moved !== 0 && moved > ownCommits;
}

export interface Backend {
  variant: IptablesVariant;
  /** The engine in use: what the rule file compiles to. */
  engine: Engine;
  save(table: TableName, options?: { counters?: boolean }): Promise<string>;
  /** See TableIo.readKnown; undefined where the table's driver cannot. */
  readKnown?(table: TableName, desired: TableRules): Promise<LiveTable | undefined>;
  /** What the kernel counted for each of these recorded rules of a table: see TableIo.chainCounters, else matched by text in `save` with counters. */
  chainCounters(table: TableName, recorded: ReadonlyMap<string, readonly string[]>): Promise<Map<string, Counter[]>>;
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
