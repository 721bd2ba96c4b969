/**
 * The daemon's address learning: it reads what the firewall hands it (nflog group LEARN_GROUP:
 * a learning guest's DHCP and DHCPv6 replies on their way to it, its DAD, ARP probes and client
 * messages), decides the bindings (firewall/learning/bindings.ts) and writes them to the kernel
 * and the state directory. At start it puts back the recorded bindings that have not ended.
 *
 * Packets are handled one at a time, in order. A packet whose port is not a learning guest's (a
 * rule left from an earlier policy) binds nothing the firewall reads: the sets are only read by
 * learning guests' chains.
 */
import type { NetlinkClient } from '../bridge/nl/client.js';
import { listenNflog, type LoggedPacket, type NflogListener } from '../bridge/nl/nflog.js';
import { decide, expire, isLease, ofAnotherDomain, type Binding, type LearnedFamily } from '../firewall/learning/bindings.js';
import { hasClaims } from '../firewall/claims.js';
import { readClaimedAddress, readLearnPacket, type LearnEvent } from '../firewall/learning/packets.js';
import { learnedPath, readBindings, restoreBindings, updateBindings } from '../firewall/learning/state.js';
import { statSync } from 'node:fs';
import { DEFEND_PREFIX, LEARN_GROUP, LEARN_PREFIX, TENTATIVE_MS } from '../firewall/learning/log.js';
import { indexStamp, loadIndex, type FirewallIndex, type IndexEntry } from '../firewall/store.js';
import { driverFor } from '../firewall/drivers.js';
import { reasonOf } from '../sys/errors.js';
import { overlaps, parseCidr } from '../net/index.js';
import { silentLogger, type Logger } from '../sys/log.js';

const SYNC_MS = 2000;
/** At most this many packets wait to be handled, and this many addresses are tested at once. */
const MAX_QUEUED = 256;
const MAX_QUEUED_PER_PORT = 16;
const MAX_TENTATIVE = 128;
const MAX_TENTATIVE_PER_PORT = 16;
/**
 * How long a defence of an address is remembered, whoever's test it answered: a guest that
 * floods tests of an address another holds uses up the rate at which its defences are handed
 * over, but not this memory, so a second guest's test of it meanwhile is refused too.
 */
const DEFENDED_MEMORY_MS = 10_000;
const MAX_DEFENDED = 4096;
/** Binding changes within this long are installed as one (xtables). */
const REINSTALL_COALESCE_MS = 250;
/** A failed reinstall is tried again after this long, doubling up to the most. */
const RETRY_MIN_MS = 2000;
const RETRY_MAX_MS = 30_000;
/** How long a guest received by live migration has its announcements bind its addresses. */
const RECEIVED_MS = 120_000;

/** Whether a guest's identity guard is on: it has claims (none while a migration is in flight, or with identity_guard: false). */
const guardOn = (e: IndexEntry): boolean => hasClaims(e.claims);

/** A file's modification time in ms, or 0 when it is not there. */
function mtimeOf(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

/** Each vif's bound addresses, as one comparable text. */
function addressesByVif(bindings: readonly Binding[]): Map<string, string> {
  const out = new Map<string, string[]>();
  for (const b of bindings) out.set(b.vif, [...(out.get(b.vif) ?? []), `${b.family} ${b.address}`]);
  return new Map([...out].map(([v, a]) => [v, [...new Set(a)].sort().join(',')]));
}

export interface LearningContext {
  env: NodeJS.ProcessEnv;
  log: Logger;
  netlink: () => Promise<NetlinkClient>;
  /**
   * Installs these vifs' rules again from their current bindings (the xtables backend makes a
   * learning guest's ARP and NA rules from them; nftables reads its sets and needs none of this).
   * Returns the vifs whose rules could not be installed (tried again later).
   */
  reinstall?: (vifs: ReadonlySet<string>) => Promise<ReadonlySet<string>>;
}

export interface LearningState {
  listening: boolean;
  /** Bindings made, refused, ended since the start. */
  learned: number;
  refused: number;
  /** Packets lost before they were read (the socket overran). */
  lost: number;
  last: string | null;
}

export class AddressLearning {
  private listener: NflogListener | undefined;
  private queue: Promise<void> = Promise.resolve();
  private names = new Map<number, string>();
  private learned = 0;
  private refused = 0;
  private lost = 0;
  private last: string | null = null;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private stamp = '';
  /**
   * Addresses guests are testing now ("family address"): per tester's port (ifindex), the ports
   * that defended it (one guest's test never stands in the way of another's). Kept as packets
   * are read, in the order the kernel logged them, never behind the queue: a defence is never
   * dropped or judged late.
   */
  private readonly tentative = new Map<string, Map<number, { defenders: Set<number> }>>();
  private tentativeCount = 0;
  /** Addresses defended lately ("family address"): by which ports, when last. */
  private readonly defended = new Map<string, Map<number, number>>();
  private readonly tentativeByPort = new Map<number, number>();
  /** On xtables: guests whose rules wait to be installed again from their bindings. */
  private readonly pendingReinstall = new Set<string>();
  private reinstallTimer: NodeJS.Timeout | undefined;
  private reinstalling: Promise<void> = Promise.resolve();
  private retryMs = 0;
  /** Guests received by live migration, until when their announcements bind. */
  private readonly receivedUntil = new Map<string, number>();
  private queued = 0;
  private readonly queuedByPort = new Map<number, number>();
  private reservedCache = new Map<string, string>();
  /** The record's modification time when last read, and the earliest end of a binding in it. */
  private expiry = { mtime: -1, next: Number.POSITIVE_INFINITY };
  private reservedAt = 0;

  constructor(private readonly ctx: LearningContext) {}

  async start(): Promise<void> {
    try {
      // The guests that learn now, when the record of this boot says (after a reboot it cannot:
      // then every binding that has not ended is put back, for the next vif's commit to sort).
      const { index, recovered } = loadIndex(this.ctx.env, silentLogger);
      const learning = recovered ? undefined : new Map(Object.entries(index.vifs).filter(([, e]) => e.learning).map(([n, e]) => [n, e.owner?.domid] as const));
      const kept = await restoreBindings(this.ctx.env, this.ctx.log, learning);
      if (kept.length > 0) this.ctx.log.info(`address learning: ${kept.length} recorded binding${kept.length === 1 ? '' : 's'} put back`);
      // xtables: the learning guests' rules are made from the record, which may have changed
      // after them (a daemon stopped between the two, a binding ended meanwhile): installed again
      // where they differ (a guest whose rules match costs its compile only).
      if (learning !== undefined) this.followBindings(new Set(learning.keys()));
    } catch (e) {
      this.ctx.log.warning(`address learning: the recorded bindings could not be put back: ${reasonOf(e)} (the next start of the daemon tries again, and so does xennet apply)`);
    }
    try {
      this.listener = await listenNflog(LEARN_GROUP, (p) => this.enqueue(p), () => {
        this.lost++;
        this.ctx.log.warning('address learning: packets were lost before the daemon read them (a binding may be missing until the guest renews)');
      });
    } catch (e) {
      this.ctx.log.err(`address learning is off: ${reasonOf(e)}`);
    }
    this.timer = setInterval(() => this.reconcileSoon(), SYNC_MS);
    this.timer.unref();
  }

  /**
   * Follows the firewall index (checked every 2 s when it changed): a binding whose vif is no
   * longer a learning guest's ends (its rules went another way than offline: `apply`, a policy
   * change); a binding's guard follows its guest's (off while a migration is in flight, so that
   * the copy on the other host is not cut off from this one's LAN before the offline).
   */
  private reconcileSoon(): void {
    this.expireSoon();
    const stamp = indexStamp(this.ctx.env);
    if (stamp === this.stamp || this.stopped) return;
    this.stamp = stamp;
    this.queue = this.queue.then(() => this.reconcile()).catch((e: unknown) => this.ctx.log.err(`address learning: ${reasonOf(e)}`));
  }

  /**
   * Ends the recorded bindings whose time is up (their set elements ended by themselves in the
   * kernel) and, on xtables, installs their guests' rules again without them.
   */
  private expireSoon(): void {
    if (this.stopped) return;
    const now = Date.now();
    // The record is read again only when it changed or its next end has come: an idle daemon
    // with a thousand bindings must not parse them every 2 s.
    const mtime = mtimeOf(learnedPath(this.ctx.env));
    if (mtime === this.expiry.mtime && now < this.expiry.next) return;
    const bindings = readBindings(this.ctx.env);
    this.expiry = { mtime, next: Math.min(Number.POSITIVE_INFINITY, ...bindings.map((b) => b.expires ?? Number.POSITIVE_INFINITY)) };
    if (this.expiry.next > now) return;
    this.queue = this.queue
      .then(async () => {
        const ended = new Set<string>();
        await updateBindings(this.ctx.env, this.ctx.log, (bindings) => {
          const { live, ended: gone } = expire(bindings, Date.now());
          for (const b of gone) ended.add(b.vif);
          return { bindings: live, write: [], remove: gone };
        });
        this.followBindings(ended);
      })
      .catch((e: unknown) => this.ctx.log.err(`address learning: ${reasonOf(e)}`));
  }

  /**
   * On xtables: the rules of these guests are installed again from their bindings, soon: changes
   * within REINSTALL_COALESCE_MS go as one, outside the packet queue (a packet is never judged
   * late because rules are being installed); a failure is tried again, later each time.
   */
  private followBindings(vifs: ReadonlySet<string>): void {
    if (vifs.size === 0 || !this.ctx.reinstall || this.stopped) return;
    for (const v of vifs) this.pendingReinstall.add(v);
    this.armReinstall(REINSTALL_COALESCE_MS);
  }

  private armReinstall(ms: number): void {
    if (this.reinstallTimer !== undefined || this.stopped) return;
    this.reinstallTimer = setTimeout(() => {
      this.reinstallTimer = undefined;
      this.reinstalling = this.reinstalling.then(() => this.reinstallPending()).catch((e: unknown) => this.ctx.log.err(`address learning: ${reasonOf(e)}`));
    }, ms);
    this.reinstallTimer.unref();
  }

  private async reinstallPending(): Promise<void> {
    if (this.stopped || this.pendingReinstall.size === 0 || !this.ctx.reinstall) return;
    const vifs = new Set(this.pendingReinstall);
    this.pendingReinstall.clear();
    const engine = loadIndex(this.ctx.env, silentLogger).index.engine;
    if (engine && !driverFor(engine).bindingsInRules) return;
    let failed: ReadonlySet<string>;
    try {
      failed = await this.ctx.reinstall(vifs);
    } catch (e) {
      this.ctx.log.warning(`address learning: ${reasonOf(e)}`);
      failed = vifs;
    }
    if (failed.size === 0) {
      this.retryMs = 0;
      return;
    }
    for (const v of failed) this.pendingReinstall.add(v);
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs === 0 ? RETRY_MIN_MS : this.retryMs * 2);
    this.ctx.log.warning(`address learning: the rules of ${[...failed].join(', ')} could not be installed again from their bindings; trying again in ${this.retryMs / 1000} s`);
    this.armReinstall(this.retryMs);
  }

  private async reconcile(): Promise<void> {
    // A record that cannot say what is installed says nothing about which guests learn.
    const { index, recovered } = loadIndex(this.ctx.env, silentLogger);
    if (recovered) return;
    // Nothing recorded, nothing to follow (and no lock to take: most hosts' common case).
    if (readBindings(this.ctx.env).length === 0) return;
    const notes: string[] = [];
    await updateBindings(this.ctx.env, this.ctx.log, (bindings) => {
      const keep: Binding[] = [];
      const write: Binding[] = [];
      const remove: Binding[] = [];
      for (const b of bindings) {
        const e = index.vifs[b.vif];
        if (!e?.learning) {
          remove.push(b);
          notes.push(`${b.vif}: ${b.address} unbound (no longer a learning guest)`);
          continue;
        }
        if (ofAnotherDomain(b, e.owner?.domid)) {
          remove.push(b);
          notes.push(`${b.vif}: ${b.address} unbound (domain ${b.domid} learned it; the vif is domain ${e.owner?.domid}'s now)`);
          continue;
        }
        const guarded = guardOn(e) && isLease(b);
        if ((b.guarded ?? false) === guarded) {
          keep.push(b);
          continue;
        }
        const next: Binding = { ...b, guarded };
        remove.push(b);
        write.push(next);
        keep.push(next);
      }
      return { bindings: keep, write, remove };
    });
    for (const n of notes) this.ctx.log.info(`address learning: ${n}`);
    // (The sets of guests that no longer learn go at apply, offline and uninstall, never from
    // here: an apply in flight makes new guests' sets before its index says they learn.)
  }

  state(): LearningState {
    return { listening: this.listener !== undefined, learned: this.learned, refused: this.refused, lost: this.lost, last: this.last };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.reinstallTimer) clearTimeout(this.reinstallTimer);
    this.listener?.close();
    this.listener = undefined;
    await this.queue;
    await this.reinstalling;
  }

  private enqueue(p: LoggedPacket): void {
    if ((p.prefix !== LEARN_PREFIX && p.prefix !== DEFEND_PREFIX) || this.stopped) return;
    // A defence is judged as it is read, after every test logged before it and before any
    // logged after it: not queued, so neither a full queue nor a slow one can lose it.
    if (p.prefix === DEFEND_PREFIX) return this.defence(p);
    // A test of an address (DAD, an ARP probe, an announcement) starts its tentative time now,
    // as it is read; it is decided once that time has passed undefended.
    const toGuest = p.outPort !== undefined;
    const event = readLearnPacket(p.ethertype, p.payload, toGuest);
    if (!event) return;
    if ((event.kind === 'dad' || event.kind === 'arp-probe' || event.kind === 'announce') && !event.bindNow) return this.tentativeTest(p, event);
    // One port's share of the queue is bounded too: a flooding guest delays only itself.
    const port = p.outPort ?? p.inPort ?? 0;
    const mine = this.queuedByPort.get(port) ?? 0;
    if (mine >= MAX_QUEUED_PER_PORT) {
      this.lost++;
      return;
    }
    this.queuedByPort.set(port, mine + 1);
    this.schedule(async () => {
      const left = (this.queuedByPort.get(port) ?? 1) - 1;
      if (left > 0) this.queuedByPort.set(port, left);
      else this.queuedByPort.delete(port);
      await this.handle(p, event);
    });
  }

  /**
   * The guest tests an address (DAD, an ARP probe) or announces one: it is bound once the test
   * has run its course undefended (RFC 6620). The kernel made the address tentative as the frame
   * went by, so a defence that follows at once is logged (prefix DEFEND_PREFIX) after this packet
   * and read before the time is up. (Held or bound addresses are refused, or kept, by decide.)
   */
  private tentativeTest(p: LoggedPacket, event: LearnEvent & { kind: 'dad' | 'arp-probe' | 'announce' }): void {
    const port = p.inPort;
    if (port === undefined) return;
    const family = event.kind === 'dad' ? 'ipv6' : event.kind === 'arp-probe' ? 'ipv4' : event.family;
    const key = `${family} ${event.address}`;
    let testers = this.tentative.get(key);
    if (testers?.has(port)) return;
    const mine = this.tentativeByPort.get(port) ?? 0;
    if (this.tentativeCount >= MAX_TENTATIVE || mine >= MAX_TENTATIVE_PER_PORT) {
      this.lost++;
      return;
    }
    if (!testers) this.tentative.set(key, (testers = new Map()));
    const t = { defenders: new Set<number>() };
    testers.set(port, t);
    this.tentativeCount++;
    this.tentativeByPort.set(port, mine + 1);
    setTimeout(() => {
      // Packets the kernel logged within the time but not read yet are read first (the poll
      // phase of the event loop runs before setImmediate's callbacks).
      setImmediate(() => {
        const all = this.tentative.get(key);
        all?.delete(port);
        if (all?.size === 0) this.tentative.delete(key);
        this.tentativeCount--;
        const left = (this.tentativeByPort.get(port) ?? 1) - 1;
        if (left > 0) this.tentativeByPort.set(port, left);
        else this.tentativeByPort.delete(port);
        if (this.stopped) return;
        const since = Date.now() - DEFENDED_MEMORY_MS;
        const lately = [...(this.defended.get(key) ?? [])].filter(([d, at]) => d !== port && at >= since).map(([d]) => d);
        const defenders = [...new Set([...t.defenders, ...lately])];
        this.schedule(() => this.settleTest(p, { ...event, bindNow: true }, family, defenders));
      });
    }, TENTATIVE_MS).unref();
  }

  /** A test whose time is up: refused when a port that may claim the address defended it, else decided. */
  private async settleTest(p: LoggedPacket, event: LearnEvent & { kind: 'dad' | 'arp-probe' | 'announce' }, family: LearnedFamily, defenders: readonly number[]): Promise<void> {
    // The tester's port by a fresh look at the links: its vif may have gone since the test, and
    // its name be another domain's now (vifname), whose test this is not.
    if ((await this.portName(p.inPort, () => false)) === undefined) return;
    const by = defenders.length === 0 ? undefined : await this.entitledDefender(defenders, family, event.address);
    if (by === undefined) return this.handle(p, event);
    const vif = (await this.portName(p.inPort)) ?? `port ${p.inPort}`;
    this.refused++;
    this.last = `${new Date().toISOString()} ${vif}: ${event.address} refused: ${by} defended it`;
    this.ctx.log.info(`address learning: ${vif}: ${event.address} refused: ${by} defended it against its ${event.kind === 'dad' ? 'DAD' : event.kind === 'arp-probe' ? 'ARP probe' : 'announcement'}`);
  }

  /**
   * The first of these ports whose defence counts: any port that is not a guest's of ours (the
   * uplink, dom0, a vif whose rules come from elsewhere), or a guest that may send for the
   * address (it declares it, or holds it, or has no address check at all). Another guest's
   * defence of an address it may not claim is dropped by its own chains before it reaches
   * anyone (it is logged as the frame enters the bridge, before them), and counts for nothing.
   */
  private async entitledDefender(ports: readonly number[], family: LearnedFamily, address: string): Promise<string | undefined> {
    const index = loadIndex(this.ctx.env, silentLogger).index;
    const host = parseCidr(address);
    let bindings: Binding[] | undefined;
    for (const port of ports) {
      const name = await this.portName(port);
      if (name === undefined) return `port ${port}`;
      const e = Object.hasOwn(index.vifs, name) ? index.vifs[name] : undefined;
      if (!e) return name;
      const declared = [...(e.declared?.ipv4 ?? []), ...(e.declared?.ipv6 ?? []), ...(e.claims?.ipv4 ?? []), ...(e.claims?.ipv6 ?? [])].map((c) => parseCidr(c));
      if (declared.some((c) => overlaps(c, host))) return name;
      if (!e.learning && (e.declared?.ipv4.length ?? 0) + (e.declared?.ipv6.length ?? 0) === 0) return name;
      bindings ??= expire(readBindings(this.ctx.env), Date.now()).live;
      if (bindings.some((b) => b.vif === name && b.family === family && b.address === address)) return name;
    }
    return undefined;
  }

  /**
   * Runs `task` after those queued before it. The queue is bounded: a guest flooding what the
   * firewall hands the daemon (each rule is rate-limited, but a guest has several) makes it drop
   * work, counted in `lost`, never grow without end.
   */
  private schedule(task: () => Promise<void>): void {
    if (this.queued >= MAX_QUEUED) {
      if (this.lost++ % 1000 === 0) this.ctx.log.warning(`address learning: ${MAX_QUEUED} packets wait already; this one is dropped (a guest floods DAD, ARP probes or DHCP)`);
      return;
    }
    this.queued++;
    this.queue = this.queue
      .then(task)
      .catch((e: unknown) => this.ctx.log.err(`address learning: ${reasonOf(e)}`))
      .finally(() => {
        this.queued--;
      });
  }

  /** A guest received by live migration runs here now: its announcements bind for a while. */
  received(vif: string): void {
    this.receivedUntil.set(vif, Date.now() + RECEIVED_MS);
    this.ctx.log.info(`address learning: ${vif} was received by live migration; its announcements (gratuitous ARP, unsolicited NA) bind its addresses for ${RECEIVED_MS / 1000} s`);
  }

  /**
   * A port's name by its ifindex, from a cache of the links read again on a miss, or when the
   * name cached is not a guest's the firewall knows (`known`): a vif is renamed (vifname) after
   * its index was first seen.
   */
  private async portName(index: number | undefined, known?: (name: string) => boolean): Promise<string | undefined> {
    if (index === undefined) return undefined;
    let name = this.names.get(index);
    if (name !== undefined && (known === undefined || known(name))) return name;
    const links = await (await this.ctx.netlink()).listLinks();
    this.names = new Map(links.map((l) => [l.index, l.name]));
    name = this.names.get(index);
    return name;
  }

  /**
   * dom0's own addresses (on links that are not guest ports) and its default gateways: never a
   * guest's to learn (read again at most every 10 s).
   */
  private async reserved(index: FirewallIndex): Promise<Map<string, string>> {
    if (this.reservedAt > Date.now() - 10_000) return this.reservedCache;
    const nl = await this.ctx.netlink();
    const links = await nl.listLinks();
    const own = links.filter((l) => !Object.hasOwn(index.vifs, l.name));
    const out = new Map<string, string>();
    for (const a of await nl.listAddresses(own)) out.set(a.local, 'dom0');
    for (const r of await nl.listRoutes(links)) if (r.dst === 'default' && r.gateway) out.set(r.gateway, "dom0's default gateway");
    this.reservedCache = out;
    this.reservedAt = Date.now();
    return out;
  }

  /**
   * Who holds an address, for `vif`: dom0, dom0's gateway, another vif whose addresses (declared
   * addresses and prefixes, its MAC's link-local; guard or not) take it in.
   */
  private async holders(index: FirewallIndex, vif: string): Promise<(family: LearnedFamily, address: string) => string | undefined> {
    const reserved = await this.reserved(index);
    // A guest's other ports (its -emu twin, a stub domain's) share its MAC: they are not others.
    const domid = index.vifs[vif]?.owner?.domid;
    const others = Object.entries(index.vifs)
      .filter(([name, e]) => name !== vif && (domid === undefined || e.owner?.domid !== domid))
      .map(([name, e]) => ({ name, cidrs: [...(e.declared?.ipv4 ?? []), ...(e.declared?.ipv6 ?? []), ...(e.claims?.ipv4 ?? []), ...(e.claims?.ipv6 ?? [])].map((c) => parseCidr(c)) }));
    return (_family, address) => {
      const at = reserved.get(address);
      if (at !== undefined) return at;
      const host = parseCidr(address);
      return others.find((o) => o.cidrs.some((c) => overlaps(c, host)))?.name;
    };
  }

  private async handle(p: LoggedPacket, event: LearnEvent): Promise<void> {
    // A reply on its way to the guest is logged at forward (it has an out port); the guest's own
    // packets at prerouting (no out port yet).
    const toGuest = p.outPort !== undefined;
    const index = loadIndex(this.ctx.env, silentLogger).index;
    const vif = await this.portName(toGuest ? p.outPort : p.inPort, (n) => Object.hasOwn(index.vifs, n));
    if (vif === undefined) return;
    if (!index.vifs[vif]?.learning) return; // not a learning guest (any more)
    if (event.kind === 'announce') {
      // Announcements bind only for a guest received by live migration (its lease was made on
      // the other host): within RECEIVED_MS of the rename that says it runs here, or before the
      // daemon has followed that rename. From anyone else they would claim any address in use.
      const until = this.receivedUntil.get(vif);
      const incoming = index.vifs[vif]!.names?.includes('--incoming"') === true;
      if (!incoming && (until === undefined || until < Date.now())) return;
    }
    const heldBy = await this.holders(index, vif);
    await this.decideFor(vif, event, index, heldBy);
  }

  /** A frame from any port that claims an address a guest is testing: a defence, unless the tester's own. */
  private defence(p: LoggedPacket): void {
    const claimed = readClaimedAddress(p.ethertype, p.payload);
    if (!claimed) return;
    if (p.inPort === undefined) return;
    const key = `${claimed.family} ${claimed.address}`;
    const testers = this.tentative.get(key);
    if (testers) for (const [port, t] of testers) if (port !== p.inPort && t.defenders.size < 64) t.defenders.add(p.inPort);
    // Remembered a while, whoever tested it (the newest last: the oldest go first when full).
    let by = this.defended.get(key);
    if (by) this.defended.delete(key);
    else if (this.defended.size >= MAX_DEFENDED) this.defended.delete(this.defended.keys().next().value!);
    by ??= new Map();
    if (by.size < 64 || by.has(p.inPort)) by.set(p.inPort, Date.now());
    this.defended.set(key, by);
  }

  private async decideFor(vif: string, event: LearnEvent, known?: FirewallIndex, knownHeldBy?: (family: LearnedFamily, address: string) => string | undefined): Promise<void> {
    const index = known ?? loadIndex(this.ctx.env, silentLogger).index;
    const entry = index.vifs[vif];
    if (!entry?.learning) return;
    const heldBy = knownHeldBy ?? (await this.holders(index, vif));
    let message: string | undefined;
    let made: Binding[] = [];
    const changed = new Set<string>();
    await updateBindings(this.ctx.env, this.ctx.log, (bindings) => {
      const now = Date.now();
      const d = decide(bindings, vif, event, now, heldBy, guardOn(entry), entry.owner?.domid);
      message = d.message;
      made = d.write;
      // Only a guest whose addresses changed has rules to change (a renewal re-times its set's
      // element and nothing else).
      // (Before: as recorded, ended ones included: the rules were made with them.)
      const before = addressesByVif(bindings);
      const after = addressesByVif(d.bindings);
      for (const b of [...d.write, ...d.remove]) if (before.get(b.vif) !== after.get(b.vif)) changed.add(b.vif);
      return d;
    });
    this.followBindings(changed);
    if (message) {
      this.last = `${new Date().toISOString()} ${message}`;
      if (message.includes('refused')) this.refused++;
      this.learned += made.length;
      this.ctx.log.info(`address learning: ${message}`);
    }
  }
}
