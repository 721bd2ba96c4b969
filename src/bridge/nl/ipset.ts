/**
 * The names of the kernel's ipsets, over nfnetlink (no `ipset` process): what the nftables
 * backend looks for when it sweeps what the xtables backend's address learning left (its
 * `xn4-`/`xn6-<vif>` sets), on hosts where the `ipset` program may not even be installed.
 *
 * The set type module is never loaded for this: without ip_set loaded there are no sets, and a
 * request to its nfnetlink subsystem would make the kernel load it.
 */
import { existsSync } from 'node:fs';
import netlink from 'netlink';
import { XennetError } from '../../sys/errors.js';
import { nfnlAttribute, nfnlAttributes } from './nfnl.js';
import { nfgenmsg } from './nft-numbers.js';

const NETLINK_NETFILTER = 12;
const NLM_F_DUMP = 0x300;
const NLM_F_DUMP_INTR = 0x10;
const REQUEST_TIMEOUT_MS = 5000;
/** include/uapi/linux/netfilter/nfnetlink.h and netfilter/ipset/ip_set.h. */
const NFNL_SUBSYS_IPSET = 6;
const IPSET_CMD_LIST = 7;
const IPSET_PROTOCOL = 7;
const IPSET_ATTR_PROTOCOL = 1;
const IPSET_ATTR_SETNAME = 2;
const IPSET_ATTR_FLAGS = 6;
/** IPSET_FLAG_LIST_SETNAME: the names only, not the members. */
const IPSET_FLAG_LIST_SETNAME = 1 << 1;
const NLA_F_NET_BYTEORDER = 1 << 14;
const AF_INET = 2;

/** Whether the kernel has ip_set loaded (or built in: its parameters show either way). */
export function ipsetLoaded(): boolean {
  return existsSync('/sys/module/ip_set');
}

/** The body of IPSET_CMD_LIST for every set's name (pure). */
export function ipsetListNamesRequest(): Buffer {
  const flags = Buffer.alloc(4);
  flags.writeUInt32BE(IPSET_FLAG_LIST_SETNAME);
  return Buffer.concat([nfgenmsg(AF_INET), nfnlAttribute(IPSET_ATTR_PROTOCOL, Buffer.from([IPSET_PROTOCOL])), nfnlAttribute(IPSET_ATTR_FLAGS | NLA_F_NET_BYTEORDER, flags)]);
}

/** A set's name out of one IPSET_CMD_LIST answer (pure), or undefined. */
export function ipsetNameOf(body: Buffer): string | undefined {
  const name = nfnlAttributes(body).get(IPSET_ATTR_SETNAME);
  if (!name) return undefined;
  const end = name.indexOf(0);
  return name.toString('utf8', 0, end === -1 ? name.length : end);
}

/** Every ipset's name in this network namespace ([] when ip_set is not loaded). */
export async function ipsetNamesNative(): Promise<string[]> {
  if (!ipsetLoaded()) return [];
  const sock = netlink.createNetlink(NETLINK_NETFILTER, { recvBufferSize: 1024 * 1024, sendBufferSize: 65536, messagePeeking: false, msgBufferSize: 65536 });
  sock.on('error', () => undefined);
  const type = (NFNL_SUBSYS_IPSET << 8) | IPSET_CMD_LIST;
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      let msgs: { type: number; flags: number; data: Buffer }[];
      try {
        [msgs] = await sock.request(type, [ipsetListNamesRequest()], { timeout: REQUEST_TIMEOUT_MS, flags: NLM_F_DUMP });
      } catch (e) {
        throw new XennetError('netlink', `listing ipsets: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
      if (msgs.some((m) => (m.flags & NLM_F_DUMP_INTR) !== 0)) continue;
      return [...new Set(msgs.filter((m) => m.type === type).map((m) => ipsetNameOf(m.data)).filter((n): n is string => n !== undefined))];
    }
    throw new XennetError('netlink', 'listing ipsets: the sets kept changing during the dump');
  } finally {
    sock.close();
  }
}
