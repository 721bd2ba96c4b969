/**
 * What a firewall backend does for the backend-neutral core (policy resolution, the index, the
 * staging and commit protocol, plan and status): compile, name its tables, say what it needs of
 * the host. Each backend implements it beside its own code (xtables/driver.ts,
 * nftables/driver.ts); the core asks drivers.ts for the one of an engine and never branches on
 * the backend itself.
 */
import type { bridgeNetfilterSysctls } from '../sys/sysctl.js';
import type { Backend, IptablesVariant } from './backend.js';
import type { Binding } from './learning/bindings.js';
import type { DropReason } from './drop-reasons.js';
import type { SharedChainKind } from './integrity.js';
import type { LiveTable } from './live.js';
import type { BackendKind, Claims, Engine, ResolvedVif, RuleDialect, RuleSet, TableName, TablePlan, TableRules, TreeMember } from './model.js';

export type BridgeSysctl = (typeof bridgeNetfilterSysctls)[number];

/** What an adopted guest (live rules, no record) was installed with, as the live rules show it. */
export interface AdoptedFacts {
  isolated: boolean;
  claims?: Claims | undefined;
  learning?: boolean;
}

/** A learned binding as the kernel holds it. */
export interface KernelBinding {
  vif: string;
  family: 'ipv4' | 'ipv6';
  address: string;
  /** ms left, or null: no timeout. */
  expiresMs: number | null;
}

/** Where a driver keeps learning guests' bindings in the kernel (the rules read them there). */
export interface LearnedStore {
  /** Writes these bindings and removes those, in one change where the kernel allows. */
  write(write: readonly Binding[], remove: readonly Binding[]): Promise<void>;
  /** Every binding the kernel holds, sorted by vif and family. */
  list(): Promise<KernelBinding[]>;
  /** Drops what holds these vifs' bindings outside the rules (when the vifs go). */
  dropFor?(vifs: Iterable<string>): Promise<void>;
}

/** What `status` gives a driver to look at, once the firewall is read. */
export interface StatusInput {
  live: Readonly<Record<TableName, LiveTable>>;
  backend: Backend;
  engine: Engine;
  /** Whether any guest is isolated. */
  isolation: boolean;
  /** Says what could not be read (such a status is never remembered). */
  unread(what: string): void;
}

export interface StatusFindings {
  problems: string[];
  notes: string[];
}

/** Frames from other ports that carried one of these claims, as the identity guard's counters show them. */
export type ClaimDrops = (claims: Claims | undefined) => { packets: number; bytes: number };

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
  /** A transaction that empties one of xennet's chains (a test's tampering). */
  emptyChain(chain: string): string;
  /** What the backend adds to a plan the core's diff made (the diff of chains and root jumps). */
  completePlan?(plan: TablePlan, live: LiveTable, desired: TableRules): void;
  /** What it adds to a change made from the record alone (not from the live rules) that is not empty; `before` is the state recorded. */
  completeRecordedPlan?(plan: TablePlan, before: TableRules): void;
  /** What one of its shared chains is (for status's messages). */
  chainKind(chain: string): SharedChainKind;
  /**
   * Why a rule of a guest's chain (as this table's reader shows it) drops what it matches;
   * undefined for a rule that does not drop. Every drop rule of a guest's own chains has one.
   */
  dropReason(chain: string, rule: string): DropReason | undefined;
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
  /** What it runs on, in one line (`status`, `plan`): the programs for xtables, the tables' connection state for nftables. */
  summary(engine: Engine, variant: IptablesVariant): string;
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
  /**
   * Whether every change to what status reads of it makes a new nf_tables ruleset generation
   * (then a status read before can stand while the generation is the same). Not so for ipsets
   * and iptables-legacy.
   */
  readonly changesShowInGeneration: boolean;
  /** Where it keeps learned bindings in the kernel. */
  readonly learned: LearnedStore;
  /** Whether its rules spell out a learning guest's bindings: a change to them re-installs the guest's chains. */
  readonly bindingsInRules: boolean;
  /** What status says of this backend beyond each guest's chains (problems of its own, notes). */
  statusFindings(input: StatusInput): Promise<StatusFindings>;
  /** The identity guard's drops, by claim. */
  claimDrops(live: Readonly<Record<TableName, LiveTable>>): ClaimDrops;
  /**
   * Drops what it keeps of learned bindings outside its tables for guests not in `keep` (the
   * xtables backend's ipsets; all of them when another backend is in use).
   */
  sweepLearned?(keep: ReadonlySet<string>): Promise<void>;
  /** What sweepLearned would drop for this `keep`, by name (plan shows it). */
  strayLearned?(keep: ReadonlySet<string>): Promise<string[]>;
  /** Its tables' codecs. */
  readonly codecs: Readonly<Partial<Record<TableName, TableCodec>>>;
  /** The tables whose live state tells what an adopted guest was installed with, across tables (read once per reconcile). */
  readonly adoptionTables: readonly TableName[];
  /** What an adopted guest was installed with, from those tables. */
  adoptedAcrossTables(live: Readonly<Partial<Record<TableName, LiveTable>>>, vif: string): AdoptedFacts;
}
