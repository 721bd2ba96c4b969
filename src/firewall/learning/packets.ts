/**
 * What an address-learning packet says (pure): the firewall logs a learning guest's DHCP and
 * DHCPv6 exchanges, its Duplicate Address Detection and its ARP probes to the daemon, which reads
 * them here. Every packet is hostile: any length, any option, any value; what does not parse
 * whole says nothing (`undefined`).
 */
import { inetNtop6 } from '../../net/index.js';

export type LearnEvent =
  /** A DHCPACK on its way to the guest: yiaddr for leaseSeconds (null: infinite). */
  | { kind: 'dhcp-ack'; address: string; leaseSeconds: number | null }
  /** The guest gives an address back (DHCPRELEASE) or refuses it (DHCPDECLINE). */
  | { kind: 'dhcp-release'; address: string }
  /** A DHCPv6 Reply on its way to the guest: IA_NA/IA_TA addresses, valid lifetime (0: remove it). */
  | { kind: 'dhcpv6-reply'; addresses: { address: string; validSeconds: number | null }[] }
  /** The guest's DHCPv6 Release or Decline. */
  | { kind: 'dhcpv6-release'; addresses: string[] }
  /**
   * The guest's Duplicate Address Detection for a tentative address (NS from ::), and its ARP
   * probe (sender 0.0.0.0, RFC 5227). `bindNow`: the test has run its course undefended.
   */
  | { kind: 'dad'; address: string; bindNow?: boolean }
  | { kind: 'arp-probe'; address: string; bindNow?: boolean }
  /**
   * The guest announces an address it already uses: a gratuitous ARP (sender = target) or an
   * unsolicited neighbour advertisement to all nodes, what Linux sends when a guest resumes on a
   * new host after a live migration (netdev_notify_peers).
   */
  | { kind: 'announce'; family: 'ipv4' | 'ipv6'; address: string; bindNow?: boolean };

const ETH_IP = 0x0800;
const ETH_ARP = 0x0806;
const ETH_IP6 = 0x86dd;
const INFINITE = 0xffffffff;

const ip4 = (b: Buffer, off: number): string => `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
const ip6 = (b: Buffer, off: number): string => inetNtop6([...b.subarray(off, off + 16)]);
const usable4 = (a: string): boolean => {
  const first = Number(a.split('.')[0]);
  return a !== '0.0.0.0' && a !== '255.255.255.255' && first !== 127 && first < 224;
};
const usable6 = (a: string): boolean => a !== '::' && a !== '::1' && !a.startsWith('ff');

/** The UDP payload of an IPv4 packet with these ports, whole and unfragmented. */
function udp4(p: Buffer, sport: number, dport: number): { src: string; dst: string; data: Buffer } | undefined {
  if (p.length < 20 || p[0]! >> 4 !== 4) return undefined;
  const ihl = (p[0]! & 0x0f) * 4;
  const total = p.readUInt16BE(2);
  if (ihl < 20 || total > p.length || total < ihl + 8 || p[9] !== 17) return undefined;
  if ((p.readUInt16BE(6) & 0x3fff) !== 0) return undefined; // a fragment
  if (p.readUInt16BE(ihl) !== sport || p.readUInt16BE(ihl + 2) !== dport) return undefined;
  const ulen = p.readUInt16BE(ihl + 4);
  if (ulen < 8 || ihl + ulen > total) return undefined;
  return { src: ip4(p, 12), dst: ip4(p, 16), data: p.subarray(ihl + 8, ihl + ulen) };
}

/** The upper-layer payload of an IPv6 packet whose next header is `proto` (no extension header). */
function upper6(p: Buffer, proto: number): { src: string; data: Buffer } | undefined {
  if (p.length < 40 || p[0]! >> 4 !== 6 || p[6] !== proto) return undefined;
  const plen = p.readUInt16BE(4);
  if (40 + plen > p.length) return undefined;
  return { src: ip6(p, 8), data: p.subarray(40, 40 + plen) };
}

/** DHCP options (after the magic cookie) as code -> value; undefined when malformed. */
function dhcpOptions(b: Buffer): Map<number, Buffer> | undefined {
  const out = new Map<number, Buffer>();
  let off = 0;
  while (off < b.length) {
    const code = b[off]!;
    if (code === 255) return out;
    if (code === 0) {
      off++;
      continue;
    }
    if (off + 2 > b.length) return undefined;
    const len = b[off + 1]!;
    if (off + 2 + len > b.length) return undefined;
    if (!out.has(code)) out.set(code, b.subarray(off + 2, off + 2 + len));
    off += 2 + len;
  }
  return out;
}

function dhcp4(p: Buffer, fromServer: boolean): LearnEvent | undefined {
  const u = fromServer ? udp4(p, 67, 68) : udp4(p, 68, 67);
  if (!u || u.data.length < 240 || u.data.readUInt32BE(236) !== 0x63825363) return undefined;
  const d = u.data;
  if (d[0] !== (fromServer ? 2 : 1)) return undefined;
  const opts = dhcpOptions(d.subarray(240));
  const type = opts?.get(53);
  if (!opts || !type || type.length !== 1) return undefined;
  if (fromServer) {
    if (type[0] !== 5) return undefined; // DHCPACK
    const address = ip4(d, 16);
    if (!usable4(address)) return undefined; // the ACK of a DHCPINFORM names no address
    // A server that echoes the client identifier (RFC 6842) says whose lease this is: one made
    // of another hardware address (type 1) is another client's, whatever chaddr says (a guest
    // presenting a LAN host's identifier would get that host's lease).
    const clientId = opts.get(61);
    if (clientId && clientId.length === 7 && clientId[0] === 1 && !clientId.subarray(1).equals(d.subarray(28, 34))) return undefined;
    const lease = opts.get(51);
    if (!lease || lease.length !== 4) return undefined;
    const s = lease.readUInt32BE(0);
    return { kind: 'dhcp-ack', address, leaseSeconds: s === INFINITE ? null : s };
  }
  if (type[0] === 7) {
    const address = ip4(d, 12); // DHCPRELEASE: ciaddr
    return usable4(address) ? { kind: 'dhcp-release', address } : undefined;
  }
  if (type[0] === 4) {
    const req = opts.get(50); // DHCPDECLINE: the requested address option
    if (!req || req.length !== 4) return undefined;
    const address = ip4(req, 0);
    return usable4(address) ? { kind: 'dhcp-release', address } : undefined;
  }
  return undefined;
}

/** IA_NA / IA_TA addresses of a DHCPv6 message's options. */
function dhcp6Addresses(opts: Buffer): { address: string; validSeconds: number | null }[] | undefined {
  const out: { address: string; validSeconds: number | null }[] = [];
  for (let off = 0; off < opts.length; ) {
    if (off + 4 > opts.length) return undefined;
    const code = opts.readUInt16BE(off);
    const len = opts.readUInt16BE(off + 2);
    if (off + 4 + len > opts.length) return undefined;
    const body = opts.subarray(off + 4, off + 4 + len);
    off += 4 + len;
    if (code !== 3 && code !== 4) continue; // IA_NA, IA_TA
    const skip = code === 3 ? 12 : 4; // IAID, T1, T2 / IAID
    if (body.length < skip) return undefined;
    for (let o = skip; o < body.length; ) {
      if (o + 4 > body.length) return undefined;
      const sub = body.readUInt16BE(o);
      const slen = body.readUInt16BE(o + 2);
      if (o + 4 + slen > body.length) return undefined;
      if (sub === 5 && slen >= 24) {
        const address = ip6(body, o + 4);
        const valid = body.readUInt32BE(o + 24);
        if (usable6(address)) out.push({ address, validSeconds: valid === INFINITE ? null : valid });
      }
      o += 4 + slen;
    }
  }
  return out;
}

function dhcp6(p: Buffer, fromServer: boolean): LearnEvent | undefined {
  const up = upper6(p, 17);
  if (!up || up.data.length < 8) return undefined;
  const [sport, dport] = [up.data.readUInt16BE(0), up.data.readUInt16BE(2)];
  if (fromServer ? sport !== 547 || dport !== 546 : sport !== 546 || dport !== 547) return undefined;
  const ulen = up.data.readUInt16BE(4);
  if (ulen < 12 || ulen > up.data.length) return undefined;
  const msg = up.data.subarray(8, ulen);
  const type = msg[0]!;
  const addresses = dhcp6Addresses(msg.subarray(4));
  if (!addresses || addresses.length === 0) return undefined;
  if (fromServer) return type === 7 ? { kind: 'dhcpv6-reply', addresses } : undefined; // Reply
  return type === 8 || type === 9 ? { kind: 'dhcpv6-release', addresses: addresses.map((a) => a.address) } : undefined; // Release, Decline
}

function dad(p: Buffer): LearnEvent | undefined {
  const up = upper6(p, 58);
  if (!up || up.src !== '::' || up.data.length < 24 || up.data[0] !== 135 || up.data[1] !== 0) return undefined;
  if (p[7] !== 255) return undefined; // hop limit 255, as every ND message
  const address = ip6(up.data, 8);
  return usable6(address) ? { kind: 'dad', address } : undefined;
}

function arp(p: Buffer): LearnEvent | undefined {
  if (p.length < 28 || p.readUInt16BE(0) !== 1 || p.readUInt16BE(2) !== ETH_IP || p[4] !== 6 || p[5] !== 4) return undefined;
  const op = p.readUInt16BE(6);
  const [sender, target] = [ip4(p, 14), ip4(p, 24)];
  if (op === 1 && sender === '0.0.0.0') return usable4(target) ? { kind: 'arp-probe', address: target } : undefined;
  if ((op === 1 || op === 2) && sender === target && usable4(sender)) return { kind: 'announce', family: 'ipv4', address: sender };
  return undefined;
}

/** An unsolicited NA to all nodes (solicited flag clear, hop limit 255): an announcement. */
function unsolicitedNa(p: Buffer): LearnEvent | undefined {
  const up = upper6(p, 58);
  if (!up || up.data.length < 24 || up.data[0] !== 136 || up.data[1] !== 0 || p[7] !== 255) return undefined;
  if (ip6(p, 24) !== 'ff02::1' || (up.data[4]! & 0x40) !== 0) return undefined;
  const address = ip6(up.data, 8);
  return usable6(address) ? { kind: 'announce', family: 'ipv6', address } : undefined;
}

/**
 * The address a frame claims for its sender (an ARP's sender address, an NA's target): read from
 * frames of any port that concern an address a guest is testing.
 */
export function readClaimedAddress(ethertype: number, payload: Buffer): { family: 'ipv4' | 'ipv6'; address: string } | undefined {
  if (ethertype === ETH_ARP) {
    if (payload.length < 28 || payload.readUInt16BE(0) !== 1 || payload.readUInt16BE(2) !== ETH_IP || payload[4] !== 6 || payload[5] !== 4) return undefined;
    const address = ip4(payload, 14);
    return usable4(address) ? { family: 'ipv4', address } : undefined;
  }
  if (ethertype === ETH_IP6) {
    const up = upper6(payload, 58);
    if (!up || up.data.length < 24 || up.data[0] !== 136) return undefined;
    const address = ip6(up.data, 8);
    return usable6(address) ? { family: 'ipv6', address } : undefined;
  }
  return undefined;
}

/**
 * What one logged packet says. `toGuest`: it was on its way to the guest (a server's reply),
 * else it came from the guest.
 */
export function readLearnPacket(ethertype: number, payload: Buffer, toGuest: boolean): LearnEvent | undefined {
  if (ethertype === ETH_IP) return dhcp4(payload, toGuest);
  if (ethertype === ETH_IP6) return toGuest ? dhcp6(payload, true) : (dad(payload) ?? unsolicitedNa(payload) ?? dhcp6(payload, false));
  if (ethertype === ETH_ARP && !toGuest) return arp(payload);
  return undefined;
}
