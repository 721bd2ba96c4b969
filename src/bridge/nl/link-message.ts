/**
 * RTM_NEWLINK messages (a link dump's, or one link's answer) read for what xennet uses of them,
 * and nothing else. The `netlink` package's parser decodes every attribute of every link (64-bit
 * statistics included, as BigInts): at 1000 guest ports that was most of a link dump's cost.
 * Here a message's attributes are walked once, and only the handful xennet reads are kept:
 * name, MAC, MTU, peer, master, kind, alias, and the IP-stack settings of IFLA_AF_SPEC (the
 * guest ports' sysctls, which a dump carries for every link: no file per setting to read).
 */
import { walkAttributes } from './nfnl.js';

/** IFLA_* attribute types read here (include/uapi/linux/if_link.h). */
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINK = 5;
const IFLA_MASTER = 10;
const IFLA_LINKINFO = 18;
const IFLA_IFALIAS = 20;
const IFLA_AF_SPEC = 26;
const IFLA_LINK_NETNSID = 37;
/** IFLA_AF_SPEC's members: per address family, its settings of the link. */
const AF_INET = 2;
const AF_INET6 = 10;
const IFLA_INET_CONF = 1;
const IFLA_INET6_CONF = 2;
/** struct ifinfomsg: family u8, pad u8, type u16, index s32, flags u32, change u32. */
const IFINFOMSG_LEN = 16;
const IFF_UP = 0x1;
const IFF_NOARP = 0x80;
const IFF_MULTICAST = 0x1000;

/** One link as the kernel described it, the attributes xennet reads still raw. */
export interface LinkMessage {
  index: number;
  up: boolean;
  noarp: boolean;
  multicast: boolean;
  ifname?: string;
  address?: Buffer;
  mtu?: number;
  link?: number;
  /** IFLA_LINK_NETNSID: `link` is an index in another network namespace (a veth's peer there). */
  linkNetnsid?: number;
  master?: number;
  linkinfo?: Buffer;
  ifalias?: string;
  /** The link's IPv4 settings (IFLA_INET_CONF: IPV4_DEVCONF_x at x - 1), when it has an IPv4 stack. */
  inetConf?: Buffer;
  /** The link's IPv6 settings (IFLA_INET6_CONF: DEVCONF_x at x), when it has an IPv6 stack. */
  inet6Conf?: Buffer;
}


/** A NUL-terminated string attribute (the kernel's nla_put_string). */
function cString(b: Buffer, offset: number, length: number): string {
  const nul = b.indexOf(0, offset);
  return b.toString('utf8', offset, nul === -1 || nul > offset + length ? offset + length : nul);
}

const u32 = (b: Buffer, offset: number, length: number): number | undefined => (length >= 4 ? b.readUInt32LE(offset) : undefined);

function afSpec(b: Buffer, offset: number, length: number, out: LinkMessage): void {
  walkAttributes(b, offset, offset + length, (family, at, len) => {
    if (family !== AF_INET && family !== AF_INET6) return;
    walkAttributes(b, at, at + len, (type, o, l) => {
      if (family === AF_INET && type === IFLA_INET_CONF) out.inetConf = b.subarray(o, o + l);
      else if (family === AF_INET6 && type === IFLA_INET6_CONF) out.inet6Conf = b.subarray(o, o + l);
    });
  });
}

/** The payload of one RTM_NEWLINK message (after its netlink header). */
export function parseLinkMessage(data: Buffer): LinkMessage {
  if (data.length < IFINFOMSG_LEN) throw new Error(`a link message of ${data.length} bytes`);
  const flags = data.readUInt32LE(8);
  const m: LinkMessage = { index: data.readInt32LE(4), up: (flags & IFF_UP) !== 0, noarp: (flags & IFF_NOARP) !== 0, multicast: (flags & IFF_MULTICAST) !== 0 };
  walkAttributes(data, IFINFOMSG_LEN, data.length, (type, offset, length) => {
    switch (type) {
      case IFLA_ADDRESS:
        m.address = data.subarray(offset, offset + length);
        break;
      case IFLA_IFNAME:
        m.ifname = cString(data, offset, length);
        break;
      case IFLA_MTU:
        m.mtu = u32(data, offset, length);
        break;
      case IFLA_LINK:
        m.link = u32(data, offset, length);
        break;
      case IFLA_LINK_NETNSID:
        m.linkNetnsid = u32(data, offset, length);
        break;
      case IFLA_MASTER:
        m.master = u32(data, offset, length);
        break;
      case IFLA_LINKINFO:
        m.linkinfo = data.subarray(offset, offset + length);
        break;
      case IFLA_IFALIAS:
        m.ifalias = cString(data, offset, length);
        break;
      case IFLA_AF_SPEC:
        afSpec(data, offset, length, m);
        break;
    }
  });
  return m;
}

/** The body of an RTM_GETLINK request for one link by name (ifinfomsg + IFLA_IFNAME). */
export function getLinkByNameRequest(name: string): Buffer {
  const str = Buffer.from(`${name}\0`, 'utf8');
  const attrLen = 4 + str.length;
  const out = Buffer.alloc(IFINFOMSG_LEN + ((attrLen + 3) & ~3));
  out.writeUInt16LE(attrLen, IFINFOMSG_LEN);
  out.writeUInt16LE(IFLA_IFNAME, IFINFOMSG_LEN + 2);
  str.copy(out, IFINFOMSG_LEN + 4);
  return out;
}

/** IFLA_EXT_MASK's RTEXT_FILTER_SKIP_STATS (include/uapi/linux/rtnetlink.h). */
const IFLA_EXT_MASK = 29;
const RTEXT_FILTER_SKIP_STATS = 1 << 3;

/**
 * The body of an RTM_GETLINK dump request: ifinfomsg + IFLA_EXT_MASK. Without a mask the kernel
 * fills each dump message up to its default size (8 KiB, or the reader's buffer up to 32 KiB)
 * and a link whose description is larger (hundreds of alternative names) ends the dump there
 * silently (a plain NLMSG_DONE, its error 0, on Linux 6.18): that link and every link after it were
 * missing from the list. With one, it sizes the messages for the largest link (rtnl_calcit).
 * Skipping the statistics, which xennet does not read, is the mask that changes nothing else.
 */
export function linkDumpRequest(): Buffer {
  const out = Buffer.alloc(IFINFOMSG_LEN + 8);
  out.writeUInt16LE(8, IFINFOMSG_LEN);
  out.writeUInt16LE(IFLA_EXT_MASK, IFINFOMSG_LEN + 2);
  out.writeUInt32LE(RTEXT_FILTER_SKIP_STATS, IFINFOMSG_LEN + 4);
  return out;
}

/** The body of an RTM_GETLINK request for one link by index. */
export function getLinkByIndexRequest(index: number): Buffer {
  const out = Buffer.alloc(IFINFOMSG_LEN);
  out.writeInt32LE(index, 4);
  return out;
}

/** A setting out of IFLA_INET_CONF / IFLA_INET6_CONF (arrays of 32-bit values), or undefined. */
export function devconfValue(conf: Buffer | undefined, position: number): number | undefined {
  if (!conf || position < 0 || (position + 1) * 4 > conf.length) return undefined;
  return conf.readInt32LE(position * 4);
}
