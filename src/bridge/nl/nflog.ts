/**
 * Packets the firewall hands to userspace (nfnetlink_log): a rule's `log group N` sends a copy of
 * the packet, and the socket bound to group N receives it with the ports it came in and goes out
 * on. The packet itself goes on through the rules as before (logging never changes a verdict), and
 * when nobody is bound to the group, the kernel copies nothing.
 */
import netlink from 'netlink';
import { XennetError } from '../../sys/errors.js';
import { nfnlAttribute, nfnlAttributes } from './nfnl.js';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_ULOG = 4;
const NFULNL_MSG_PACKET = 0;
const NFULNL_MSG_CONFIG = 1;
const NFULA_CFG_CMD = 1;
const NFULA_CFG_MODE = 2;
const NFULA_CFG_TIMEOUT = 4;
const NFULA_CFG_QTHRESH = 5;
const NFULNL_CFG_CMD_BIND = 1;
const NFULNL_CFG_CMD_UNBIND = 2;
const NFULNL_COPY_PACKET = 2;
const NFULA_PACKET_HDR = 1;
const NFULA_IFINDEX_INDEV = 4;
const NFULA_IFINDEX_OUTDEV = 5;
const NFULA_IFINDEX_PHYSINDEV = 6;
const NFULA_IFINDEX_PHYSOUTDEV = 7;
const NFULA_PAYLOAD = 9;
const NFULA_PREFIX = 10;

export interface LoggedPacket {
  /** The log rule's prefix. */
  prefix: string;
  /** The bridge port it came in on, and goes out on (bridge family: the port itself). */
  inPort?: number;
  outPort?: number;
  /** The Ethernet type (from the packet header attribute). */
  ethertype: number;
  /** The network-layer packet (IPv4, IPv6 or ARP), without the Ethernet header. */
  payload: Buffer;
}

function configMessage(group: number, attrs: Buffer[]): Buffer {
  const header = Buffer.alloc(4); // struct nfgenmsg: family AF_UNSPEC, version 0, group (big endian)
  header.writeUInt16BE(group, 2);
  return Buffer.concat([header, ...attrs]);
}

/** The attributes of one NFULNL_MSG_PACKET body (after its nfgenmsg), as a map (pure). */
export function parseLoggedPacket(data: Buffer): LoggedPacket | undefined {
  const attrs = nfnlAttributes(data);
  const payload = attrs.get(NFULA_PAYLOAD);
  const hdr = attrs.get(NFULA_PACKET_HDR);
  if (!payload || !hdr || hdr.length < 2) return undefined;
  const u32 = (t: number): number | undefined => {
    const v = attrs.get(t);
    return v && v.length >= 4 ? v.readUInt32BE(0) : undefined;
  };
  const inPort = u32(NFULA_IFINDEX_PHYSINDEV) ?? u32(NFULA_IFINDEX_INDEV);
  const outPort = u32(NFULA_IFINDEX_PHYSOUTDEV) ?? u32(NFULA_IFINDEX_OUTDEV);
  return {
    prefix: (attrs.get(NFULA_PREFIX)?.toString('latin1') ?? '').replace(/\0+$/, ''),
    ...(inPort !== undefined ? { inPort } : {}),
    ...(outPort !== undefined ? { outPort } : {}),
    ethertype: hdr.readUInt16BE(0),
    payload: Buffer.from(payload),
  };
}

export interface NflogListener {
  close(): void;
}

/**
 * Binds group `group` of this network namespace and calls `onPacket` for every packet logged to
 * it; `onLost` when packets were dropped before they were read (the socket's buffer overran).
 * Fails when another process holds the group.
 */
export async function listenNflog(group: number, onPacket: (p: LoggedPacket) => void, onLost: () => void, options: { copyBytes?: number } = {}): Promise<NflogListener> {
  const sock = netlink.createNetlink(NETLINK_NETFILTER, { recvBufferSize: 4 * 1024 * 1024, sendBufferSize: 65536 });
  const type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n, 0);
    return b;
  };
  try {
    await sock.request(type, configMessage(group, [nfnlAttribute(NFULA_CFG_CMD, Buffer.from([NFULNL_CFG_CMD_BIND]))]), { timeout: 5000 });
    const mode = Buffer.alloc(6);
    // How much of each packet is copied (all of it, unless the caller reads only its headers: a
    // guest's full-size packets would fill the socket's buffer in a few).
    mode.writeUInt32BE(options.copyBytes ?? 0xffff, 0);
    mode.writeUInt8(NFULNL_COPY_PACKET, 4);
    // Every packet at once: a queue threshold of 1, no batching delay.
    await sock.request(type, configMessage(group, [nfnlAttribute(NFULA_CFG_MODE, mode), nfnlAttribute(NFULA_CFG_QTHRESH, u32(1)), nfnlAttribute(NFULA_CFG_TIMEOUT, u32(0))]), { timeout: 5000 });
  } catch (e) {
    sock.close();
    const text = e instanceof Error ? e.message : String(e);
    // (The kernel answers EPERM when another socket holds the group, EBUSY when this one does.)
    throw new XennetError('netlink', `cannot bind nflog group ${group}: ${/EBUSY|EPERM|not permitted/i.test(text) ? 'another process holds it' : text}`, { cause: e });
  }
  sock.on('message', (msgs) => {
    for (const m of msgs) {
      if (m.type !== ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)) continue;
      const p = parseLoggedPacket(m.data);
      if (p) onPacket(p);
    }
  });
  sock.on('error', () => onLost());
  sock.on('invalid', () => undefined);
  return {
    close: () => {
      try {
        sock.send(type, configMessage(group, [nfnlAttribute(NFULA_CFG_CMD, Buffer.from([NFULNL_CFG_CMD_UNBIND]))]));
      } catch {
        // closing the socket unbinds it as well
      }
      sock.close();
    },
  };
}
