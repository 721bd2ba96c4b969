/**
 * Drift healed: the daemon notices within seconds that another program flushed or damaged its
 * root jumps, XN-FORWARD, the dispatch trees or a guest's chain, repairs the firewall to what it
 * installed, and logs what it repaired.
 *
 * With iptables on nf_tables (and ebtables, which always is), every commit to any table makes a
 * new ruleset generation: the daemon reads the generation every second (one small netlink
 * request), and a generation that moved by more than its own commits schedules a check. (Not the
 * kernel's multicast announcements: every rule of a large commit is announced, and a daemon busy
 * for a moment overran its socket, which the netlink binding answers by aborting the process.)
 * With iptables-legacy (which makes no generation) the check polls every 3 s. A full check also
 * runs every 30 s whatever the backend. A check reads without the hotplug lock (it may catch a
 * hook's commit half way: then it looks again under the lock); a repair runs under it, so it
 * never interleaves with a hook's commit.
 */
import { othersCommitted, ownWriteState, type Backend } from '../firewall/backend.js';
import { installedBackend } from '../firewall/engine.js';
import { rulesetGeneration } from '../firewall/nftables/backend.js';
import { indexStamp } from '../firewall/store.js';
import { commitStaged, describePlans, driftPlans } from '../firewall/commit.js';
import { isEmptyPlan } from '../firewall/diff.js';
import { Deadline } from '../sys/deadline.js';
import { reasonOf } from '../sys/errors.js';
import type { DaemonContext } from './server.js';

const FULL_CHECK_MS = 30_000;
const LEGACY_POLL_MS = 3_000;
const DEBOUNCE_MS = 300;
const GENERATION_POLL_MS = 1_000;

/** What a repair did, for one log line: a flushed ruleset is every chain of every guest. */
function summary(what: readonly string[], max = 6): string {
  return what.length <= max ? what.join('; ') : `${what.slice(0, max).join('; ')}; and ${what.length - max} more`;
}

export class DriftWatch {
  private backend: Backend | undefined;
  /** The generation the last poll saw, and this process's commit count then. */
  private seen: { generation: number; ownCommits: number } | undefined;
  private polling = false;
  private timers: NodeJS.Timeout[] = [];
  private pending: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private mode = 'off';
  private lastCheck: Date | null = null;
  private lastRepair: string | null = null;
  /** The backend installed, as the last check found it, and the index's stamp then. */
  private installed: { stamp: string; backend: Backend } | undefined;
  /** The ruleset's generation and the index's stamp when a check last found nothing to repair. */
  private quiet: string | undefined;
  /** Checks that read the rules, and those that did not need to (nothing committed since a clean one). */
  private reads = 0;
  private unchanged = 0;
  /** Times the installed backend was looked up (the index loaded): not by a check that skips. */
  private lookups = 0;

  constructor(private readonly d: DaemonContext) {}

  state(): { mode: string; lastCheck: string | null; lastRepair: string | null; reads: number; unchanged: number; lookups: number } {
    return { mode: this.mode, lastCheck: this.lastCheck?.toISOString() ?? null, lastRepair: this.lastRepair, reads: this.reads, unchanged: this.unchanged, lookups: this.lookups };
  }

  /**
   * What a clean check saw: nf_tables' generation (every commit to any table, iptables-nft's and
   * ebtables' included, makes a new one) and the index's stamp. Undefined with iptables-legacy,
   * whose tables make no generation: those are read every time.
   */
  private async quietKey(backend: Backend): Promise<string | undefined> {
    if (backend.variant === 'legacy') return undefined;
    try {
      return `${await rulesetGeneration()} ${indexStamp(this.d.env)}`;
    } catch {
      return undefined;
    }
  }

  async start(): Promise<void> {
    try {
      this.backend = await installedBackend(this.d.env, this.d.log);
    } catch (e) {
      this.d.log.warning(`drift checks are off: ${reasonOf(e)}`);
      return;
    }
    const every = (ms: number): void => {
      const t = setInterval(() => this.schedule(0), ms);
      t.unref();
      this.timers.push(t);
    };
    every(FULL_CHECK_MS);
    if (this.backend.variant === 'legacy') every(LEGACY_POLL_MS);
    await this.startMonitor();
    this.mode = this.backend.variant === 'legacy' ? `nf_tables generation every ${GENERATION_POLL_MS / 1000} s (ebtables) and polling every ${LEGACY_POLL_MS / 1000} s (iptables-legacy)` : `nf_tables generation every ${GENERATION_POLL_MS / 1000} s`;
    this.schedule(0);
  }

  private async startMonitor(): Promise<void> {
    // The first look before the first check: a commit after it is judged by the next poll (one
    // made between the daemon's start and a first poll would otherwise be taken as the baseline).
    const before = ownWriteState();
    try {
      this.seen = { generation: await rulesetGeneration(), ownCommits: before.commits };
    } catch {
      // nf_tables cannot be read now: the first poll that can takes its baseline
    }
    const t = setInterval(() => void this.pollGeneration(), GENERATION_POLL_MS);
    t.unref();
    this.timers.push(t);
  }

  /** A check when the ruleset's generation moved by more than this process's own commits. */
  private async pollGeneration(): Promise<void> {
    // A write in flight: its commits are not all counted yet; the next poll judges.
    if (this.polling || this.stopped || ownWriteState().inFlight > 0) return;
    this.polling = true;
    try {
      const before = ownWriteState();
      let generation: number;
      try {
        generation = await rulesetGeneration();
      } catch {
        return; // nf_tables cannot be read now: the periodic check says why
      }
      const after = ownWriteState();
      if (after.inFlight > 0 || after.commits !== before.commits) return;
      const seen = this.seen;
      this.seen = { generation, ownCommits: after.commits };
      if (!seen || seen.generation === generation) return;
      // Any commit ends what the last clean check saw.
      this.quiet = undefined;
      if (othersCommitted(seen.generation, generation, after.commits - seen.ownCommits)) this.schedule(DEBOUNCE_MS);
    } finally {
      this.polling = false;
    }
  }

  /** A check soon (events come in bursts: one check after the burst). */
  schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.pending);
    this.pending = setTimeout(() => {
      this.running = this.check().finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.schedule(DEBOUNCE_MS);
        }
      });
    }, delayMs);
  }

  /** Compares the live rules with what xennet installed and repairs what differs. */
  async check(): Promise<void> {
    if (!this.backend || this.d.shuttingDown()) return;
    this.lastCheck = new Date();
    let backend = this.backend;
    try {
      // Nothing committed to nf_tables and no index change since a check found nothing: the
      // rules are what they were then (read before the check: a commit during it shows next
      // time). The backend of that check is the one installed while the index is the same:
      // loading a 1000-guest index to find out again cost the idle daemon 40 ms every 30 s.
      const stamp = indexStamp(this.d.env);
      if (this.installed?.stamp === stamp) {
        const key = await this.quietKey(this.installed.backend);
        if (key !== undefined && key === this.quiet) {
          this.unchanged++;
          return;
        }
      }
      // The engine installed now (an apply may have moved the firewall to the other backend).
      backend = await installedBackend(this.d.env, this.d.log);
      this.lookups++;
      this.installed = { stamp, backend };
      const key = await this.quietKey(backend);
      if (key !== undefined && key === this.quiet) {
        this.unchanged++;
        return;
      }
      this.reads++;
      if (isEmptyPlan(await driftPlans(backend, this.d.env, this.d.log))) {
        this.quiet = key;
        return;
      }
      this.quiet = undefined;
    } catch (e) {
      this.d.log.warning(`drift check failed: ${reasonOf(e)}`);
    }
    // A stop that came while the rules were read: no repair after the daemon said it stopped.
    if (this.stopped || this.d.shuttingDown()) return;
    let held;
    try {
      held = await this.d.lock.acquire('iptables', { deadline: Deadline.in(20_000), env: this.d.env });
    } catch (e) {
      this.d.log.warning(`drift check postponed: ${reasonOf(e)}`);
      this.schedule(LEGACY_POLL_MS);
      return;
    }
    try {
      if (this.stopped || this.d.shuttingDown()) return;
      const plans = await driftPlans(backend, this.d.env, this.d.log);
      if (isEmptyPlan(plans)) return;
      const what = describePlans(plans);
      await commitStaged(backend, this.d.env, this.d.log, { full: true, only: new Set() });
      this.d.noteRepair();
      this.lastRepair = `${this.lastCheck.toISOString()} ${summary(what)}`;
      this.d.log.warning(`repaired the firewall after a change by another program: ${summary(what)}`);
    } catch (e) {
      this.d.noteError(`drift repair: ${reasonOf(e)}`);
      this.d.log.err(`drift check failed: ${reasonOf(e)}`);
    } finally {
      held.release();
    }
  }

  /** No more checks; resolves when a check that is running has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.pending);
    await this.running?.catch(() => undefined);
  }
}
