/**
 * Changes to links, addresses and routes, as the kernel announces them on rtnetlink's multicast
 * groups: what `xennet status` reads of them (a guest port up or down, joining or leaving a
 * bridge, dom0's addresses and default gateway) cannot change without a message here.
 */
import netlink from 'netlink';

const NETLINK_ROUTE = 0;
const RTNLGRP_LINK = 1;
const RTNLGRP_IPV4_IFADDR = 5;
const RTNLGRP_IPV4_ROUTE = 7;
const RTNLGRP_IPV6_IFADDR = 9;
const RTNLGRP_IPV6_ROUTE = 11;

const RTM_GETLINK = 18;
const NLMSG_MIN_TYPE = 16;

export interface LinkChangeWatch {
  /**
   * Resolves once every change the kernel made before this call has been passed to `onChange`: a
   * request on the same socket (the link `lo`), whose answer the kernel queues behind the
   * announcements already queued there.
   */
  settled(): Promise<void>;
  close(): void;
}

/** Calls `onChange` for every batch of link, address or route messages; `onLost` when messages were dropped (buffer overrun). */
export function watchLinkChanges(onChange: () => void, onLost: () => void): LinkChangeWatch {
  const sock = netlink.createNetlink(NETLINK_ROUTE, { recvBufferSize: 4 * 1024 * 1024, sendBufferSize: 65536 });
  for (const g of [RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE]) sock.addMembership(g);
  // Control messages (the ACK that follows the answer to `settled`'s request) announce nothing.
  sock.on('message', (msgs) => {
    if (msgs.some((m) => m.type >= NLMSG_MIN_TYPE)) onChange();
  });
  sock.on('error', () => onLost());
  sock.on('invalid', () => onChange());
  sock.unref();
  const lo = Buffer.alloc(16);
  lo.writeInt32LE(1, 4); // struct ifinfomsg: ifi_family 0, ifi_type 0, ifi_index 1 (lo)
  return {
    settled: async () => {
      await sock.request(RTM_GETLINK, lo, { timeout: 2000 });
    },
    close: () => sock.close(),
  };
}
