/**
 * The daemon's watch on the vif backends, as `xl devd` watches them (one recursive watch on
 * /local/domain/0/backend/vif, reacting to `online`/`state`):
 *
 *   - a backend that is coming up (online = 1, state 1..3, not yet connected) gets its firewall
 *     installed before the toolstack's hook arrives. The hook then finds exactly those rules
 *     recorded (same fingerprint) and only attaches the vif, under the hotplug lock; anything
 *     different (the rule file changed, argv names another bridge) and the hook installs its own.
 *     Nothing is attached here: the vif joins the bridge only in the hook, after its rules;
 *   - a backend that is gone takes the rules of its interface with it, when that interface is not
 *     attached to a bridge (a prepared guest that never came up, an offline that never ran); one
 *     still attached is looked at again every 5 s, until its offline has run or the interface is
 *     gone or detached without one.
 *
 * Preparing is an optimisation: whatever fails here is logged and left to the hook, which reports
 * it to the toolstack. Rules are never prepared for a name held by a link that is not provably
 * this guest's (a `vifname` naming someone else's interface).
 */
import { performance } from 'node:perf_hooks';
import type { LinkState } from '../bridge/model.js';
import type { HookServices } from '../hooks/vif-call.js';
import type { VifHookInput } from '../hooks/vif-input.js';
import { notOwnedReason, resolveBridge, resolveVifConfig, type VifConfig } from '../hooks/vif-plan.js';
import { lockOrCommitted, readNodes, readView, type VifDeps } from '../hooks/vif-run.js';
import { xenVifName, type IfName } from '../net/index.js';
import { Deadline } from '../sys/deadline.js';
import { reasonOf } from '../sys/errors.js';
import type { Logger } from '../sys/log.js';
import type { XenstoreClient } from '../xenstore/client.js';
import { loadIndex } from '../firewall/store.js';

export const BACKENDS = '/local/domain/0/backend/vif';
const TOKEN = 'xennet-backends';
const RETRY_MS = 5000;
const eventPath = /^\/local\/domain\/0\/backend\/vif(?:\/([1-9]\d{0,4})(?:\/(0|[1-9]\d{0,4}))?)?(?:\/|$)/;

export interface BackendWatchContext {
  env: NodeJS.ProcessEnv;
  log: Logger;
  services: () => HookServices;
  shuttingDown(): boolean;
  /** Runs `fn` after the daemon's other calls for the backend `key` (its hooks'). */
  serial?: <T>(key: string, fn: () => Promise<T>) => Promise<T>;
}

export interface BackendWatchState {
  watching: boolean;
  prepared: number;
  cleaned: number;
  /** Backends looked at again (a cleanup that failed, or an interface still attached to a gone backend). */
  lookedAgain: number;
  /** The last prepare: the interface, and ms from the backend's appearance to its rules committed. */
  lastPrepare: { name: string; ms: number } | null;
  lastError: string | null;
}

type Key = `${number}/${number}`;

export class BackendWatch {
  private xs: XenstoreClient | undefined;
  private readonly pending = new Map<number, Set<number> | 'all'>();
  private scheduled = false;
  private running: Promise<void> = Promise.resolve();
  /** What was prepared per backend (its nodes), so repeated events do not redo the work. */
  private readonly done = new Map<Key, string>();
  private timer: NodeJS.Timeout | undefined;
  private counters = { prepared: 0, cleaned: 0, lookedAgain: 0 };
  private lastError: string | null = null;
  private lastPrepare: { name: string; ms: number } | null = null;
  /** When each backend's event was noticed (for lastPrepare). */
  private readonly noticedAt = new Map<Key, number>();
  /** The backends with a look again pending (retryLater). */
  private readonly retrying = new Set<Key>();
  private stopped = false;

  constructor(private readonly ctx: BackendWatchContext) {}

  state(): BackendWatchState {
    return { watching: this.xs?.usable === true, ...this.counters, lastPrepare: this.lastPrepare, lastError: this.lastError };
  }

  /** Watches; re-watches (and rescans) when xenstored restarts. */
  async start(): Promise<void> {
    await this.connect().catch((e: unknown) => this.ctx.log.warning(`backend watch: ${reasonOf(e)}; retrying`));
    this.timer = setInterval(() => {
      if (!this.stopped && !this.xs?.usable) void this.connect().catch(() => undefined);
    }, 2000);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    this.pending.clear();
    clearInterval(this.timer);
  }

  /** Resolves once the work in hand is done (shutdown: nothing new starts after stop()). */
  async idle(): Promise<void> {
    await this.running;
  }

  private async connect(): Promise<void> {
    const xs = await this.ctx.services().xenstore();
    if (xs === this.xs) return;
    this.xs = xs;
    xs.on('watch', (path: string, token: string) => {
      if (token === TOKEN && xs === this.xs) this.noticed(path);
    });
    // A new watch fires once for the watched path itself: a full scan follows from that event.
    await xs.watch(BACKENDS, TOKEN);
    this.done.clear();
  }

  private noticed(path: string): void {
    if (this.stopped) return;
    const m = eventPath.exec(path);
    if (!m) return;
    if (m[1] === undefined) {
      this.pending.clear();
      this.pending.set(0, 'all');
    } else if (this.pending.get(0) !== 'all') {
      const d = Number(m[1]);
      if (m[2] !== undefined && !this.noticedAt.has(`${d}/${Number(m[2])}`)) this.noticedAt.set(`${d}/${Number(m[2])}`, performance.now());
      const now = this.pending.get(d);
      if (m[2] === undefined) this.pending.set(d, 'all');
      else if (now !== 'all') this.pending.set(d, (now ?? new Set()).add(Number(m[2])));
    }
    if (this.scheduled) return;
    this.scheduled = true;
    // Events of one transaction arrive together: handle them after this turn, in one pass.
    setImmediate(() => {
      this.scheduled = false;
      this.running = this.running.then(() => this.drain()).catch((e: unknown) => this.fail(`backend watch: ${reasonOf(e)}`));
    });
  }

  private fail(what: string): void {
    this.lastError = `${new Date().toISOString()} ${what}`;
    this.ctx.log.debug(what);
  }

  private async drain(): Promise<void> {
    if (this.stopped || this.ctx.shuttingDown()) {
      this.pending.clear();
      return;
    }
    if (this.pending.size === 0) return;
    const work = new Map(this.pending);
    this.pending.clear();
    const xs = this.xs;
    if (!xs?.usable) return;
    const keys: [number, number][] = [];
    const list = async (path: string): Promise<string[]> => (await xs.directory(path)).filter((x) => /^(0|[1-9]\d{0,4})$/.test(x));
    for (const [d, devs] of work) {
      if (devs === 'all') {
        const domids = d === 0 ? (await list(BACKENDS)).map(Number) : [d];
        for (const dom of domids) for (const dev of await list(`${BACKENDS}/${dom}`)) keys.push([dom, Number(dev)]);
        // Backends that are gone: those the index records an owner for.
        for (const o of this.owners()) if ((d === 0 || o[0] === d) && !keys.some((k) => k[0] === o[0] && k[1] === o[1])) keys.push(o);
      } else {
        for (const dev of devs) keys.push([d, dev]);
      }
    }
    await Promise.all(
      keys.map(([d, n]) =>
        this.handle(xs, d, n).catch((e: unknown) => {
          this.fail(`backend ${d}/${n}: ${reasonOf(e)}`);
          this.retryLater(d, n);
        }),
      ),
    );
  }

  /**
   * A backend whose handling failed (a full disk, the lock not had in time) is looked at again
   * in 5 s, until it succeeds or the backend's hook does it: nothing else would come back to the
   * rules of a guest that left while its cleanup could not be done.
   */
  private retryLater(domid: number, devid: number): void {
    const key: Key = `${domid}/${devid}`;
    // One look pending per backend, however many passes asked for one (each pass would add a
    // timer of its own, for good, while an interface stays attached).
    if (this.stopped || this.retrying.has(key)) return;
    this.retrying.add(key);
    setTimeout(() => {
      this.retrying.delete(key);
      this.counters.lookedAgain++;
      this.noticed(`${BACKENDS}/${domid}/${devid}`);
    }, RETRY_MS).unref();
  }

  /** (domid, devid) of every interface the firewall index records. */
  private owners(): [number, number][] {
    const { index } = loadIndex(this.ctx.env, this.ctx.log);
    const out: [number, number][] = [];
    for (const e of Object.values(index.vifs)) if (e.owner && e.owner.domid > 0) out.push([e.owner.domid, e.owner.devid]);
    return out;
  }

  private handle(xs: XenstoreClient, domid: number, devid: number): Promise<void> {
    const be = `${BACKENDS}/${domid}/${devid}`;
    return this.ctx.serial ? this.ctx.serial(be, () => this.handleNow(xs, domid, devid)) : this.handleNow(xs, domid, devid);
  }

  private async handleNow(xs: XenstoreClient, domid: number, devid: number): Promise<void> {
    const key: Key = `${domid}/${devid}`;
    const be = `${BACKENDS}/${domid}/${devid}`;
    const [self, online, state, hotplug] = await Promise.all([xs.read(be), xs.read(`${be}/online`), xs.read(`${be}/state`), xs.read(`${be}/hotplug-status`)]);
    if (self === undefined) {
      this.done.delete(key);
      this.noticedAt.delete(key);
      await this.cleanUp(xs, domid, devid);
      return;
    }
    if (online !== '1' || !['1', '2', '3'].includes(state ?? '') || hotplug === 'connected') {
      this.noticedAt.delete(key);
      return;
    }
    try {
      await this.prepare(xs, domid, devid, key);
    } finally {
      this.noticedAt.delete(key);
    }
  }

  private async prepare(xs: XenstoreClient, domid: number, devid: number, key: Key): Promise<void> {
    const services = this.ctx.services();
    const device = xenVifName(domid, devid, false);
    const input: VifHookInput = { command: 'online', typeIf: 'vif', device, envName: device, backendPath: `${BACKENDS}/${domid}/${devid}`, domid, devid, vars: {} };
    const nodes = await readNodes(xs, input);
    const seen = JSON.stringify(nodes);
    if (this.done.get(key) === seen) return;
    let cfg: VifConfig;
    try {
      cfg = resolveVifConfig(input, nodes);
    } catch {
      return; // the hook reports what is wrong with it
    }
    const nl = await services.netlink();
    const view = await readView(nl, cfg);
    let bridge: IfName;
    try {
      bridge = resolveBridge(cfg, view);
    } catch {
      return;
    }
    const holder = view.links.get(cfg.name);
    if (holder && notOwnedReason(cfg, holder) !== undefined) return; // never firewall someone else's link
    if (holder?.master) return; // already attached: a running guest, its hook repairs its own rules
    const log: Logger = { ...this.ctx.log, info: this.ctx.log.debug, warning: this.ctx.log.debug };
    const firewall = await (await services.firewall(log)).prepare(cfg, bridge);
    this.done.set(key, seen);
    if (firewall.installed()) return;
    firewall.stage();
    const deps = { acquireLock: services.acquireLock } as Pick<VifDeps, 'acquireLock'> as VifDeps;
    const held = await lockOrCommitted(deps, Deadline.in(20_000), firewall);
    try {
      if (held && !(await firewall.commit({ superseded: 'yield' }))) {
        // The hook installed its own rules (a newer policy) while this waited for the lock.
        this.ctx.log.debug(`the prepared firewall of ${cfg.name} was superseded by its hook's; left as the hook installed it`);
        return;
      }
    } catch (e) {
      firewall.unstage();
      this.done.delete(key);
      throw e;
    } finally {
      held?.release();
    }
    this.counters.prepared++;
    const since = this.noticedAt.get(key);
    if (since !== undefined) this.lastPrepare = { name: cfg.name, ms: Math.round((performance.now() - since) * 10) / 10 };
    this.ctx.log.debug(`prepared the firewall of ${cfg.name} (domain ${domid}) before its hook`);
  }

  /** The backend is gone: the rules of its interfaces go unless they are attached to a bridge. */
  private async cleanUp(xs: XenstoreClient, domid: number, devid: number): Promise<void> {
    const { index } = loadIndex(this.ctx.env, this.ctx.log);
    const names = Object.entries(index.vifs)
      .filter(([, e]) => e.owner?.domid === domid && e.owner.devid === devid)
      .map(([n]) => n as IfName);
    if (names.length === 0) return;
    const services = this.ctx.services();
    const nl = await services.netlink();
    const links = await Promise.all(names.map((n) => nl.getLink(n)));
    const idle = names.filter((_, i) => !attached(links[i]));
    // One still attached waits for its offline, which detaches it and removes its rules. Should
    // none come (the interface deleted with no hook run: a toolstack that crashed), nothing else
    // would come back to them: looked at again until they are gone or detached.
    if (idle.length < names.length) this.retryLater(domid, devid);
    if (idle.length === 0) return;
    const firewall = await services.firewall(this.ctx.log);
    const held = await (services.acquireLock ?? (await import('../sys/hotplug-lock.js')).acquireHotplugLock)('iptables', { deadline: Deadline.in(20_000) });
    let removed: IfName[];
    try {
      // Looked at again under the lock: a backend written again meanwhile is a new guest of the
      // same domid (its hook, in-process while no daemon ran, may attach without the lock once
      // another's batch committed its rules), and an interface attached meanwhile keeps its rules.
      const back = await xs.read(`${BACKENDS}/${domid}/${devid}`);
      const now = back === undefined ? await Promise.all(idle.map((n) => nl.getLink(n))) : [];
      removed = back === undefined ? idle.filter((_, i) => !attached(now[i])) : [];
      if (removed.length > 0) await firewall.remove({ domid, devid, names: removed });
    } finally {
      held.release();
    }
    if (removed.length === 0) return;
    this.counters.cleaned++;
    this.ctx.log.info(`removed the firewall rules of ${removed.join(', ')}: the backend of domain ${domid} device ${devid} is gone`);
  }
}

const attached = (l: LinkState | undefined): boolean => l !== undefined && l.master !== null;
