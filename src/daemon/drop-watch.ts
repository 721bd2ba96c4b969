/**
 * The drops the guests' rules log (firewall/drop-log.ts): the daemon listens to their
 * nfnetlink_log group, writes each to its log with the guest's domain, the reason, the addresses
 * and the protocol (at most LOG_PER_SECOND lines a second, and then how many were held back), and
 * keeps the last RECENT of them for `xennet drops` (which asks for those after a sequence number,
 * again and again with `--follow`).
 */
import { listenNflog, type LoggedPacket, type NflogListener } from '../bridge/nl/nflog.js';
import { DROP_REASON_TEXT } from '../firewall/drop-reasons.js';
import { ownerOfMark, ownerOfVifName } from '../firewall/names.js';
import { DROP_GROUP, LineCap, domainWord, parseDropPrefix, summarizePacket, summaryText, type DropEvent } from '../firewall/drop-log.js';
import { reasonOf } from '../sys/errors.js';
import type { Logger } from '../sys/log.js';
import { aliasOf } from '../sys/sysfs.js';

export const LOG_PER_SECOND = 20;
/** How many drops the daemon keeps, and of one interface at most (one guest cannot push out the others'). */
export const RECENT = 2000;
export const RECENT_PER_VIF = 100;
/** How often the daemon tries again to listen when it could not (another process held the group). */
export const LISTEN_RETRY_MS = 10_000;
const NAME_TTL_MS = 30_000;

export interface DropWatchContext {
  log: Logger;
  /** A domain's name (xenstore), or undefined. */
  domainName(domid: number): Promise<string | undefined>;
}

/** The domain id a guest interface names: vif<D>.<N>[-emu], or xennet's mark on a renamed one. */
export function domidOfVif(vif: string, alias: string | undefined): number | undefined {
  return (ownerOfVifName(vif) ?? ownerOfMark(alias))?.domid;
}

export class DropWatch {
  private listener: NflogListener | undefined;
  private readonly recent: DropEvent[] = [];
  private readonly perVif = new Map<string, number>();
  private seq = 0;
  private readonly cap = new LineCap(LOG_PER_SECOND);
  private timer: NodeJS.Timeout | undefined;
  private readonly names = new Map<number, { name: string | undefined; until: number }>();
  private lost = 0;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly ctx: DropWatchContext) {}

  /** Listens, or says why not and tries again every LISTEN_RETRY_MS (another process may let the group go). */
  async start(): Promise<void> {
    if (await this.listen()) return;
    this.retry = setInterval(() => {
      void this.listen(true).then((ok) => {
        if (ok) clearInterval(this.retry);
      });
    }, LISTEN_RETRY_MS);
    this.retry.unref();
  }

  private async listen(again = false): Promise<boolean> {
    if (this.stopped || this.listener) return true;
    try {
      // Only the headers are read (a summary needs 64 bytes: IPv4 with options, or IPv6, and the
      // ports): the kernel copies 64 of each, so that a message takes 832 bytes of the socket's
      // buffer whatever the packet (1280 with 128 copied of a full-size one, found by a review).
      const listener = await listenNflog(DROP_GROUP, (p) => void this.onPacket(p), () => {
        this.lost++;
      }, { copyBytes: 64 });
      if (this.stopped) {
        listener.close();
        return true;
      }
      this.listener = listener;
    } catch (e) {
      if (again) this.ctx.log.debug(`drops: still not logged: ${reasonOf(e)}`);
      else this.ctx.log.warning(`drops are not logged: ${reasonOf(e)} (tried again every ${LISTEN_RETRY_MS / 1000} s)`);
      return false;
    }
    if (again) this.ctx.log.info(`drops are logged again: nfnetlink_log group ${DROP_GROUP} is now the daemon's`);
    this.timer = setInterval(() => {
      const held = this.cap.suppressed() + this.lost;
      this.lost = 0;
      if (held > 0) this.ctx.log.warning(`${held} more drop${held === 1 ? '' : 's'} not logged (at most ${LOG_PER_SECOND} a second; each rule logs at most 6 a minute)`);
    }, 1000);
    this.timer.unref();
    return true;
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.retry);
    clearInterval(this.timer);
    this.listener?.close();
    this.listener = undefined;
  }

  /** Whether it listens. */
  listening(): boolean {
    return this.listener !== undefined;
  }

  /** The drops kept after `seq` (all kept: 0). */
  since(seq: number): { drops: DropEvent[]; seq: number } {
    return { drops: this.recent.filter((e) => e.seq > seq), seq: this.seq };
  }

  private async onPacket(p: LoggedPacket): Promise<void> {
    const named = parseDropPrefix(p.prefix);
    if (!named) return;
    const at = new Date().toISOString();
    const domid = domidOfVif(named.vif, ownerOfVifName(named.vif) ? undefined : aliasOf(named.vif));
    const domain = domid === undefined ? null : ((await this.domainName(domid)) ?? null);
    const event: DropEvent = { seq: ++this.seq, at, vif: named.vif, domid: domid ?? null, domain, reason: named.reason, packet: summarizePacket(p.ethertype, p.payload) };
    this.keep(event);
    if (this.cap.take(Date.now())) this.ctx.log.info(`drop: ${domainWord(domain)} (${named.vif}) ${named.reason} (${DROP_REASON_TEXT[named.reason]}): ${summaryText(event.packet)}`);
  }

  /** Keeps a drop: the oldest of its interface goes when that one has RECENT_PER_VIF, else the oldest of all past RECENT. */
  private keep(event: DropEvent): void {
    const n = (this.perVif.get(event.vif) ?? 0) + 1;
    this.recent.push(event);
    this.perVif.set(event.vif, n);
    if (n > RECENT_PER_VIF) this.forget(this.recent.findIndex((e) => e.vif === event.vif));
    else if (this.recent.length > RECENT) this.forget(0);
  }

  private forget(at: number): void {
    const [gone] = this.recent.splice(at, 1);
    if (!gone) return;
    const left = (this.perVif.get(gone.vif) ?? 1) - 1;
    if (left > 0) this.perVif.set(gone.vif, left);
    else this.perVif.delete(gone.vif);
  }

  private async domainName(domid: number): Promise<string | undefined> {
    const now = Date.now();
    const known = this.names.get(domid);
    if (known && known.until > now) return known.name;
    let name: string | undefined;
    try {
      name = await this.ctx.domainName(domid);
    } catch {
      name = undefined;
    }
    if (this.names.size > 4096) this.names.clear();
    this.names.set(domid, { name, until: now + NAME_TTL_MS });
    return name;
  }
}
