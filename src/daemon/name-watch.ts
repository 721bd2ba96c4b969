/**
 * The daemon's watch on the names of the domains that have vifs (and, for a stub domain, on its
 * guest's name): `/local/domain/<domid>/name` and `/target` through xenstore watches, one set per
 * domain in the firewall index. A change moves that domain's attached vifs to the policy of its
 * new name (hooks/vif-refresh.ts) within a second: `xl rename`, and the renames of a live
 * migration (`<name>--incoming` to `<name>` here once the guest runs here, `<name>` to
 * `<name>--migratedaway` on the host it left, which ends its identity guard there).
 *
 * The watch set follows the index (checked every 2 s when the index file changed) and is made
 * anew when xenstored restarts. A new watch fires once at once; that first event is not a change
 * and is passed over (the domain's names were read when its rules were made). Each time the set
 * is made anew (the daemon's start, xenstored's restart) every domain is looked at once, so a
 * rename while nobody watched is followed too.
 */
import type { HookServices } from '../hooks/vif-call.js';
import { followRenames } from '../hooks/vif-refresh.js';
import { identityPaths } from '../firewall/domain-identity.js';
import { indexStamp, loadIndex } from '../firewall/store.js';
import { Deadline } from '../sys/deadline.js';
import { reasonOf } from '../sys/errors.js';
import { silentLogger, type Logger } from '../sys/log.js';
import type { XenstoreClient } from '../xenstore/client.js';

const TOKEN = 'xennet-names:';
const SYNC_MS = 2000;
const DEBOUNCE_MS = 200;

export interface NameWatchContext {
  env: NodeJS.ProcessEnv;
  log: Logger;
  services: () => HookServices;
  shuttingDown(): boolean;
  /** Told of each vif moved to its domain's new policy, with the names it had before. */
  onMoved?: (vif: string, namesBefore: string | undefined) => void;
}

export interface NameWatchState {
  /** Domains whose names are watched. */
  domains: number;
  /** Vifs moved to a renamed domain's policy. */
  followed: number;
  /** The last one: when, which vifs. */
  last: string | null;
}

export class NameWatch {
  private xs: XenstoreClient | undefined;
  private readonly watched = new Map<number, string[]>();
  /** Watches registered whose first event (xenstored's at once, not a change) has not come yet. */
  private readonly firstEvents = new Set<string>();
  private stamp = '';
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private readonly pending = new Set<number>();
  private running: Promise<void> = Promise.resolve();
  private syncing: Promise<void> | undefined;
  private stopped = false;
  private followed = 0;
  private last: string | null = null;

  constructor(private readonly ctx: NameWatchContext) {}

  state(): NameWatchState {
    return { domains: this.watched.size, followed: this.followed, last: this.last };
  }

  start(): void {
    this.timer = setInterval(() => this.syncSoon(), SYNC_MS);
    this.timer.unref();
    this.syncSoon();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    this.pending.clear();
  }

  /** Resolves once the work in hand is done. */
  async idle(): Promise<void> {
    await this.syncing;
    await this.running;
  }

  /** Looks at the index soon (a hook changed it). */
  syncSoon(): void {
    if (this.stopped || this.syncing) return;
    this.syncing = this.sync()
      .catch((e: unknown) => this.ctx.log.debug(`name watch: ${reasonOf(e)}`))
      .finally(() => {
        this.syncing = undefined;
      });
  }

  private async sync(): Promise<void> {
    const xs = await this.ctx.services().xenstore();
    if (this.stopped) return;
    if (xs !== this.xs) {
      this.xs = xs;
      this.watched.clear();
      this.firstEvents.clear();
      this.stamp = '';
      this.lookAtAll = true;
      xs.on('watch', (path: string, token: string) => {
        if (xs !== this.xs || !token.startsWith(TOKEN) || this.firstEvents.delete(`${token} ${path}`)) return;
        this.noticed(Number(token.slice(TOKEN.length)));
      });
    }
    const stamp = indexStamp(this.ctx.env);
    if (stamp === this.stamp) return;
    const { index } = loadIndex(this.ctx.env, silentLogger);
    const domids = new Set<number>();
    for (const e of Object.values(index.vifs)) if (e.owner && e.owner.domid > 0) domids.add(e.owner.domid);
    for (const [d, paths] of this.watched) {
      if (domids.has(d)) continue;
      this.watched.delete(d);
      for (const p of paths) await xs.unwatch(p, `${TOKEN}${d}`).catch(() => undefined);
    }
    // A domain watched for the first time is looked at once: it may have been renamed between
    // its hook's read of its name and this watch (xl renames a guest received by migration as
    // soon as it runs here), and xenstored's first event of a watch is no change to act on.
    const fresh: number[] = [];
    for (const d of domids) {
      if (this.watched.has(d)) continue;
      await this.watchDomain(xs, d);
      fresh.push(d);
    }
    this.stamp = stamp;
    for (const d of this.lookAtAll ? domids : fresh) this.noticed(d);
    this.lookAtAll = false;
  }

  /** Every domain is looked at once after the watches are made anew. */
  private lookAtAll = true;

  /** Watches the paths a domain's identity is read from (a stub domain's include its guest's name). */
  private async watchDomain(xs: XenstoreClient, domid: number): Promise<void> {
    const paths = identityPaths({ domid, target: await xs.read(`/local/domain/${domid}/target`) });
    const had = this.watched.get(domid) ?? [];
    this.watched.set(domid, paths);
    for (const p of had) if (!paths.includes(p)) await xs.unwatch(p, `${TOKEN}${domid}`).catch(() => undefined);
    for (const p of paths) {
      if (had.includes(p)) continue;
      this.firstEvents.add(`${TOKEN}${domid} ${p}`);
      await xs.watch(p, `${TOKEN}${domid}`);
    }
  }

  private noticed(domid: number): void {
    if (this.stopped || !Number.isInteger(domid) || domid <= 0) return;
    this.pending.add(domid);
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      const domids = new Set(this.pending);
      this.pending.clear();
      this.running = this.running.then(() => this.refresh(domids)).catch((e: unknown) => this.ctx.log.warning(`following renames: ${reasonOf(e)}`));
    }, DEBOUNCE_MS);
  }

  private async refresh(domids: ReadonlySet<number>): Promise<void> {
    if (this.stopped || this.ctx.shuttingDown()) return;
    const services = this.ctx.services();
    const xs = await services.xenstore();
    // A stub domain's guest may have changed (its target written or moved): watch the right names.
    for (const d of domids) if (this.watched.has(d)) await this.watchDomain(xs, d);
    const deps = { xs, nl: await services.netlink(), firewall: await services.firewall(this.ctx.log), log: this.ctx.log, ...(services.acquireLock ? { acquireLock: services.acquireLock } : {}), ...(this.ctx.onMoved ? { onMoved: this.ctx.onMoved } : {}) };
    const moved = await followRenames(deps, this.ctx.env, Deadline.in(20_000), domids);
    if (moved.length === 0) return;
    this.followed += moved.length;
    this.last = `${new Date().toISOString()} ${moved.join(', ')}`;
    this.ctx.log.info(`the domains of ${moved.join(', ')} were renamed: their new policy is installed`);
  }
}
