/**
 * `xennet status` through the daemon, answered from what the daemon last read as long as nothing
 * it reads can have changed since. A fresh read of a 1000-guest host costs a second of CPU; the
 * check that it is still right costs a few dumps and system calls:
 *
 *   - nf_tables' ruleset generation (any commit to any table makes a new one: xennet's, nft's,
 *     iptables-nft's, ebtables');
 *   - the links, as status reads them (one rtnetlink dump: name, kind, master, MAC, MTU, flags,
 *     alias, bridge options), dom0's addresses and its default gateways, compared in full. Not
 *     the kernel's announcements: it announces a change to a link that is down (an alias, a
 *     bridge option) to nobody, and a socket that overflows loses them;
 *   - a watch on /local/domain in xenstore (the backends, hotplug-status, the domains' names and
 *     targets; a guest's writes to its own nodes are passed over), made certain the same way by a
 *     read on the same connection;
 *   - the stamps of the rule file, the firewall index, the learned bindings' record and the
 *     takeover journals (an interrupted takeover is a problem), the br_netfilter settings and every interface's IP-stack settings (sysctls announce nothing:
 *     they are read, from the link dump, which carries each link's settings).
 *
 * The links, addresses, routes and settings are read once per request (a NetSnapshot): a read of
 * the status gets the very snapshot its key was made of, so a setting that flips and flips back
 * while a status is being read cannot leave an answer remembered under a key it was not read from.
 *
 * What none of these see is never answered from memory: the xtables backend (ipset and
 * iptables-legacy commit no nf_tables generation), a host where iptables-legacy has tables (status
 * reads its FORWARD chain and mark writers), a read that could not read everything, and an answer
 * past the moment a learned binding it knows of (recorded or in the kernel) runs out. The rule
 * counters (drops) move without any of these: a remembered answer is at most MAX_AGE_MS old, and
 * says how old (`asOf`); `xennet status --fresh` reads everything now.
 */
import { createHash } from 'node:crypto';
import { NetlinkClient } from '../bridge/nl/client.js';
import { rulesetGeneration } from '../firewall/nftables/backend.js';
import { legacyTables } from '../firewall/xtables/backend.js';
import { driverFor } from '../firewall/drivers.js';
import { learnedPath, readBindings } from '../firewall/learning/state.js';
import type { PlanResult } from '../firewall/cli-plan.js';
import { readNetSnapshot, type NetSnapshot } from '../firewall/session.js';
import { indexStamp, loadIndex } from '../firewall/store.js';
import type { RulesSource } from '../config/paths.js';
import type { HostStatus } from '../status/host-status.js';
import { reasonOf } from '../sys/errors.js';
import { silentLogger, type Logger } from '../sys/log.js';
import { fileIdentity } from '../sys/file-identity.js';
import { journalsStamp } from '../bridge/journal.js';
import type { XenstoreClient } from '../xenstore/client.js';

/** How old remembered counters may be before status reads everything again. */
export const MAX_AGE_MS = 300_000;
const TOKEN = 'xennet-status';
const DOMAINS = '/local/domain';
/**
 * What status reads under /local/domain: the vif backends, each domain's name and target, a
 * domain that comes or goes. A guest may write its own data/, device/ and control/ nodes as
 * often as it likes: that must not make every operator's status a full read.
 */
const READ_IN_XENSTORE = /^\/local\/domain(?:\/\d+(?:\/(?:name|target))?|\/0\/backend(?:\/vif(?:\/.*)?)?)?$/;

export interface StatusAnswer {
  status: HostStatus;
  /** When what the answer shows was read (ISO time). */
  asOf: string;
  /** Whether it was remembered (true) or read for this request. */
  remembered: boolean;
}

export interface StatusCacheContext {
  env: NodeJS.ProcessEnv;
  log: Logger;
  xenstore(): Promise<XenstoreClient>;
  /**
   * A full read: the status, what could not be read this time, and the first moment something
   * it shows changes by itself (a learned binding runs out), in ms since the epoch (see hostStatus).
   */
  read(source: RulesSource, snapshot: NetSnapshot | undefined): Promise<{ status: HostStatus; unread: string[]; changesAt: number }>;
}

interface Remembered {
  key: string;
  status: HostStatus;
  at: number;
  /** It stands until then (ms since the epoch). */
  until: number;
}

/** A plan with nothing to change, and the key of what it was made from. */
interface RememberedPlan {
  key: string;
  result: PlanResult;
  at: number;
  until: number;
}

/**
 * The status remembered (above), and the daemon's answers to `plan` and `apply` when nothing is
 * to change, from the same key: a plan is made of the network snapshot its key was read from,
 * and is a function of what the key covers (the rule file, the index, xenstore, the links and
 * settings, the ruleset's generation, the learned bindings' record, the takeover journals). A plan that found nothing to
 * change is remembered (once its key read after it is the one read before: nothing moved while
 * it read; never on a host with a dirty index or a guest that learns its addresses); a plan or an
 * apply whose key is still that one is answered from it (an apply then has nothing to do), never
 * older than MAX_AGE_MS.
 */
export class StatusCache {
  private remembered: Remembered | undefined;
  private nl: NetlinkClient | undefined;
  private watchedOn: XenstoreClient | undefined;
  /** Bumped by every xenstore event under what status reads (READ_IN_XENSTORE). */
  private xenstoreEvents = 0;
  private reading: { key: string | undefined; answer: Promise<StatusAnswer> } | undefined;
  private counts = { remembered: 0, read: 0 };
  private plans = { remembered: 0, computed: 0 };
  private rememberedPlan: RememberedPlan | undefined;
  private planning: { key: string; result: Promise<PlanResult> } | undefined;
  private watching: { xs: XenstoreClient; done: Promise<void> } | undefined;
  private stopped = false;

  constructor(private readonly ctx: StatusCacheContext) {}

  state(): { remembered: number; read: number; plans: { remembered: number; computed: number } } {
    return { ...this.counts, plans: { ...this.plans } };
  }

  /**
   * The plan for `source`: the one remembered (or being made and then remembered) for the key of
   * now, else `compute()`'s, remembered when it finds nothing to change.
   */
  async plan(source: RulesSource, compute: PlanMaker): Promise<{ result: PlanResult; asOf?: string }> {
    const { key, snapshot } = await this.key(source);
    const known = await this.knownPlan(key);
    if (known) return known;
    return { result: await this.computePlan(source, key, snapshot, compute) };
  }

  /**
   * The plan with nothing to change remembered (or being made) for `source` as it is now, for an
   * apply to answer from (its caller holds the hotplug lock: no hook commits meanwhile); undefined
   * when there is none.
   */
  async nothingToChange(source: RulesSource): Promise<{ result: PlanResult; asOf?: string } | undefined> {
    return this.knownPlan((await this.key(source)).key);
  }

  /** Makes the plan for `source` now, in the background (after an apply: the next plan or apply is answered from it). */
  refreshPlan(source: RulesSource, compute: PlanMaker): void {
    void this.key(source)
      .then(({ key, snapshot }) => this.computePlan(source, key, snapshot, compute))
      .catch((e: unknown) => this.ctx.log.debug(`plan: not remembered (${reasonOf(e)})`));
  }

  private async knownPlan(key: string | undefined): Promise<{ result: PlanResult; asOf?: string } | undefined> {
    if (key === undefined || this.stopped) return undefined;
    const remembered = (): { result: PlanResult; asOf: string } | undefined => {
      const r = this.rememberedPlan;
      if (!r || r.key !== key || Date.now() >= r.until) return undefined;
      this.plans.remembered++;
      return { result: r.result, asOf: new Date(r.at).toISOString() };
    };
    const now = remembered();
    if (now || this.planning?.key !== key) return now;
    // One being made for this key: what it remembers (if it passes what a remembered plan must).
    await this.planning.result.catch(() => undefined);
    return remembered();
  }

  private async computePlan(source: RulesSource, key: string | undefined, snapshot: NetSnapshot | undefined, compute: PlanMaker): Promise<PlanResult> {
    const at = Date.now();
    const result = compute(snapshot);
    if (key !== undefined) this.planning = { key, result };
    try {
      const r = await result;
      this.plans.computed++;
      if (key !== undefined && !this.stopped && rememberablePlan(r) && !learningOrDirty(this.ctx.env) && (await this.key(source)).key === key) {
        this.rememberedPlan = { key, result: r, at, until: at + MAX_AGE_MS };
      }
      return r;
    } finally {
      if (this.planning?.result === result) this.planning = undefined;
    }
  }

  stop(): void {
    this.stopped = true;
    this.nl?.close();
    this.nl = undefined;
    this.remembered = undefined;
    this.rememberedPlan = undefined;
  }

  /** How long the last full read took, ms (what a periodic reader paces itself by). */
  lastReadMs = 0;

  /**
   * The status for `source`: remembered when nothing it was read from can have changed (and it is
   * at most `maxAgeMs` old: its counters move without notice), else read now.
   */
  async get(source: RulesSource, fresh: boolean, maxAgeMs = MAX_AGE_MS): Promise<StatusAnswer> {
    const { key, snapshot } = await this.key(source);
    const r = this.remembered;
    if (!fresh && key !== undefined && r && r.key === key && Date.now() < Math.min(r.until, r.at + maxAgeMs)) {
      this.counts.remembered++;
      return { status: agedStatus(r.status, Date.now() - r.at), asOf: new Date(r.at).toISOString(), remembered: true };
    }
    // One read at a time serves every request that came in meanwhile with the same key.
    if (!fresh && this.reading && key !== undefined && this.reading.key === key) return this.reading.answer;
    const answer = this.readNow(source, key, snapshot);
    this.reading = { key, answer };
    try {
      return await answer;
    } finally {
      if (this.reading?.answer === answer) this.reading = undefined;
    }
  }

  private async readNow(source: RulesSource, key: string | undefined, snapshot: NetSnapshot | undefined): Promise<StatusAnswer> {
    const at = Date.now();
    // The read uses the network state the key was made of (not a second read of it).
    const { status, unread, changesAt } = await this.ctx.read(source, snapshot);
    this.lastReadMs = Date.now() - at;
    this.counts.read++;
    if (key !== undefined && !this.stopped && rememberable(status, unread)) this.remembered = { key, status, at, until: Math.min(at + MAX_AGE_MS, changesAt) };
    else this.remembered = undefined;
    return { status, asOf: new Date(at).toISOString(), remembered: false };
  }

  /** A digest of the network state status reads (see NetSnapshot). */
  private static digest(n: NetSnapshot): string {
    return createHash('sha256')
      .update(JSON.stringify(n.links))
      .update(JSON.stringify(n.addresses.map((a) => `${a.link} ${a.local}`).sort()))
      .update(JSON.stringify(n.routes.filter((r) => r.dst === 'default').map((r) => `${r.table} ${r.gateway ?? '-'}`).sort()))
      .update(JSON.stringify(n.bridgeSysctls))
      .update(JSON.stringify([...n.portSysctls]))
      .digest('hex');
  }

  private async watch(xs: XenstoreClient): Promise<void> {
    xs.on('watch', (path: string, token: string) => {
      if (token === TOKEN && READ_IN_XENSTORE.test(path)) this.xenstoreEvents++;
    });
    await xs.watch(DOMAINS, TOKEN);
  }

  /**
   * What the status read now would be read from, or undefined when that cannot be known without
   * reading it (no xenstore, or iptables-legacy in use: its tables commit no generation).
   */
  private async key(source: RulesSource): Promise<{ key: string | undefined; snapshot: NetSnapshot | undefined }> {
    if (this.stopped || legacyTables('ipv4').length + legacyTables('ipv6').length > 0) return { key: undefined, snapshot: undefined };
    try {
      const xs = await this.ctx.xenstore();
      if (xs !== this.watchedOn) {
        // A new connection (the first, or xenstored restarted): what changed meanwhile is unseen.
        // The watch is set once per connection, however many requests come meanwhile.
        this.remembered = undefined;
        this.rememberedPlan = undefined;
        if (this.watching?.xs !== xs) {
          const watching = { xs, done: this.watch(xs) };
          this.watching = watching;
          watching.done.catch(() => {
            if (this.watching === watching) this.watching = undefined;
          });
        }
        await this.watching.done;
        this.watchedOn = xs;
      }
      // Every xenstore event sent before now has been counted once this read answers.
      this.nl ??= new NetlinkClient();
      const [generation, snapshot] = await Promise.all([rulesetGeneration(), readNetSnapshot(this.nl), xs.read('/local/domain/0/name')]);
      if (!xs.usable || xs !== this.watchedOn) return { key: undefined, snapshot };
      return { key: [source.file, source.absentOk, fileIdentity(source.file), generation, StatusCache.digest(snapshot), this.xenstoreEvents, indexStamp(this.ctx.env), fileIdentity(learnedPath(this.ctx.env)), journalsStamp(this.ctx.env)].join('|'), snapshot };
    } catch (e) {
      this.ctx.log.debug(`status: reading anew (${reasonOf(e)})`);
      return { key: undefined, snapshot: undefined };
    }
  }
}

/**
 * Whether a status just read may stand for the host while its key stays the same: a backend whose
 * every change makes a new nf_tables generation (nftables; not ipset or iptables-legacy), and
 * everything was read (not a status that
 * says xenstore or the firewall could not be read).
 */
function rememberable(s: HostStatus, unread: readonly string[]): boolean {
  return s.backend !== null && driverFor(s.backend.kind).changesShowInGeneration && unread.length === 0;
}

/** Makes a plan (not an apply) of the network as read in the snapshot given (the key's). */
export type PlanMaker = (snapshot: NetSnapshot | undefined) => Promise<PlanResult>;

/**
 * Whether the index is dirty (an apply would mark it clean), or any guest learns its addresses:
 * a no-change apply also puts back learned bindings a set lost (flushed by hand), which a plan
 * does not compare; such hosts are planned and applied anew every time.
 */
function learningOrDirty(env: NodeJS.ProcessEnv): boolean {
  const { index } = loadIndex(env, silentLogger);
  return index.dirty || Object.values(index.vifs).some((e) => e.learning === true) || readBindings(env).length > 0;
}

/** Whether a plan may stand for the host while its key stays the same: nothing to change, on a backend whose every change makes a new generation. */
function rememberablePlan(p: PlanResult): boolean {
  return !p.pending && p.mode === 'host' && p.backend !== null && driverFor(p.backend.kind).changesShowInGeneration;
}

/**
 * The remembered status `ms` later: each learned binding's remaining time less `ms`. A remembered
 * answer ends when the first binding it knows of runs out (`until`), so none reaches 0 but by
 * rounding to whole seconds.
 */
export function agedStatus(s: HostStatus, ms: number): HostStatus {
  const seconds = Math.floor(ms / 1000);
  if (seconds === 0 || !s.vifs.some((v) => v.learned.length > 0)) return s;
  const vifs = s.vifs.map((v) => (v.learned.length === 0 ? v : { ...v, learned: v.learned.map((b) => (b.expiresInSeconds === null ? b : { ...b, expiresInSeconds: Math.max(0, b.expiresInSeconds - seconds) })) }));
  return { ...s, vifs };
}
