/**
 * Why a guest's rules drop a frame: one word per reason, the same in `status`, its JSON, the
 * metrics' `reason` label and the drop log's prefix (`XN <reason> <vif>`). Each driver says
 * which of its rules drops for which reason (TableCodec.dropReason); the words are fixed, so
 * whatever counts them has a bounded number of series.
 */
import type { Counter } from './live.js';

export const DROP_REASONS = ['mac', 'spoof4', 'spoof6', 'arp', 'ra', 'dhcps', 'dhcpc', 'na', 'frag', 'ethertype', 'tagged', 'in', 'out'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** Each reason in an operator's words. */
export const DROP_REASON_TEXT: Readonly<Record<DropReason, string>> = {
  mac: 'spoofed MAC',
  spoof4: 'spoofed IPv4 source',
  spoof6: 'spoofed IPv6 source',
  arp: 'ARP spoofing',
  ra: 'router advertisement',
  dhcps: 'DHCP/DHCPv6 server reply',
  dhcpc: "DHCP request for another's MAC",
  na: 'neighbour advertisement for another address',
  frag: 'IPv6 header chain hiding its payload',
  ethertype: 'ethertype not allowed',
  tagged: 'tagged frame',
  in: 'inbound policy',
  out: 'outbound policy',
};

export const isDropReason = (s: string): s is DropReason => (DROP_REASONS as readonly string[]).includes(s);

/** A guest's drops by reason (reasons with none left out). */
export type DropsByReason = Partial<Record<DropReason, Counter>>;

/** Adds `c` to `reason`'s counter in `into`. */
export function addDrops(into: DropsByReason, reason: DropReason, c: Counter): void {
  const have = into[reason];
  if (have) {
    have.packets += c.packets;
    have.bytes += c.bytes;
  } else into[reason] = { packets: c.packets, bytes: c.bytes };
}

/** `spoofed IPv4 source 12, inbound policy 3`, largest first (empty: none). */
export function dropsText(drops: DropsByReason): string {
  return DROP_REASONS.filter((r) => (drops[r]?.packets ?? 0) > 0)
    .sort((a, b) => drops[b]!.packets - drops[a]!.packets)
    .map((r) => `${DROP_REASON_TEXT[r]} ${drops[r]!.packets}`)
    .join(', ');
}
