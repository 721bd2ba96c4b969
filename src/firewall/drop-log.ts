/**
 * What a guest's rules drop, as the firewall logs it (`log_drops`): each drop rule with a reason
 * is preceded by one that sends a copy of what it drops, at most 6 a minute per rule, to
 * nfnetlink_log group DROP_GROUP with the prefix `XN <reason> <vif>`. The daemon listens there
 * and writes each drop to its log with the guest's domain, the reason, the addresses and the
 * protocol; `xennet drops` shows them (pure: the prefix, the packet summary, the daemon's cap).
 */
import { shown } from '../net/index.js';
import { isDropReason, type DropReason } from './drop-reasons.js';

/** The nfnetlink_log group of logged drops ("xo": LEARN_GROUP is "xn"). */
export const DROP_GROUP = 0x786f;
/** How many drops a rule logs: a minute's rate (and nft's and iptables' default burst of 5). */
export const DROP_LOG_RATE = { perMinute: 6 } as const;
/**
 * How many all the guests' rules log together, per IP family: whatever the number of guests and
 * whoever sends what, the daemon's socket gets at most a burst of 20 and then 10 a second per
 * family (each message takes 832 bytes of its buffer, which holds some 500 with a stock
 * rmem_max: 40 at once, and then a daemon that reads nothing for about 23 s to fill it). On
 * nftables a dynamic set of one element per Ethernet type (DROP_LOG_SET), on xtables a hashlimit
 * bucket shared by name (DROP_LOG_HASHLIMIT; iptables and ip6tables each have their own).
 */
export const DROP_LOG_SHARED = { perSecond: 10, burst: 20 } as const;
export const DROP_LOG_SET = 'drop_log';
export const DROP_LOG_HASHLIMIT = 'xn-droplog';

/** `XN spoof4 vif5.0`: at most 3 + 10 + 15 characters, within iptables' NFLOG prefix limit (64). */
export const dropPrefix = (reason: DropReason, vif: string): string => `XN ${reason} ${vif}`;

/** The reason and interface a logged drop's prefix names, or undefined when it is no drop's. */
export function parseDropPrefix(prefix: string): { reason: DropReason; vif: string } | undefined {
  const m = /^XN (\S+) ([A-Za-z0-9_][A-Za-z0-9_.-]{0,14})$/.exec(prefix);
  return m && isDropReason(m[1]!) ? { reason: m[1], vif: m[2]! } : undefined;
}

/** What a dropped packet was, in a line: `udp 192.168.0.200 -> 192.168.0.1 4000>4001`. */
export interface PacketSummary {
  protocol: string;
  source?: string;
  destination?: string;
  /** Ports (TCP, UDP) or ICMP type. */
  detail?: string;
}

const PROTOCOL_NAMES: Readonly<Record<number, string>> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 2: 'igmp', 47: 'gre', 50: 'esp', 132: 'sctp' };
const ipv4 = (b: Buffer, at: number): string => [...b.subarray(at, at + 4)].join('.');
function ipv6(b: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(at + 2 * i).toString(16));
  // The longest run of zero groups (two or more) as `::`.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j > i ? j : i + 1;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

function transport(proto: number, b: Buffer, at: number): string | undefined {
  if ((proto === 6 || proto === 17 || proto === 132) && b.length >= at + 4) return `${b.readUInt16BE(at)}>${b.readUInt16BE(at + 2)}`;
  if ((proto === 1 || proto === 58) && b.length >= at + 1) return `type ${b[at]}`;
  return undefined;
}

/** A dropped packet from its ethertype and network-layer bytes (pure; never throws on short or odd input). */
export function summarizePacket(ethertype: number, payload: Buffer): PacketSummary {
  const ihl = ((payload[0] ?? 0) & 0x0f) * 4;
  if (ethertype === 0x0800 && payload.length >= 20 && payload[0]! >> 4 === 4 && ihl >= 20) {
    const proto = payload[9]!;
    const first = (payload.readUInt16BE(6) & 0x1fff) === 0;
    const detail = first ? transport(proto, payload, ihl) : 'fragment';
    return { protocol: PROTOCOL_NAMES[proto] ?? `ip proto ${proto}`, source: ipv4(payload, 12), destination: ipv4(payload, 16), ...(detail ? { detail } : {}) };
  }
  if (ethertype === 0x86dd && payload.length >= 40 && payload[0]! >> 4 === 6) {
    const next = payload[6]!;
    const detail = transport(next, payload, 40);
    return { protocol: PROTOCOL_NAMES[next] ?? `ipv6 next header ${next}`, source: ipv6(payload, 8), destination: ipv6(payload, 24), ...(detail ? { detail } : {}) };
  }
  // Ethernet/IPv4 ARP only (hardware 1, protocol 0x0800, lengths 6 and 4): other layouts put the addresses elsewhere.
  if (ethertype === 0x0806 && payload.length >= 28 && payload.readUInt16BE(0) === 1 && payload.readUInt16BE(2) === 0x0800 && payload[4] === 6 && payload[5] === 4) {
    const op = payload.readUInt16BE(6);
    return { protocol: 'arp', source: ipv4(payload, 14), destination: ipv4(payload, 24), detail: op === 1 ? 'request' : op === 2 ? 'reply' : `op ${op}` };
  }
  return { protocol: `ethertype 0x${ethertype.toString(16).padStart(4, '0')}` };
}

/** One drop the daemon heard of, as it keeps it and `xennet drops` shows it. */
export interface DropEvent {
  seq: number;
  at: string;
  vif: string;
  domid: number | null;
  domain: string | null;
  reason: DropReason;
  packet: PacketSummary;
}

/**
 * A domain name as the first word of a drop's line: as it is when it is a plain name, else quoted
 * (a name with spaces or brackets could pose as another guest's line: `web02 (vif6.0) spoof4 ...`).
 */
export function domainWord(name: string | null): string {
  if (name === null) return '?';
  return /^[A-Za-z0-9][A-Za-z0-9_.:+-]*$/.test(name) ? name : shown(name, 64);
}

export const summaryText = (p: PacketSummary): string => [p.protocol, p.source !== undefined ? `${p.source} -> ${p.destination ?? '?'}` : undefined, p.detail].filter((x) => x !== undefined).join(' ');

/**
 * At most `perSecond` lines a second, whatever the rules let through (many guests' rules at once):
 * `take(now)` says whether this one may be written; `suppressed(now)` gives (once a second) how
 * many were not.
 */
export class LineCap {
  private windowStart = 0;
  private used = 0;
  private dropped = 0;

  constructor(private readonly perSecond: number) {}

  take(now: number): boolean {
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.used = 0;
    }
    if (this.used < this.perSecond) {
      this.used++;
      return true;
    }
    this.dropped++;
    return false;
  }

  /** How many were held back since the last call (0: none). */
  suppressed(): number {
    const n = this.dropped;
    this.dropped = 0;
    return n;
  }
}
