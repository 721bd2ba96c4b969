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
import { decide, type Binding, type LearnedFamily } from '../firewall/learning/bindings.js';
import { readLearnPacket } from '../firewall/learning/packets.js';
import { restoreBindings, updateBindings } from '../firewall/learning/state.js';
import { LEARN_GROUP, LEARN_PREFIX } from '../firewall/nft/learned.js';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { dirOf, loadIndex, type IndexEntry } from '../firewall/store.js';
import { reasonOf } from '../sys/errors.js';
import { silentLogger, type Logger } from '../sys/log.js';

const SYNC_MS = 2000;

/** Whether a guest's identity guard is on: it has claims (none while a migration is in flight, or with identity_guard: false). */
const guardOn = (e: IndexEntry): boolean => e.claims !== undefined && e.claims.mac.length + e.claims.ipv4.length + e.claims.ipv6.length > 0;

export interface LearningContext {
  env: NodeJS.ProcessEnv;
  log: Logger;
  netlink: () => Promise<NetlinkClient>;
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

  constructor(private readonly ctx: LearningContext) {}

  async start(): Promise<void> {
    try {
      // The guests that learn now, when the record of this boot says (after a reboot it cannot:
      // then every binding that has not ended is put back, for the next vif's commit to sort).
      const { index, recovered } = loadIndex(this.ctx.env, silentLogger);
      const learning = recovered ? undefined : new Set(Object.entries(index.vifs).filter(([, e]) => e.learning).map(([n]) => n));
      const kept = await restoreBindings(this.ctx.env, this.ctx.log, learning);
      if (kept.length > 0) this.ctx.log.info(`address learning: ${kept.length} recorded binding${kept.length === 1 ? '' : 's'} put back`);
    } catch (e) {
      this.ctx.log.warning(`address learning: the recorded bindings could not be put back: ${reasonOf(e)} (the next vif online of each guest tries again)`);
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
    let stamp: string;
    try {
      const st = statSync(join(dirOf(this.ctx.env), 'index.json'));
      stamp = `${st.mtimeMs}:${st.size}`;
    } catch {
      stamp = 'none';
    }
    if (stamp === this.stamp || this.stopped) return;
    this.stamp = stamp;
    this.queue = this.queue.then(() => this.reconcile()).catch((e: unknown) => this.ctx.log.err(`address learning: ${reasonOf(e)}`));
  }

  private async reconcile(): Promise<void> {
    // A record that cannot say what is installed says nothing about which guests learn.
    const { index, recovered } = loadIndex(this.ctx.env, silentLogger);
    if (recovered) return;
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
        const guarded = guardOn(e);
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
  }

  state(): LearningState {
    return { listening: this.listener !== undefined, learned: this.learned, refused: this.refused, lost: this.lost, last: this.last };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.listener?.close();
    this.listener = undefined;
    await this.queue;
  }

  private enqueue(p: LoggedPacket): void {
    if (p.prefix !== LEARN_PREFIX || this.stopped) return;
    this.queue = this.queue.then(() => this.handle(p)).catch((e: unknown) => this.ctx.log.err(`address learning: ${reasonOf(e)}`));
  }

  private async portName(index: number | undefined): Promise<string | undefined> {
    if (index === undefined) return undefined;
    let name = this.names.get(index);
    if (name !== undefined) return name;
    const links = await (await this.ctx.netlink()).listLinks();
    this.names = new Map(links.map((l) => [l.index, l.name]));
    name = this.names.get(index);
    return name;
  }

  private async handle(p: LoggedPacket): Promise<void> {
    // A reply on its way to the guest is logged at forward (it has an out port); the guest's own
    // packets at prerouting (no out port yet).
    const toGuest = p.outPort !== undefined;
    const event = readLearnPacket(p.ethertype, p.payload, toGuest);
    if (!event) return;
    const vif = await this.portName(toGuest ? p.outPort : p.inPort);
    if (vif === undefined) return;
    const index = loadIndex(this.ctx.env, silentLogger).index;
    const entry = index.vifs[vif];
    if (!entry?.learning) return; // not a learning guest (any more)
    // Another port's declared addresses always win over a learned one.
    const heldBy = (family: LearnedFamily, address: string): string | undefined => Object.entries(index.vifs).find(([name, e]) => name !== vif && (e.claims?.[family] ?? []).includes(address))?.[0];
    let message: string | undefined;
    let made: Binding[] = [];
    await updateBindings(this.ctx.env, this.ctx.log, (bindings) => {
      const d = decide(bindings, vif, event, Date.now(), heldBy, guardOn(entry));
      message = d.message;
      made = d.write;
      return d;
    });
    if (message) {
      this.last = `${new Date().toISOString()} ${message}`;
      if (message.includes('refused')) this.refused++;
      this.learned += made.length;
      this.ctx.log.info(`address learning: ${message}`);
    }
  }
}
