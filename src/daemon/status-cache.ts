/**
 * `xennet status` through the daemon, answered from what the daemon last read as long as nothing
 * it reads can have changed since. A fresh read of a 1000-guest host costs a second of CPU; the
 * check that it is still right costs a few system calls:
 *
 *   - nf_tables' ruleset generation (any commit to any table makes a new one: xennet's, nft's,
 *     iptables-nft's, ebtables');
 *   - the kernel's announcements of link, address and route changes (guest ports up, down, on a
 *     bridge or off, dom0's addresses and gateway), made certain by a request on the same socket
 *     whose answer comes behind every announcement already queued;
 *   - a watch on /local/domain in xenstore (the backends, hotplug-status, the domains' names and
 *     targets; a guest's writes to its own nodes are passed over), made certain the same way by a
 *     read on the same connection;
 *   - the stamps of the rule file, the firewall index and the learned bindings' record, the
 *     br_netfilter settings and the guest ports' IP-stack settings (sysctls announce nothing:
 *     they are read, three small files per interface, 17 ms for 1000 here).
 *
 * What none of these see is never answered from memory: the xtables backend (ipset and
 * iptables-legacy commit no nf_tables generation), a host where iptables-legacy has tables (status
 * reads its FORWARD chain and mark writers), a learned binding that has run out since, a bridge or
 * guest port that is down (see rememberable), and a read that could not read everything. The rule
 * counters (drops) move without any of these: a remembered answer is at most MAX_AGE_MS old, and
 * says how old (`asOf`); `xennet status --fresh` reads everything now.
 */
import { readdirSync } from 'node:fs';
import { watchLinkChanges, type LinkChangeWatch } from '../bridge/nl/link-events.js';
import { rulesetGeneration } from '../firewall/backend/nft.js';
import { legacyTables } from '../firewall/backend/xtables.js';
import { bridgeNetfilterState } from '../firewall/host.js';
import { learnedPath } from '../firewall/learning/state.js';
import { indexStamp } from '../firewall/store.js';
import type { RulesSource } from '../config/paths.js';
import type { HostStatus } from '../status/host-status.js';
import { reasonOf } from '../sys/errors.js';
import type { Logger } from '../sys/log.js';
import { fileIdentity } from '../sys/file-identity.js';
import { guestPortStack, readInterfaceSysctl } from '../sys/sysctl.js';
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
  /** A full read: the status, and what could not be read this time (see hostStatus). */
  read(source: RulesSource): Promise<{ status: HostStatus; unread: string[] }>;
}

interface Remembered {
  key: string;
  status: HostStatus;
  at: number;
}

/** The interfaces of this namespace, as /proc/sys/net/ipv4/conf lists them. */
function interfaces(): string[] {
  try {
    return readdirSync('/proc/sys/net/ipv4/conf').filter((n) => n !== 'all' && n !== 'default');
  } catch {
    return [];
  }
}

export class StatusCache {
  private remembered: Remembered | undefined;
  private links: LinkChangeWatch | undefined;
  private watchedOn: XenstoreClient | undefined;
  /** Bumped by every announcement of the kernel's and xenstore's; a lost one makes every key new. */
  private events = 0;
  private reading: { key: string | undefined; answer: Promise<StatusAnswer> } | undefined;
  private counts = { remembered: 0, read: 0 };
  private watching: { xs: XenstoreClient; done: Promise<void> } | undefined;
  private stopped = false;

  constructor(private readonly ctx: StatusCacheContext) {}

  state(): { remembered: number; read: number } {
    return { ...this.counts };
  }

  start(): void {
    try {
      this.links = watchLinkChanges(
        () => this.events++,
        () => {
          this.events++;
          this.remembered = undefined;
        },
      );
    } catch (e) {
      this.ctx.log.warning(`status is read anew for every request: no link announcements (${reasonOf(e)})`);
    }
  }

  stop(): void {
    this.stopped = true;
    this.links?.close();
    this.links = undefined;
    this.remembered = undefined;
  }

  /** The status for `source`: remembered when nothing it was read from can have changed, else read now. */
  async get(source: RulesSource, fresh: boolean): Promise<StatusAnswer> {
    const key = await this.key(source);
    const r = this.remembered;
    if (!fresh && key !== undefined && r && r.key === key && Date.now() - r.at <= MAX_AGE_MS) {
      const aged = agedStatus(r.status, Date.now() - r.at);
      if (aged) {
        this.counts.remembered++;
        return { status: aged, asOf: new Date(r.at).toISOString(), remembered: true };
      }
    }
    // One read at a time serves every request that came in meanwhile with the same key.
    if (!fresh && this.reading && key !== undefined && this.reading.key === key) return this.reading.answer;
    const answer = this.readNow(source, key);
    this.reading = { key, answer };
    try {
      return await answer;
    } finally {
      if (this.reading?.answer === answer) this.reading = undefined;
    }
  }

  private async readNow(source: RulesSource, key: string | undefined): Promise<StatusAnswer> {
    const at = Date.now();
    const { status, unread } = await this.ctx.read(source);
    this.counts.read++;
    if (key !== undefined && !this.stopped && rememberable(status, unread)) this.remembered = { key, status, at };
    else this.remembered = undefined;
    return { status, asOf: new Date(at).toISOString(), remembered: false };
  }

  private async watch(xs: XenstoreClient): Promise<void> {
    xs.on('watch', (path: string, token: string) => {
      if (token === TOKEN && READ_IN_XENSTORE.test(path)) this.events++;
    });
    await xs.watch(DOMAINS, TOKEN);
  }

  /**
   * What the status read now would be read from, or undefined when that cannot be known without
   * reading it (no announcements, no xenstore, iptables-legacy in use).
   */
  private async key(source: RulesSource): Promise<string | undefined> {
    if (!this.links || this.stopped || legacyTables('ipv4').length + legacyTables('ipv6').length > 0) return undefined;
    try {
      const xs = await this.ctx.xenstore();
      if (xs !== this.watchedOn) {
        // A new connection (the first, or xenstored restarted): what changed meanwhile is unseen.
        // The watch is set once per connection, however many requests come meanwhile.
        this.remembered = undefined;
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
      // Every announcement made before now has been counted once these answer.
      const [generation] = await Promise.all([rulesetGeneration(), this.links.settled(), xs.read('/local/domain/0/name')]);
      if (!xs.usable || xs !== this.watchedOn) return undefined;
      const sysctls = Object.values(bridgeNetfilterState()).join(',');
      // Every interface's (the guest ports among them: which ones, the read will tell).
      const ports = interfaces().map((name) => `${name}=${guestPortStack.map((s) => readInterfaceSysctl(s.family, name, s.key) ?? '-').join(',')}`).join(' ');
      return [source.file, source.absentOk, fileIdentity(source.file), generation, this.events, indexStamp(this.ctx.env), fileIdentity(learnedPath(this.ctx.env)), sysctls, ports].join('|');
    } catch (e) {
      this.ctx.log.debug(`status: reading anew (${reasonOf(e)})`);
      return undefined;
    }
  }
}

/**
 * Whether a status just read may stand for the host until something announces a change:
 *   - nftables only (ipset and iptables-legacy announce nothing);
 *   - everything was read (not a status that says xenstore or the firewall could not be read);
 *   - no bridge and no guest port is down: the kernel announces an attribute change (a bridge
 *     option, an alias, a master) of a link that is down to nobody.
 */
function rememberable(s: HostStatus, unread: readonly string[]): boolean {
  return s.backend?.kind === 'nftables' && unread.length === 0 && s.bridges.every((b) => b.up) && s.vifs.every((v) => v.up);
}

/**
 * The remembered status `ms` later: each learned binding's remaining time less `ms`; undefined
 * when one has run out meanwhile (the kernel drops it without announcing anything).
 */
export function agedStatus(s: HostStatus, ms: number): HostStatus | undefined {
  const seconds = Math.floor(ms / 1000);
  if (seconds === 0 || !s.vifs.some((v) => v.learned.length > 0)) return s;
  const vifs = [];
  for (const v of s.vifs) {
    if (v.learned.length === 0) {
      vifs.push(v);
      continue;
    }
    const learned = [];
    for (const b of v.learned) {
      if (b.expiresInSeconds !== null && b.expiresInSeconds - seconds <= 0) return undefined;
      learned.push(b.expiresInSeconds === null ? b : { ...b, expiresInSeconds: b.expiresInSeconds - seconds });
    }
    vifs.push({ ...v, learned });
  }
  return { ...s, vifs };
}
