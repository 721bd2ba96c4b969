/**
 * What a firewall backend does for the backend-neutral core (policy resolution, the index, the
 * staging and commit protocol, plan and status): compile, name its tables, say what it needs of
 * the host. Each backend implements it beside its own code (xtables/driver.ts,
 * nftables/driver.ts); the core asks drivers.ts for the one of an engine and never branches on
 * the backend itself.
 */
import type { bridgeNetfilterSysctls } from '../sys/sysctl.js';
import type { LiveTable } from './live.js';
import type { BackendKind, Claims, Engine, ResolvedVif, RuleDialect, RuleSet, TableName, TablePlan, TableRules, TreeMember } from './model.js';

export type BridgeSysctl = (typeof bridgeNetfilterSysctls)[number];

/** What an adopted guest (live rules, no record) was installed with, as the live rules show it. */
export interface AdoptedFacts {
  isolated: boolean;
  claims?: Claims | undefined;
  learning?: boolean;
}

/** One table of a driver's: how it is read, written and planned. */
export interface TableCodec {
  /** How its rules are written (they compare by this dialect's normal form). */
  readonly dialect: RuleDialect;
  /** Its name in messages: `iptables`, `ebtables nat`, `nftables`. */
  readonly label: string;
  /** Its live state, from what the backend's reader printed. */
  parse(text: string): LiveTable;
  /** One transaction that carries out a plan ('' when there is nothing to do). */
  render(plan: TablePlan): string;
  /** What the backend adds to a plan the core's diff made (the diff of chains and root jumps). */
  completePlan?(plan: TablePlan, live: LiveTable, desired: TableRules): void;
  /** What it adds to a change made from the record alone (not from the live rules) that is not empty; `before` is the state recorded. */
  completeRecordedPlan?(plan: TablePlan, before: TableRules): void;
  /** The guests a live table shows chains of (those with no record are adopted). */
  liveGuests(live: LiveTable): Set<string>;
  /** What an adopted guest was installed with, as this table shows it; `elsewhere` is what the driver's other tables show. */
  adoptedFacts(live: LiveTable, vif: string, elsewhere: AdoptedFacts): AdoptedFacts;
}

export interface FirewallDriver {
  readonly kind: BackendKind;
  /** The tables it writes: every other table must hold nothing of xennet's while it is in use. */
  readonly tables: readonly TableName[];
  /** What it is, as `status` and `plan` name it. */
  describe(engine: Engine): string;
  /** A guest's own chains. */
  compileVif(v: ResolvedVif, engine: Engine): RuleSet;
  /** The chains the guests share (dispatch, isolation, identity guard) and the root jumps; nothing for no guests. */
  compileShared(members: readonly TreeMember[], engine: Engine): RuleSet;
  /** What the rule file asks of this guest that this backend cannot check, as plan and status warnings. */
  warnings(v: ResolvedVif): string[];
  /** The br_netfilter settings it needs, and what a host set otherwise lets through. */
  readonly bridgeNetfilter: { wanted: Readonly<Record<BridgeSysctl, '0' | '1'>>; risk: string };
  /** Why address learning cannot run with it on this host now (undefined: it can). */
  learningUnavailable(): string | undefined;
  /** Why it cannot run on this host (undefined: it can). */
  compat(): Promise<string | undefined>;
  /** Its tables' codecs. */
  readonly codecs: Readonly<Partial<Record<TableName, TableCodec>>>;
  /** The tables whose live state tells what an adopted guest was installed with, across tables (read once per reconcile). */
  readonly adoptionTables: readonly TableName[];
  /** What an adopted guest was installed with, from those tables. */
  adoptedAcrossTables(live: Readonly<Partial<Record<TableName, LiveTable>>>, vif: string): AdoptedFacts;
}
