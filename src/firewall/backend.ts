/**
 * The firewall's kernel interface: every table xennet may have rules in (each driver's tables,
 * the backend not in use included: moving the firewall is a diff like any other), each read and
 * written through the reader and writer of the driver that owns it.
 */
import type { LiveTable } from './live.js';
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
}

/**
 * Pids of this process's recent restores, with when each was spawned: a ruleset monitor tells its
 * own changes from others' by the pid a commit names. Only for OWN_PID_MS: an idle daemon must not
 * take a foreign commit for its own because the kernel gave that program a pid of one of its old
 * restores (pids wrap around).
 */
const ownRestorePids = new Map<number, number>();
const OWN_PID_MS = 10_000;

export function noteOwnPid(pid: number): void {
  const now = Date.now();
  ownRestorePids.set(pid, now);
  for (const [p, t] of ownRestorePids) if (now - t > OWN_PID_MS) ownRestorePids.delete(p);
}

/** Whether a commit naming `pid` is one of this process's restores (spawned less than OWN_PID_MS ago). */
export function isOwnRestore(pid: number, now = Date.now()): boolean {
  const t = ownRestorePids.get(pid);
  return t !== undefined && now - t <= OWN_PID_MS;
}

export interface Backend {
  variant: IptablesVariant;
  /** The engine in use: what the rule file compiles to. */
  engine: Engine;
  save(table: TableName, options?: { counters?: boolean }): Promise<string>;
  /** See TableIo.readKnown; undefined where the table's driver cannot. */
  readKnown?(table: TableName, desired: TableRules): Promise<LiveTable | undefined>;
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
